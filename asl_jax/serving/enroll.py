"""Your own signs: a run's vocabulary grown from a few examples of each new sign, without retraining.

Each sign becomes one more class vector in the run's last layer, built from its examples' embeddings with
the scale and bias the base run fitted on its val clips (asl_jax/evaluation/class_vectors.py says how). A gloss the
base already has is refined: its vector becomes the mean of the trained one and the built one.

`enroll` writes a new run directory (the base is only read): the base's run files, label_mapping.json with
the new glosses after the old ones, config.json with the head's depth fixed (`head_layers`), the best
checkpoint with the grown layer, and enrolled.json (what was enrolled from which files, and in "signs" what
each enrolled sign is built from: its examples' embedding sum, count and hashes, and a refined sign's trained
vector). It works wherever a run works, including as the base of a further enrolment, which rebuilds a sign
given more examples from all of them and counts an example given again once.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import re
import unicodedata
import sys

import numpy as np

from asl_jax import atomic, pretrained
from asl_jax.data import features as features_lib, layouts
from asl_jax.errors import ConfigError, DataError
from asl_jax.evaluation import class_vectors
from asl_jax.models import heads
from asl_jax.runs import run_dir
from asl_jax.serving import predict as predict_lib

# A gloss: 1-64 characters, not starting with a space or a dot, no slashes or control characters, not ending
# with "?" (which subtitles use for an unknown sign or a guess). web/src/enrol.js GLOSS_RE is the same rule.
GLOSS_RE = re.compile(r"[^\s/\\.][^/\\\x00-\x1f]{0,63}(?<!\?)")
GLOSS_RULE = "1-64 characters, not starting with a space or a dot, no slashes or control characters, not ending with '?'"


def valid_gloss(gloss) -> bool:
  return isinstance(gloss, str) and GLOSS_RE.fullmatch(gloss) is not None


def gloss_key(gloss: str) -> str:
  """Glosses that differ only in case, Unicode normalisation or surrounding spaces name one sign: ASL glosses
  are often written in capitals (BOOK for the run's book), and macOS spells folder names decomposed."""
  return unicodedata.normalize("NFC", gloss).strip().lower()


def same_gloss(gloss: str, known: list[str]) -> str:
  """`gloss` as spelled in `known` when one there names the same sign (gloss_key; an exact match first), else
  `gloss` itself, NFC-normalised."""
  if gloss in known:
    return gloss
  key = gloss_key(gloss)
  return next((g for g in known if gloss_key(g) == key), unicodedata.normalize("NFC", gloss).strip())


# The file the web page exports its signs to (web/src/enrol.js), and asl-enroll reads as --signs=FILE.json:
# {"format": SIGNS_FORMAT, "version": 1, "layout": "seed162", "signs": [{"gloss": G, "examples":
# [{"landmarks": [[162 numbers] per frame], "fps": F, "recorded": ISO time}, ...]}, ...]}.
SIGNS_FORMAT = "asl_jax signs"
SIGNS_VERSION = 1


@dataclasses.dataclass
class Example:
  gloss: str
  path: str  # the file, or FILE.json#gloss/N for an example of the page's export
  landmarks: np.ndarray | None = None  # the frames, for an example of the page's export


def read_signs_file(path: str) -> tuple[list[Example], list[str]]:
  """The page's export (SIGNS_FORMAT) -> (the examples, one problem line per example that cannot be used).
  A file that is not one is one DataError."""
  try:
    with open(path, encoding="utf-8") as f:
      doc = json.load(f)
  except (OSError, UnicodeDecodeError, ValueError) as e:
    raise DataError(f"--signs={path}: not a signs file exported by the web page ({type(e).__name__}: {e})") from None
  if not isinstance(doc, dict) or doc.get("format") != SIGNS_FORMAT or not isinstance(doc.get("signs"), list):
    raise DataError(f"--signs={path}: not a signs file exported by the web page (no \"format\": "
                    f"\"{SIGNS_FORMAT}\" with a list of signs)")
  if doc.get("version") != SIGNS_VERSION:
    raise DataError(f"--signs={path}: version {doc.get('version')!r} of the signs file; this asl_jax reads "
                    f"version {SIGNS_VERSION}")
  layout = doc.get("layout", "seed162")
  if layout not in layouts.LAYOUT_DIMS:
    raise DataError(f"--signs={path}: unknown landmark layout {layout!r}")
  examples, problems = [], []
  for i, sign in enumerate(doc["signs"], 1):  # counted from 1, as the examples are
    if not isinstance(sign, dict):
      problems.append(f"{path}: sign {i}: {sign!r:.40} is not a sign (an object with \"gloss\" and \"examples\")")
      continue
    gloss = sign.get("gloss")
    if not valid_gloss(gloss):
      problems.append(f"{path}: sign {i}: {gloss!r} is not a valid gloss ({GLOSS_RULE})")
      continue
    items = sign.get("examples") if isinstance(sign.get("examples"), list) else []
    if not items:
      problems.append(f"{path}#{gloss}: no examples")
    for j, item in enumerate(items):
      where = f"{path}#{gloss}/{j + 1}"
      try:
        arr = np.asarray(item["landmarks"], np.float32)
      except (KeyError, TypeError, ValueError) as e:
        problems.append(f"{where}: unreadable landmarks ({type(e).__name__})")
        continue
      if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] != layouts.LAYOUT_DIMS[layout]:
        problems.append(f"{where}: landmarks of shape {arr.shape}, expected (frames, {layouts.LAYOUT_DIMS[layout]})")
        continue
      examples.append(Example(gloss, where, arr))
  return examples, problems


