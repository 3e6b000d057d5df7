"""The module graph flows one way: the packages form layers (README, "Layout of the code"), libraries never
import the applications built on them, and the top-level imports between asl_jax modules form no cycle (so no
function-local import dodges one). A run directory's file names are spelled in runs/run_dir.py alone."""

import ast
import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO

ROOT = os.path.join(REPO, "asl_jax")
APPLICATIONS = {"asl_jax.training.train", "asl_jax.serving.evaluate", "asl_jax.serving.predict", "asl_jax.serving.export", "asl_jax.cli",
                "asl_jax.live.recognizer", "asl_jax.live.stream", "asl_jax.serving.enroll"}
LIBRARIES = {"asl_jax.training.setup", "asl_jax.runs.restore", "asl_jax.evaluation.evaluator", "asl_jax.evaluation.inference", "asl_jax.data.input_pipeline",
             "asl_jax.data.landmark_features", "asl_jax.data.augment", "asl_jax.data.clip_prep", "asl_jax.runs.checkpoints",
             "asl_jax.config", "asl_jax.models.losses", "asl_jax.evaluation.metrics", "asl_jax.training.optim", "asl_jax.sharding",
             "asl_jax.live.segmenter", "asl_jax.live.scoring", "asl_jax.live.writers", "asl_jax.evaluation.calibration",
             "asl_jax.evaluation.class_vectors"}


def _modules():
  out = {}
  for d, _, files in os.walk(ROOT):
    for f in files:
      if f.endswith(".py"):
        rel = os.path.relpath(os.path.join(d, f), REPO)[:-3].replace(os.sep, ".")
        out[rel.removesuffix(".__init__")] = ast.parse(open(os.path.join(d, f)).read())
  return out


def _imports(tree, top_level_only: bool):
  nodes = tree.body if top_level_only else list(ast.walk(tree))
  names = set()
  for node in nodes:
    if isinstance(node, ast.Import):
      names |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      names.add(node.module)
      names |= {f"{node.module}.{a.name}" for a in node.names}
  return {n for n in names if n.startswith("asl_jax")}


# The packages, lowest first: a module may import its own package and the ones before it. "shared" is the
# top-level modules every package uses (config reads one table of data.layouts, the point layouts' widths).
LAYERS = ("shared", "data", "models", "extract", "runs", "pretrained", "evaluation", "training", "serving", "live",
          "cli")
SHARED = {"asl_jax", "asl_jax.config", "asl_jax.errors", "asl_jax.atomic", "asl_jax.sharding", "asl_jax.allocator",
          "asl_jax.interrupts"}
ALLOWED_UPWARD = {("asl_jax.config", "asl_jax.data.layouts")}


def _layer(module: str) -> int:
  if module in SHARED:
    return 0
  return LAYERS.index(module.split(".")[1])


def test_packages_import_only_the_layers_below_them():
  mods = _modules()
  assert {m.split(".")[1] for m in mods if m not in SHARED} <= set(LAYERS), "a package missing from LAYERS"
  for name, tree in mods.items():
    for imported in _imports(tree, top_level_only=False):
      target = imported if imported in mods else imported.rsplit(".", 1)[0]
      if target not in mods or (name, target) in ALLOWED_UPWARD:
        continue
      assert _layer(target) <= _layer(name), f"{name} ({LAYERS[_layer(name)]}) imports {target} ({LAYERS[_layer(target)]})"


RUN_FILE_NAMES = ("config.json", "label_mapping.json", "class_mapping.json", "input_spec.json", "data_report.json",
                  "head_weights.json", "visual_norm.npz", "calibration.json", "enrolled.json", "init_from.json",
                  "metrics.jsonl", "test_report.json", '"checkpoints"', '".lock"', '"tensorboard"', '"eval_')


def test_run_directory_file_names_live_in_run_dir_only():
  """Code spells no run-directory file name outside runs/run_dir.py (docstrings, messages and help texts
  may name them)."""
  found = []
  for name, tree in _modules().items():
    if name == "asl_jax.runs.run_dir":
      continue
    skip = set()
    for node in ast.walk(tree):
      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body and isinstance(
          node.body[0], ast.Expr):
        skip.add(id(node.body[0].value))
      if isinstance(node, (ast.Raise, ast.JoinedStr)) or (isinstance(node, ast.Call) and any(
          isinstance(a, ast.JoinedStr) for a in node.args)):
        skip |= {id(n) for n in ast.walk(node)}
    for node in ast.walk(tree):
      if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
        for file_name in RUN_FILE_NAMES:
          bare = file_name.strip('"')
          if node.value == bare or (file_name == '"eval_' and re.match(r"eval_(test|val|train)", node.value)):
            found.append(f"{name}:{node.lineno} {node.value!r}")
  assert not found, "run-directory file names outside asl_jax.runs.run_dir: " + ", ".join(found)


