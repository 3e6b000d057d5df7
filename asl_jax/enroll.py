"""Your own signs: a run's vocabulary grown from a few examples of each new sign, without retraining.

A run's last layer is one vector per class over the clip's embedding (models.HybridModel.embed, the
input of `head/logits`; the flip views as in inference). Enrolling a sign adds a column there:

    w = (a_k / r) * p,   b = c_k

where p is the unit mean of the sign's examples' unit embeddings (every view of every example), r the
typical embedding norm, and (a_k, c_k) a scale and bias for k examples, fitted on the base run's **val**
clips when the run was calibrated (`fit_scales`): in several draws, a fifth of the base classes have their
trained vector replaced by one built from k of their train clips, and (a_k, c_k) minimise the val clips'
NLL. So a built vector competes with the trained ones on the scale the val clips show, neither swamping
the old signs nor drowned by them. A gloss the base already has is refined: its column becomes the mean
of the trained vector and the built one.

`enroll` writes a new run directory (the base is only read): the base's run files, label_mapping.json with
the new glosses after the old ones, config.json with the head's depth fixed (`head_layers`), the best
checkpoint with the grown layer, and enrolled.json (what was enrolled from which files). It works wherever a
run works, including as the base of a further enrolment.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import sys

import numpy as np

from asl_jax import atomic, calibration
from asl_jax.errors import ConfigError, DataError

ENROLLED_FILE = "enrolled.json"
SHOTS = (1, 2, 3, 5)  # example counts the scale and bias are fitted for (more examples use the largest)
_SCALE_GRID = np.exp(np.linspace(np.log(0.5), np.log(200.0), 36))
_BIAS_GRID = np.linspace(-15.0, 10.0, 51)
_MAX_FIT_CLIPS = 512  # val clips the fit reads at most (a seeded subset of larger splits)
GLOSS_RE = re.compile(r"^[^\s/\\.][^/\\\x00-\x1f]{0,63}$")


def unit(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


def prototype(emb: np.ndarray) -> np.ndarray:
  """(V, k, E) embeddings of a sign's k examples -> its unit prototype (E,)."""
  return unit(unit(np.asarray(emb).reshape(-1, np.shape(emb)[-1])).mean(0))


def _views_lse(x: np.ndarray) -> np.ndarray:
  m = x.max(-1, keepdims=True)
  return (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))[..., 0]


def fit_scales(train_emb: np.ndarray, train_labels: np.ndarray, val_emb: np.ndarray, val_labels: np.ndarray,
               kernel: np.ndarray, bias: np.ndarray, shots=SHOTS, draws: int = 8, frac: float = 0.2,
               seed: int = 0) -> dict:
  """The scale and bias of a built class vector for each example count in `shots` (see the module doc).
  Embeddings are (V, N, E) (views, clips, E); kernel (E, C) and bias (C,) the trained last layer. Returns
  {"shots", "scale", "bias", "embedding_norm", "draws", "val_clips"} (JSON-ready)."""
  rng = np.random.default_rng(seed)
  train_labels, val_labels = np.asarray(train_labels), np.asarray(val_labels)
  if len(val_labels) > _MAX_FIT_CLIPS:
    keep = np.sort(rng.choice(len(val_labels), _MAX_FIT_CLIPS, replace=False))
    val_emb, val_labels = val_emb[:, keep], val_labels[keep]
  r = float(np.linalg.norm(np.asarray(val_emb, np.float64), axis=-1).mean())
  num_classes = kernel.shape[1]
  logits = np.einsum("vne,ec->vnc", val_emb.astype(np.float64), kernel) + bias  # (V, n, C)
  n = len(val_labels)
  candidates = [c for c in range(num_classes) if (train_labels == c).any()]
  out = {"shots": [], "scale": [], "bias": []}
  for k in shots:
    total = np.zeros((len(_SCALE_GRID), len(_BIAS_GRID)))
    for _ in range(draws):
      pseudo = rng.choice(candidates, max(1, int(round(frac * len(candidates)))), replace=False)
      protos = []
      for c in pseudo:
        idx = np.flatnonzero(train_labels == c)
        idx = rng.choice(idx, min(k, len(idx)), replace=False)
        protos.append(prototype(train_emb[:, idx]))
      cos = np.einsum("vne,ce->vnc", val_emb / r, np.stack(protos))  # (V, n, P)
      rest = np.setdiff1d(np.arange(num_classes), pseudo)
      lse_rest = _views_lse(logits[..., rest])  # (V, n)
      pos = {c: i for i, c in enumerate(pseudo)}
      is_pseudo = np.array([y in pos for y in val_labels])
      true_base = logits[:, np.arange(n), val_labels]  # (V, n)
      true_cos = np.stack([cos[:, i, pos[y]] if y in pos else np.zeros(cos.shape[0])
                           for i, y in enumerate(val_labels)], 1)  # (V, n)
      for i, a in enumerate(_SCALE_GRID):
        lse_new = _views_lse(a * cos)[None] + _BIAS_GRID[:, None, None]  # (B, V, n)
        lse = np.logaddexp(lse_rest[None], lse_new)
        true = np.where(is_pseudo[None, None], a * true_cos[None] + _BIAS_GRID[:, None, None], true_base[None])
        p = np.exp(true - lse).mean(1)  # (B, n): the views' mean probability of the true class
        total[i] += -np.log(np.maximum(p, 1e-30)).mean(-1)
    i, j = np.unravel_index(int(np.argmin(total)), total.shape)
    out["shots"].append(int(k))
    out["scale"].append(float(_SCALE_GRID[i]))
    out["bias"].append(float(_BIAS_GRID[j]))
  return {**out, "embedding_norm": r, "draws": draws, "val_clips": int(n)}