def write_signs_file(path: str, signs: dict[str, list[np.ndarray]], fps: float = 25.0) -> None:
  """The page's export format, from {gloss: [(T, 162) arrays]} (tests, and scripts that make such files)."""
  atomic.write_json(path, {"format": SIGNS_FORMAT, "version": SIGNS_VERSION, "layout": "seed162",
                           "signs": [{"gloss": g, "examples": [{"landmarks": np.asarray(a, np.float32).tolist(),
                                                                "fps": fps} for a in arrs]}
                                     for g, arrs in signs.items()]})


class NoUsableExamples(DataError):
  """No example could be used: the error, with the one line per example or folder saying why (`problems`), and
  for asl-evaluate --signs the clips left out as examples the run was enrolled from (`left_out`)."""

  def __init__(self, message: str, problems: list[str], left_out: list[str] = ()):
    super().__init__(message)
    self.problems, self.left_out = list(problems), list(left_out)


def find_examples(signs_dir: str, use: str = "enrolled") -> tuple[list[Example], list[str]]:
  """SIGNS/<gloss>/<files>, or the page's export (a .json file) -> (the examples, one problem line per folder,
  file or example that cannot be used). `use`: what the problem lines say is not done to them."""
  if os.path.isfile(signs_dir) and signs_dir.lower().endswith(".json"):
    return read_signs_file(signs_dir)
  if not os.path.isdir(signs_dir):
    raise DataError(f"--signs={signs_dir}: not a directory (expected SIGNS/<gloss>/ folders of landmark .npy "
                    "files or videos)")
  examples, problems = [], []
  entries = sorted(os.listdir(signs_dir))
  # Hidden folders (.git, .ipynb_checkpoints) are not signs, as hidden files are not examples.
  folders = [e for e in entries if os.path.isdir(os.path.join(signs_dir, e)) and not e.startswith(".")]
  # Examples beside the sign folders belong to no sign: each is one line, never silently dropped.
  paths = [os.path.join(signs_dir, e) for e in entries if not e.startswith(".")]
  loose = [f for f in paths if os.path.isfile(f) and (predict_lib.is_landmark_file(f) or predict_lib.is_video(f))]
  if not folders:
    raise DataError(f"--signs={signs_dir}: no sign folders in it (expected SIGNS/<gloss>/ with a sign's examples)"
                    + (f"; it holds {len(loose)} example file(s) itself: put them in a folder named after their "
                       "sign and pass that folder's parent" if loose else ""))
  problems += [f"{f}: an example outside a sign folder: move it into SIGNS/<gloss>/; not {use}" for f in loose]
  for gloss in folders:
    folder = os.path.join(signs_dir, gloss)
    if not valid_gloss(gloss):
      problems.append(f"{folder}: {gloss!r} is not a valid gloss ({GLOSS_RULE})")
      continue
    if run_dir.RunDir(folder).has_config():
      problems.append(f"{folder}: a run directory, not a sign's examples")
      continue
    files = [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if not f.startswith(".")]
    usable = [f for f in files if predict_lib.is_landmark_file(f) or predict_lib.is_video(f)]
    for f in files:
      if f not in usable:
        problems.append(f"{f}: not a landmark file (.npy, .parquet, .pose) or a video "
                        f"({', '.join(predict_lib.VIDEO_SUFFIXES)})")
    if not usable:
      problems.append(f"{folder}: no examples (put the sign's landmark files or videos in it)")
    examples += [Example(gloss, f) for f in usable]
  return examples, problems