def test_libraries_never_import_applications():
  mods = _modules()
  for name in LIBRARIES | {m for m in mods if m.startswith(("asl_jax.models", "asl_jax.data"))}:
    bad = _imports(mods[name], top_level_only=False) & APPLICATIONS
    assert not bad, f"{name} imports {bad}"


def test_top_level_imports_have_no_cycle():
  mods = _modules()
  graph = {m: {i for i in _imports(t, top_level_only=True) if i in mods and i != m} for m, t in mods.items()}
  state = {}

  def visit(m, path):
    if state.get(m) == "done":
      return
    assert state.get(m) != "open", "import cycle: " + " -> ".join(path + [m])
    state[m] = "open"
    for n in graph[m]:
      visit(n, path + [m])
    state[m] = "done"

  for m in graph:
    visit(m, [])


def test_no_function_local_asl_jax_imports_in_libraries():
  """Inside the libraries every asl_jax import is at the top (function-local ones are how cycles hide)."""
  mods = _modules()
  for name in LIBRARIES:
    tree = mods[name]
    local = _imports(tree, top_level_only=False) - _imports(tree, top_level_only=True)
    assert not local, f"{name} imports {local} inside a function"


def test_public_names_are_unique():
  """No two modules define a public function or class of the same name (the jnp twins of the packing
  code in clip_prep.py have their own names)."""
  seen = {}
  for name, tree in _modules().items():
    for node in tree.body:
      if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
        assert node.name not in seen, f"{node.name} is defined in {seen.get(node.name)} and {name}"
        seen[node.name] = name


def test_the_kept_experiment_patches_still_apply():
  """benchmarks/patches/*.patch hold measured experiments kept off main; docs/open_vocabulary_experiments.md says
  to `git apply` them to rerun one, so a change to the code they touch must regenerate them."""
  if not shutil.which("git") or not os.path.isdir(os.path.join(REPO, ".git")):
    pytest.skip("needs git and the repository's .git")
  folder = os.path.join(REPO, "benchmarks", "patches")
  patches = sorted(f for f in os.listdir(folder) if f.endswith(".patch"))
  assert patches
  for name in patches:
    out = subprocess.run(["git", "apply", "--check", os.path.join(folder, name)], cwd=REPO, capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, f"{name} no longer applies: {out.stderr.strip()}"


def _anchor(heading: str) -> str:
  """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
  return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _prose(path: str) -> str:
  """A Markdown file without its fenced code blocks (whose `# comments` are not headings, nor their text links)."""
  return re.sub(r"```.*?```", "", open(path, encoding="utf-8").read(), flags=re.S)


def test_every_link_in_the_docs_leads_somewhere():
  """README and docs/ are the newcomer's way in: a relative link names a file of the repository, and a link to a
  section (FILE#anchor) names one of that file's headings."""
  pages = [os.path.join(REPO, "README.md")] + [os.path.join(REPO, "docs", f)
                                               for f in sorted(os.listdir(os.path.join(REPO, "docs"))) if f.endswith(".md")]
  broken, links = [], 0
  for page in pages:
    for target in re.findall(r"\]\(([^)\s]+)\)", _prose(page)):
      if re.match(r"[a-z]+:", target):
        continue
      links += 1
      path, _, anchor = target.partition("#")
      file = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
      where = f"{os.path.relpath(page, REPO)}: ({target})"
      if not os.path.exists(file):
        broken.append(f"{where}: no such file")
      elif anchor and file.endswith(".md"):
        headings = re.findall(r"^#+ (.+)$", _prose(file), flags=re.M)
        if anchor not in {_anchor(h) for h in headings}:
          broken.append(f"{where}: no heading with that anchor")
  assert links > 20  # the pages do link to each other: a regex that found none would pass for nothing
  assert not broken, "\n".join(broken)