def class_vector(emb: np.ndarray, scales: dict) -> tuple[np.ndarray, float]:
  """A new class's (kernel column (E,), bias) from its examples' (V, k, E) embeddings."""
  k = int(np.shape(emb)[1])
  shots = list(scales["shots"])
  i = max((j for j, s in enumerate(shots) if s <= k), default=0)
  a, c = scales["scale"][i], scales["bias"][i]
  return (a / scales["embedding_norm"]) * prototype(emb), float(c)


def grow_head(params: dict, columns: dict[int, tuple[np.ndarray, float]], num_new: int,
              refine_weight: float = 0.5) -> dict:
  """The parameters with `head/logits` grown by `num_new` columns. `columns` maps a class index to its
  built (vector, bias): an index past the base's classes is a new class; an existing one is refined (mean
  of the trained and the built vector, and of the biases)."""
  head = params["head"]["logits"]
  kernel, bias = np.asarray(head["kernel"], np.float32), np.asarray(head["bias"], np.float32)
  c0 = kernel.shape[1]
  kernel = np.concatenate([kernel, np.zeros((kernel.shape[0], num_new), np.float32)], 1)
  bias = np.concatenate([bias, np.zeros(num_new, np.float32)])
  for c, (w, b) in columns.items():
    if c < c0:
      kernel[:, c] = (1 - refine_weight) * kernel[:, c] + refine_weight * w
      bias[c] = (1 - refine_weight) * bias[c] + refine_weight * b
    else:
      kernel[:, c], bias[c] = w, b
  new = dict(params)
  new["head"] = {**params["head"], "logits": {**head, "kernel": kernel, "bias": bias}}
  return new


@dataclasses.dataclass
class Example:
  gloss: str
  path: str


def find_examples(signs_dir: str) -> tuple[list[Example], list[str]]:
  """SIGNS/<gloss>/<files> -> (the examples, one problem line per folder or file that cannot be used)."""
  from asl_jax import predict as predict_lib  # pylint: disable=import-outside-toplevel
  if not os.path.isdir(signs_dir):
    raise DataError(f"--signs={signs_dir}: not a directory (expected SIGNS/<gloss>/ folders of landmark .npy "
                    "files or videos)")
  examples, problems = [], []
  entries = sorted(os.listdir(signs_dir))
  folders = [e for e in entries if os.path.isdir(os.path.join(signs_dir, e))]
  if not folders:
    raise DataError(f"--signs={signs_dir}: no sign folders in it (expected SIGNS/<gloss>/ with a sign's examples)")
  for gloss in folders:
    folder = os.path.join(signs_dir, gloss)
    if not GLOSS_RE.match(gloss):
      problems.append(f"{folder}: {gloss!r} is not a valid gloss (1-64 characters, not starting with a space "
                      "or a dot, no control characters)")
      continue
    files = [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if not f.startswith(".")]
    usable = [f for f in files if f.endswith(".npy") or predict_lib.is_video(f)]
    for f in files:
      if f not in usable:
        problems.append(f"{f}: not a landmark .npy file or a video ({', '.join(predict_lib.VIDEO_SUFFIXES)}); "
                        "skipped")
    if not usable:
      problems.append(f"{folder}: no examples (put the sign's landmark .npy files or videos in it)")
    examples += [Example(gloss, f) for f in usable]
  return examples, problems


def _load_examples(predictor, examples: list[Example]) -> tuple[dict, list[str]]:
  """{path: prepared clip} and one problem line per example that cannot be used."""
  from asl_jax import predict as predict_lib  # pylint: disable=import-outside-toplevel
  clips, problems = {}, []
  videos = [e for e in examples if predict_lib.is_video(e.path)]
  if videos:
    print(f"extracting the landmarks of {len(videos)} video(s) (MediaPipe)", file=sys.stderr, flush=True)
  for e in examples:
    try:
      if predict_lib.is_video(e.path):
        from asl_jax.extract import landmarks_from_video  # pylint: disable=import-outside-toplevel
        clip = predictor.load_clip(landmarks_from_video(e.path, predictor.run.layout))
      else:
        clip = predictor.load_clip(e.path, layout=_layout_of(e.path, predictor.run.layout))
    except DataError as err:
      problems.append(str(err) if str(err).startswith(e.path) else f"{e.path}: {err}")
      continue
    warning = predict_lib.signal_warning(clip)
    if warning:
      problems.append(f"{e.path}: {warning.split(':')[0]}; not enrolled")
      continue
    clips[e.path] = clip
  return clips, problems