def example_hash(e: Example) -> str:
  """What tells an example given again from a new one: the SHA-256 of its file, or of an example of the page's
  export, of its frames as float32 (little-endian) bytes, as the page hashes the examples it keeps."""
  if e.landmarks is not None:
    return hashlib.sha256(np.ascontiguousarray(e.landmarks, "<f4").tobytes()).hexdigest()
  digest = hashlib.sha256()
  with open(e.path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def load_examples(predictor, examples: list[Example], use: str = "enrolled") -> tuple[dict, list[str]]:
  """{path: prepared clip} for `predictor`'s run (videos extracted first) and one problem line per example that
  cannot be used (`use`: what the lines say is not done to it)."""
  clips, problems = {}, []
  videos = [e.path for e in examples if e.landmarks is None and predict_lib.is_video(e.path)]
  extracted = {}
  if videos:
    from asl_jax.extract import landmarks_from_videos  # pylint: disable=import-outside-toplevel
    print(f"extracting the landmarks of {len(videos)} video(s) (MediaPipe)", file=sys.stderr, flush=True)
    extracted = dict(zip(videos, landmarks_from_videos(videos, predictor.run.layout)))
  for e in examples:
    try:
      if e.landmarks is not None:
        clip = predictor.load_clip(e.landmarks, layout="seed162")
      elif e.path in extracted:
        if isinstance(extracted[e.path], DataError):
          raise extracted[e.path]
        clip = predictor.load_clip(extracted[e.path])
      else:
        clip = predictor.load_clip(e.path, layout=_layout_of(e.path, predictor.run.layout))
    except DataError as err:
      problems.append(str(err) if str(err).startswith(e.path) else f"{e.path}: {err}")
      continue
    warning = predict_lib.signal_warning(clip)
    if warning:
      problems.append(f"{e.path}: {warning.split(':')[0]}; not {use}")
      continue
    clips[e.path] = clip
  return clips, problems


def _layout_of(path: str, default: str) -> str:
  """The landmark layout of a landmark file by its width, from its header (any supported layout is enrolled)."""
  try:
    return layouts.layout_for_dim(features_lib.read_header(path)[0][-1], path)
  except (DataError, IndexError):
    return default  # load_clip reports the file


def _new_workdir(workdir: str) -> str:
  """The folder that will hold `workdir` (made when the run is written), after checking that `workdir` is new
  and can be made."""
  if os.path.exists(workdir):
    raise ConfigError(f"--workdir={workdir}: exists; asl-enroll writes a new run directory (the base is never "
                      "changed): choose a new name, or remove it first")
  parent = ancestor = os.path.dirname(os.path.abspath(workdir))
  while not os.path.exists(ancestor):  # missing folders are made (as asl-train makes its workdir's), at the end
    ancestor = os.path.dirname(ancestor)
  if not os.path.isdir(ancestor):
    raise ConfigError(f"--workdir={workdir}: {ancestor} is a file, so the run's folder cannot be made there")
  return parent


def vocabulary(base: str) -> list[dict]:
  """The signs of run `base`, in class order: {"class", "gloss", "origin"}, where origin is "trained",
  "enrolled" or "refined" (a trained sign given examples), with "examples" (how many) for the last two."""
  run = run_dir.RunDir(base)
  glosses, signs = run.glosses(), (run.enrolled() or {}).get("signs", {})
  out = []
  for c, g in enumerate(glosses):
    rec = signs.get(g)
    entry = {"class": c, "gloss": g, "origin": "trained" if rec is None else "refined" if "trained" in rec
             else "enrolled"}
    if rec is not None:
      entry["examples"] = rec["examples"]
    out.append(entry)
  return out


def forget(base: str, forget_glosses: list[str], workdir: str, say=print) -> dict:
  """Writes to `workdir` (which must not exist) a copy of run `base` without the enrolled signs named: an
  added sign's class is dropped (the classes after it move up), and a trained sign that was refined gets its
  trained vector back. What the page's "delete sign" does for its own signs. A sign the base was trained on
  (never refined) cannot be forgotten: the run has no vector for it but the trained one. Returns {"workdir",
  "dropped", "restored"}."""
  from asl_jax.runs import restore  # pylint: disable=import-outside-toplevel
  parent = _new_workdir(workdir)
  run = restore.load_run(base)
  before = run_dir.RunDir(run.workdir).enrolled() or {}
  signs = dict(before.get("signs", {}))
  glosses = list(run.glosses)
  wanted, problems = [], []
  for given in forget_glosses:
    g = same_gloss(given, glosses)
    if g not in glosses:
      problems.append(f"{given!r} is not one of its signs")
    elif g not in signs:
      problems.append(f"{g!r} was trained, not enrolled (only signs asl-enroll added or refined can be forgotten)")
    elif g not in wanted:
      wanted.append(g)
  if problems:
    raise ConfigError(f"--forget: {base}: " + "; ".join(problems) + " (`asl-enroll --from=RUN --list` lists the "
                      "run's signs and where each came from)")
  restored = [g for g in wanted if "trained" in signs[g]]
  dropped = [g for g in wanted if g not in restored]
  params = _without(run.params, glosses, {g: signs[g]["trained"] for g in restored}, dropped)
  glosses = [g for g in glosses if g not in dropped]
  record = {"base": os.path.abspath(base), "base_classes": len(run.glosses), "added": [], "refined": [],
            "examples": {}, "problems": [], "check": {}, "forgotten": wanted,
            "signs": {g: r for g, r in signs.items() if g not in wanted},
            "earlier": {k: v for k, v in before.items() if k != "signs"} or None}
  _write(run, base, workdir, parent, params, glosses, record)
  say(f"forgot {len(wanted)} sign(s)" + (f"; dropped {', '.join(dropped)}" if dropped else "") +
      (f"; {', '.join(restored)} back to the base's trained vector" if restored else "") +
      f": {len(glosses)} signs in {workdir}")
  return {"workdir": workdir, "dropped": dropped, "restored": restored}


def _without(params: dict, glosses: list[str], trained: dict[str, dict], dropped: list[str]) -> dict:
  """The parameters with the last layer's columns of `trained` ({gloss: {"kernel", "bias"}}) set back to those
  vectors, and the columns of `dropped` removed."""
  layer = params["head"]["logits"]
  kernel, bias = np.array(layer["kernel"], np.float32), np.array(layer["bias"], np.float32)  # copies
  for g, vector in trained.items():
    kernel[:, glosses.index(g)], bias[glosses.index(g)] = vector["kernel"], vector["bias"]
  keep = [c for c, g in enumerate(glosses) if g not in dropped]
  return {**params, "head": {**params["head"], "logits": {**layer, "kernel": kernel[:, keep], "bias": bias[keep]}}}


def _write(run, base: str, workdir: str, parent: str, params: dict, glosses: list[str], record: dict) -> None:
  """The new run: the base's files, with `params`, the classes `glosses`, the head's depth fixed (it would
  otherwise follow the class count) and enrolled.json `record`."""
  config = json.loads(json.dumps(run.config.to_dict()))
  config["head_layers"] = heads.hidden_layers(len(run.glosses), run.config.head_layers)
  os.makedirs(parent, exist_ok=True)
  pretrained.write_run(run, workdir, params, {"enrolled_from": os.path.abspath(base), "step": run.step},
                       {run_dir.CONFIG_FILE: config, run_dir.LABELS_FILE: {str(i): g for i, g in enumerate(glosses)},
                        run_dir.ENROLLED_FILE: record})


def enroll(base: str, signs_dir: str, workdir: str, say=print) -> dict:
  """Enrols the signs in SIGNS_DIR/<gloss>/ into a copy of run `base` written to `workdir` (which must not
  exist). Returns {"workdir", "added", "refined", "examples", "problems"}; raises DataError when nothing
  could be enrolled."""
  parent = _new_workdir(workdir)
  signs_root, inside = os.path.realpath(signs_dir), os.path.realpath(parent)
  if os.path.isdir(signs_root) and (inside == signs_root or inside.startswith(signs_root + os.sep)):
    raise ConfigError(f"--workdir={workdir}: inside --signs={signs_dir}, where the next enrolment would take it "
                      "for a sign: choose a folder outside it")
  examples, problems = find_examples(signs_dir)
  predictor = predict_lib.Predictor(base)
  run = predictor.run
  if run.model.stream_heads:
    raise ConfigError(f"{base}: this run has a head per stream (aux_loss_weight > 0); enrolment supports runs "
                      "with one head")
  if run.visual_dim:
    raise ConfigError(f"{base}: this run also needs visual features; enrolment takes landmark examples only")
  cal = run.calibration
  if not cal or "enrol" not in cal:
    raise ConfigError(f"{base}: the run has no enrolment scales (calibration.json, fitted on val after training); "
                      "run `asl-evaluate --workdir=BASE --calibrate` first")
  clips, bad = load_examples(predictor, examples)
  problems += bad
  glosses = list(run.glosses)
  by_gloss: dict[str, list[str]] = {}
  spellings: dict[str, set[str]] = {}
  for e in examples:
    if e.path in clips:
      g = same_gloss(e.gloss, glosses + list(by_gloss))
      by_gloss.setdefault(g, []).append(e.path)
      spellings.setdefault(g, set()).add(e.gloss)
  if not by_gloss:
    raise NoUsableExamples(f"--signs={signs_dir}: no usable example, nothing enrolled"
                           + (f" ({len(problems)} skipped, each for the reason given)" if problems else ""), problems)
  # The signs enrolled into the base before (class_vectors: the sum of their examples' unit embeddings and
  # their count; a trained sign's trained vector): a sign given again is rebuilt from all its examples, and an
  # example it was enrolled from before (the same file again, or the page's export of the same recording) is
  # counted once.
  before = run_dir.RunDir(run.workdir).enrolled() or {}
  earlier = before.get("signs", {})
  by_example = {e.path: e for e in examples}
  hashes = {p: example_hash(by_example[p]) for files in by_gloss.values() for p in files}
  for g in [g for g in by_gloss if g in earlier]:
    seen = set(earlier[g].get("hashes", ()))
    again = [p for p in by_gloss[g] if hashes[p] in seen]
    if again:
      by_gloss[g] = [p for p in by_gloss[g] if hashes[p] not in seen]
      say(f"{g}: {len(again)} example(s) enrolled into it before (the same landmarks), counted once" +
          ("" if by_gloss[g] else "; the sign is unchanged"))
      if not by_gloss[g]:
        del by_gloss[g]
  if not by_gloss:
    raise DataError(f"--signs={signs_dir}: every example was enrolled into {base} before; nothing new to enrol")
  paths = [p for g in by_gloss for p in by_gloss[g]]
  emb = predictor.embed_clips([clips[p] for p in paths])
  at = {p: i for i, p in enumerate(paths)}
  layer = run.params["head"]["logits"]
  columns, own, added, refined, signs = {}, {}, [], [], {}
  for g, files in by_gloss.items():
    c = glosses.index(g) if g in glosses else len(glosses)
    own[c] = e = emb[:, [at[p] for p in files]]
    prior = earlier.get(g)
    columns[c] = class_vectors.class_vector(e, cal["enrol"], prior)
    signs[g] = {"sum": (class_vectors.example_sum(e) + (np.asarray(prior["sum"]) if prior else 0.0)).tolist(),
                "examples": e.shape[1] + (prior["examples"] if prior else 0),
                "hashes": (prior.get("hashes", []) if prior else []) + [hashes[p] for p in files]}
    if c == len(glosses):
      added.append(g)
      glosses.append(g)
      continue
    refined.append(g)
    if prior is None:  # refined the first time: its vector as the base has it (trained, or from a run enrolled
      # before runs kept their signs) is what every later refinement starts from
      signs[g]["trained"] = {"kernel": np.asarray(layer["kernel"], np.float64)[:, c].tolist(),
                             "bias": float(np.asarray(layer["bias"])[c])}
    elif "trained" in prior:
      signs[g]["trained"] = prior["trained"]
  at_class = {glosses.index(g): r for g, r in earlier.items() if g in glosses}
  params = class_vectors.grow_head(run.params, columns, len(added), earlier=at_class)
  checks = class_vectors.check_examples(run.params, columns, len(added), own, cal["enrol"],
                                        float(run.model.temperature), earlier=at_class)
  check = {glosses[c]: {"examples": r["examples"], "earlier": r["earlier"],
                        "recognised_left_out": sum(o == c for o in r["left_out"]),
                        "left_out_taken_for": [glosses[o] for o in r["left_out"] if o != c],
                        "closest": glosses[r["closest"]], "closest_prob": round(r["closest_prob"], 4)}
           for c, r in checks.items()}
  record = {"base": os.path.abspath(base), "base_classes": len(run.glosses), "added": added, "refined": refined,
            "examples": {g: [p if "#" in p else os.path.abspath(p) for p in files] for g, files in by_gloss.items()},
            "problems": problems, "check": check, "signs": {**earlier, **signs},
            # the enrolments before this one (their signs are in "signs" above)
            "earlier": {k: v for k, v in before.items() if k != "signs"} or None}
  _write(run, base, workdir, parent, params, glosses, record)
  for g, given in spellings.items():
    if given != {g}:
      say(f"{', '.join(sorted(given - {g}))}: taken as {g} (glosses that differ only in case name one sign)")
  say(f"enrolled {len(added)} new sign(s)" + (f" ({', '.join(added)})" if added else "") +
      (f"; refined {len(refined)} the base already knew ({', '.join(refined)})" if refined else "") +
      f" from {len(paths)} example(s): {len(glosses)} signs in {workdir}")
  for g in [g for g in by_gloss if g in earlier]:
    say(f"{g}: built from all {signs[g]['examples']} of its examples ({earlier[g]['examples']} enrolled before), as if "
        "given at once")
  for line in check_lines(check):
    say(line)
  return {"workdir": workdir, "added": added, "refined": refined, "examples": len(paths), "problems": problems,
          "check": check}


def tried(r: dict) -> int:
  """How many of a sign's examples its check tried (one entry of `enroll`'s "check"), each left out once: those
  recognised and those taken for another sign (class_vectors.check_examples decides which are tried)."""
  return r["recognised_left_out"] + len(r["left_out_taken_for"])


def unsure(r: dict) -> bool:
  """Whether a sign's check (one entry of `enroll`'s "check") calls for a warning: fewer than half of the
  examples it tried recognised when left out of its vector. On held-out WLASL signs enrolled from 3 examples
  (benchmarks/enrolment_check.py, scored on val), the val clips of such signs are recognised about half as
  often as the others'."""
  return tried(r) > 0 and 2 * r["recognised_left_out"] < tried(r)


def check_lines(check: dict) -> list[str]:
  """One line a sign from `enroll`'s check: `warning: ...` naming the signs its left-out examples were taken
  for when it is `unsure`, else `check: ...`."""
  lines = []
  for g, r in check.items():
    k, ok, before = r["examples"], r["recognised_left_out"], r.get("earlier", 0)
    without = f"without it, the run takes {'its example' if k == 1 else 'its examples'} for {r['closest']} ({r['closest_prob']:.2f})"
    # what each tried example was recognised from: the others given now, and those enrolled before
    others = f"the other {k - 1}" if not before else f"its other {k + before - 1} ({before} enrolled before)"
    new = "new " if before else ""
    if not tried(r):
      lines.append(f"check: {g}: one example, which cannot be tried on another; {without}. More examples make a "
                   "sign more reliable")
    elif not unsure(r):
      recognised = (f"its {new}example is" if k == 1 else f"each of its {k} {new}examples is" if ok == k
                    else f"{ok} of its {k} {new}examples are")
      lines.append(f"check: {g}: {recognised} recognised from {others}; {without}")
    else:
      taken = [o for o, _ in collections.Counter(r["left_out_taken_for"]).most_common()]
      counted = f"its {new}example is not" if k == 1 else f"{ok} of its {k} {new}examples"
      lines.append(f"warning: {g}: {counted} recognised from {others}, "
                   f"{'taken' if k == 1 else 'the rest taken'} for {', '.join(taken)}: expect {g} to be confused "
                   f"with {' and '.join(taken[:2])}. Add examples, or check they are all the same sign")
  return lines
