"""The module graph flows one way: libraries never import the applications built on them, and the
top-level imports between asl_jax modules form no cycle (so no function-local import dodges one)."""

import ast
import os

from conftest import REPO

ROOT = os.path.join(REPO, "asl_jax")
APPLICATIONS = {"asl_jax.train", "asl_jax.evaluate", "asl_jax.predict", "asl_jax.export", "asl_jax.cli",
                "asl_jax.live.recognizer", "asl_jax.live.stream", "asl_jax.enroll"}
LIBRARIES = {"asl_jax.run", "asl_jax.restore", "asl_jax.evaluation", "asl_jax.inference", "asl_jax.input_pipeline",
             "asl_jax.landmark_features", "asl_jax.augment", "asl_jax.clip_prep", "asl_jax.checkpoints",
             "asl_jax.config", "asl_jax.losses", "asl_jax.metrics", "asl_jax.optim", "asl_jax.sharding",
             "asl_jax.live.segmenter", "asl_jax.live.scoring", "asl_jax.live.writers", "asl_jax.calibration",
             "asl_jax.class_vectors"}


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