def _layout_of(path: str, default: str) -> str:
  """The landmark layout of a .npy file by its width (any supported layout is enrolled)."""
  from asl_jax.data import layouts  # pylint: disable=import-outside-toplevel
  try:
    width = np.load(path, mmap_mode="r").shape[-1]
  except Exception:  # pylint: disable=broad-except
    return default  # load_clip reports the file
  by_dim = {d: name for name, d in layouts.LAYOUT_DIMS.items()}
  return by_dim.get(width, default)


def embed_clips(predictor, clips: list) -> np.ndarray:
  """(V, N, E) embeddings of prepared clips under a restored run (predict.Predictor)."""
  return predictor.embed_clips(clips)


def enroll(base: str, signs_dir: str, workdir: str, say=print) -> dict:
  """Enrols the signs in SIGNS_DIR/<gloss>/ into a copy of run `base` written to `workdir` (which must not
  exist). Returns {"workdir", "added", "refined", "examples", "problems"}; raises DataError when nothing
  could be enrolled."""
  from asl_jax import predict as predict_lib, run as run_lib  # pylint: disable=import-outside-toplevel
  from asl_jax.checkpoints import Checkpoints  # pylint: disable=import-outside-toplevel
  if os.path.exists(workdir):
    raise ConfigError(f"--workdir={workdir}: exists; asl-enroll writes a new run directory (the base is never "
                      "changed): choose a new name, or remove it first")
  parent = os.path.dirname(os.path.abspath(workdir))
  if not os.path.isdir(parent):
    raise ConfigError(f"--workdir={workdir}: its folder {parent} does not exist")
  examples, problems = find_examples(signs_dir)
  predictor = predict_lib.Predictor(base)
  run = predictor.run
  if run.model.stream_heads:
    raise ConfigError(f"{base}: this run has a head per stream (aux_loss_weight > 0); enrolment supports runs "
                      "with one head")
  if run.visual_dim:
    raise ConfigError(f"{base}: this run also needs visual features; enrolment takes landmark examples only")
  cal = calibration.load(base)
  if not cal or "enrol" not in cal:
    raise ConfigError(f"{base}: the run has no enrolment scales (calibration.json, fitted on val after training); "
                      "run `asl-evaluate --workdir=BASE --calibrate` first")
  clips, bad = _load_examples(predictor, examples)
  problems += bad
  by_gloss: dict[str, list[str]] = {}
  for e in examples:
    if e.path in clips:
      by_gloss.setdefault(e.gloss, []).append(e.path)
  if not by_gloss:
    raise DataError(f"--signs={signs_dir}: no usable example, nothing enrolled")
  paths = [p for g in by_gloss for p in by_gloss[g]]
  emb = predictor.embed_clips([clips[p] for p in paths])
  at = {p: i for i, p in enumerate(paths)}
  glosses = list(run.glosses)
  columns, added, refined = {}, [], []
  for g, files in by_gloss.items():
    vector = class_vector(emb[:, [at[p] for p in files]], cal["enrol"])
    if g in glosses:
      refined.append(g)
      columns[glosses.index(g)] = vector
    else:
      added.append(g)
      columns[len(glosses)] = vector
      glosses.append(g)
  params = grow_head(run.params, columns, len(added))
  tmp = workdir + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  try:
    for name in run_lib.RUN_FILES:
      if os.path.exists(os.path.join(base, name)) and name not in ("config.json", "label_mapping.json"):
        shutil.copy2(os.path.join(base, name), os.path.join(tmp, name))
    config = json.loads(json.dumps(run.config.to_dict()))
    config["head_layers"] = run.config.head_layers or (1 if len(run.glosses) <= 500 else 2)
    atomic.write_json(os.path.join(tmp, "config.json"), config)
    atomic.write_json(os.path.join(tmp, "label_mapping.json"), {str(i): g for i, g in enumerate(glosses)})
    previous = _read_enrolled(base)
    record = {"base": os.path.abspath(base), "base_classes": len(run.glosses), "added": added, "refined": refined,
              "examples": {g: [os.path.abspath(p) for p in files] for g, files in by_gloss.items()},
              "problems": problems, "earlier": previous}
    atomic.write_json(os.path.join(tmp, ENROLLED_FILE), record)
    ckpts = Checkpoints(tmp, max_to_keep=1)
    ckpts.save("best", run.step, {run_lib.eval_params_name(run.config): params},
               {"enrolled_from": os.path.abspath(base), "step": run.step})
    ckpts.close()
    os.replace(tmp, workdir)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  say(f"enrolled {len(added)} new sign(s)" + (f" ({', '.join(added)})" if added else "") +
      (f"; refined {len(refined)} the base already knew ({', '.join(refined)})" if refined else "") +
      f" from {len(paths)} example(s): {len(glosses)} signs in {workdir}")
  return {"workdir": workdir, "added": added, "refined": refined, "examples": len(paths), "problems": problems}


def _read_enrolled(workdir: str) -> dict | None:
  path = os.path.join(workdir, ENROLLED_FILE)
  if not os.path.isfile(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)
