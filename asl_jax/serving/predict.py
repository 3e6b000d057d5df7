"""Predictions for new clips from a trained run: top-k glosses with probabilities.

The checkpoint is restored once; each clip goes through the same preprocessing as training (layout ->
canonical frames -> normalisation -> uniform sampling) and one jitted forward pass.
"""

from __future__ import annotations

import os
import sys
from typing import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from asl_jax.data import features as features_lib, formats, input_pipeline, layouts, packed as packed_lib
from asl_jax.errors import DataError
from asl_jax.evaluation import inference
from asl_jax.runs.restore import TrainedRun, load_run, split_workdirs

VIDEO_SUFFIXES = features_lib.VIDEO_SUFFIXES


class Predictor:
  """Restores a run once and predicts batches of clips."""

  def __init__(self, workdir: str, checkpoint: str = "best", batch_size: int = 32):
    self.run: TrainedRun = load_run(workdir, checkpoint)
    self.batch_size = batch_size
    log_probs = inference.log_probs_fn(self.run.config, self.run.model, self.run.visual_norm)
    self._forward = jax.jit(lambda params, data, idx: jnp.exp(log_probs(params, data, idx)))
    self._embed = jax.jit(inference.embeddings_fn(self.run.config, self.run.model, self.run.visual_norm))
    # The unknown-sign threshold on the calibrated top-1 probability (None: the run has none).
    self.unknown_threshold = self.run.unknown_threshold

  @property
  def glosses(self) -> tuple[str, ...]:
    return self.run.glosses

  def load_clip(self, landmarks: str | np.ndarray, visual: str | np.ndarray | None = None,
                layout: str | None = None):
    """A prepared clip from files (or arrays) in the run's landmark layout (or `layout`: every layout
    becomes the same canonical points) and visual dimension."""
    if layout is None and isinstance(landmarks, str) and formats.is_landmark_format(landmarks):
      layout = "holistic543"  # what a Kaggle parquet or a .pose file is read as
    layout = layout or self.run.layout
    dim = layouts.LAYOUT_DIMS[layout]
    raw = features_lib.load_array(landmarks, dim) if isinstance(landmarks, str) else features_lib.validate_array(
        landmarks, dim, "landmarks")
    vis = None
    if self.run.visual_dim:
      if visual is None:
        raise DataError(f"{landmarks if isinstance(landmarks, str) else 'clip'}: this model also needs visual "
                        f"features ({self.run.visual_dim}-d {features_lib.VISUAL_SUFFIX}); pass --gemma")
      vis = features_lib.load_array(visual, self.run.visual_dim) if isinstance(visual, str) else (
          features_lib.validate_array(visual, self.run.visual_dim, "visual features"))
    return packed_lib.prepare_clip(raw, layout, self.run.config.max_frames, vis, self.run.config.max_frames)

  def _batches(self, fn, clips: Sequence):
    """fn(params, data, idx) over prepared clips in fixed-size batches (padding slots repeat the first clip,
    so each function compiles once): one array per batch, its real clips only, along the last batch axis."""
    cfg = self.run.config
    for idx, _, count in inference.padded_batches(len(clips), self.batch_size):
      points, parts, lengths, visual, vlen = packed_lib.pack_clips(
          [clips[i] for i in idx], cfg.max_frames, cfg.max_frames if self.run.visual_dim else 0, self.run.visual_dim)
      data = input_pipeline.DeviceData(points=points, parts=parts, lengths=lengths,
                                       labels=np.zeros(len(lengths), np.int32), visual=visual,
                                       visual_lengths=vlen)
      yield np.asarray(fn(self.run.params, data, np.arange(self.batch_size, dtype=np.int32))), count

  def predict_clips(self, clips: Sequence) -> np.ndarray:
    """(N, C) class probabilities for prepared clips."""
    out = [p[:count] for p, count in self._batches(self._forward, clips)]
    return np.concatenate(out) if out else np.zeros((0, len(self.glosses)), np.float32)

  def embed_clips(self, clips: Sequence) -> np.ndarray:
    """(V, N, E): each prepared clip's embedding in each test-time view (inference.embeddings)."""
    return np.concatenate([e[:, :count] for e, count in self._batches(self._embed, clips)], 1)

  def top_k(self, probs: np.ndarray, k: int = 5) -> list[list[dict]]:
    if k < 1:
      raise DataError(f"top_k={k}: must be >= 1")
    k = min(k, probs.shape[-1])
    order = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
    return [[{"gloss": self.glosses[c], "class": int(c), "prob": float(p[c])} for c in row]
            for row, p in zip(order, probs)]


def is_unknown(top_k: list[dict], threshold: float | None) -> bool:
  """Whether a prediction's top-1 probability is below the unknown threshold (never without one)."""
  return threshold is not None and top_k[0]["prob"] < threshold


def signal_warning(clip) -> str | None:
  """Why a prepared clip carries no usable landmark signal, or None: nothing detected in any frame (an
  all-zero file, or a video where MediaPipe found nobody), or no hand in any frame."""
  parts = np.asarray(clip[1])
  if not parts.any():
    return "no landmarks detected in any frame (all zeros): the prediction is a guess"
  if not parts[:, :2].any():
    return "no hands detected in any frame: the prediction is a guess"
  return None


def is_video(path: str) -> bool:
  return path.lower().endswith(VIDEO_SUFFIXES)


def is_landmark_file(path: str) -> bool:
  """A .npy (not visual features), Kaggle ISLR .parquet or pose-format .pose file."""
  return (path.endswith(".npy") and not path.endswith(features_lib.VISUAL_SUFFIX)) or formats.is_landmark_format(path)


def expand_inputs(paths: Iterable[str], kind: str = "landmarks") -> list[str]:
  """Files as given; a directory stands for its landmark files (*_landmarks.npy, else *.npy) or, with
  kind="video", its video files, sorted. A file of the other kind is one clear error naming the flag."""
  out = []
  for p in paths:
    if os.path.isdir(p):
      names = sorted(os.listdir(p))
      if kind == "video":
        found = [n for n in names if is_video(n)]
        what = f"videos ({', '.join(VIDEO_SUFFIXES)})"
      else:
        found = [n for n in names if n.endswith(features_lib.LANDMARK_SUFFIX)] or [
            n for n in names if is_landmark_file(n)]
        what = "landmark files (.npy, .parquet, .pose)"
      if not found:
        hint = " (videos go with --video)" if kind != "video" and any(is_video(n) for n in names) else ""
        raise DataError(f"{p}: no {what} in this directory{hint}")
      out += [os.path.join(p, n) for n in found]
    elif not os.path.exists(p):
      raise DataError(f"{p}: file not found")
    elif kind == "video" and not is_video(p):
      raise DataError(f"{p}: not a video ({', '.join(VIDEO_SUFFIXES)}); landmark .npy files go with --landmarks")
    elif kind != "video" and is_video(p):
      raise DataError(f"{p}: a video given as landmarks; pass it with --video")
    elif kind != "video" and p.endswith(features_lib.VISUAL_SUFFIX):
      raise DataError(f"{p}: visual features given as landmarks; pass them with --gemma")
    else:
      out.append(p)
  return out


def visual_for(landmarks_path: str, visual: str | None) -> str | None:
  """The visual file for a landmarks file: `visual` itself, or {id}_gemma.npy inside a `visual` directory."""
  if visual is None or not os.path.isdir(visual):
    return visual
  base = os.path.basename(landmarks_path)
  vid = base[:-len(features_lib.LANDMARK_SUFFIX)] if base.endswith(features_lib.LANDMARK_SUFFIX) else os.path.splitext(base)[0]
  return features_lib.visual_path(visual, vid)


def predict_files(workdir, landmarks: Sequence[str] = (), visual: str | None = None, top_k: int = 5,
                  checkpoint: str = "best", videos: Sequence[str] = (),
                  unknown_threshold: float | None = None) -> list[dict]:
  """One result per input file, in order: {"file", "top_k": [{"gloss", "class", "prob"}, ...], "unknown"}
  (plus "warning" for a guess), or {"file", "error"} for an input that cannot be used (unreadable, wrong
  shape, a video that fails to extract): each input fails alone. "unknown" is true when the top-1
  probability is below `unknown_threshold` (default: the run's, fitted on val; calibration.py). `landmarks`
  are .npy files or directories of them, `videos` video files or directories (MediaPipe extracts their
  landmarks first). `workdir` may name several runs ("a,b" or a list) with the same classes: their
  probabilities are averaged, and each result lists them under "runs"."""
  files = expand_inputs(landmarks) + expand_inputs(videos, "video")
  if not files:
    raise DataError("no inputs: give landmark .npy files or videos")
  workdirs = split_workdirs(workdir)
  if not workdirs:
    raise DataError("--workdir: no run directory given")
  totals, first, raw_cache, errors = {}, None, {}, {}  # file -> summed probabilities over the runs
  for wd in workdirs:
    predictor = Predictor(wd, checkpoint)
    if visual and not predictor.run.visual_dim:
      raise DataError(f"--gemma={visual}: the run in {wd} was trained on landmarks only and would ignore them; "
                      "leave --gemma out")
    if first is not None and predictor.glosses != first.glosses:
      raise DataError(f"{wd}: cannot be combined with {workdirs[0]}: the runs have different classes")
    if predictor.run.visual_dim and any(map(is_video, files)):
      raise DataError(f"{wd} also needs visual features, which predict does not extract from videos: extract "
                      "them (scripts/extract_visual_features.py) and pass --landmarks and --gemma")
    clips = {}
    n_videos = sum(map(is_video, files))
    bar = tqdm.tqdm(total=n_videos, desc="extracting landmarks", unit="video", file=sys.stderr,
                    disable=not n_videos or bool(raw_cache) or not sys.stderr.isatty(), leave=False)
    if n_videos and not raw_cache:  # the bar stays at 0 while MediaPipe starts: say so (a log gets this line alone)
      print(f"extracting the landmarks of {n_videos} video(s) (MediaPipe; its start takes a few seconds)",
            file=sys.stderr, flush=True)
    todo = list(dict.fromkeys(f for f in files if f not in errors and is_video(f)
                              and (f, predictor.run.layout) not in raw_cache))
    if todo:  # each video once per layout, all of them in one extraction process a core
      from asl_jax.extract import landmarks_from_videos  # pylint: disable=import-outside-toplevel
      got = landmarks_from_videos(todo, predictor.run.layout, progress=lambda n: bar.update(n - bar.n))
      raw_cache.update({(f, predictor.run.layout): r for f, r in zip(todo, got)})
    for f in files:
      if f in errors:
        continue
      try:
        if is_video(f):
          raw = raw_cache[(f, predictor.run.layout)]
          if isinstance(raw, DataError):
            raise raw
          clips[f] = predictor.load_clip(raw)
        else:
          clips[f] = predictor.load_clip(f, visual_for(f, visual))
      except DataError as e:
        errors[f] = str(e)
    bar.close()
    good = list(dict.fromkeys(f for f in files if f not in errors))  # a file given twice is predicted once
    for f, p in zip(good, predictor.predict_clips([clips[f] for f in good]) if good else ()):
      totals[f] = totals.get(f, 0.0) + p
    first = first or predictor
  good = list(dict.fromkeys(f for f in files if f not in errors))  # a file that failed for any run has no result
  top = first.top_k(np.stack([totals[f] for f in good]) / len(workdirs), top_k) if good else []
  rows_of = {}
  threshold = first.unknown_threshold if unknown_threshold is None else unknown_threshold
  for f, t in zip(good, top):
    row = {"file": f, "top_k": t, "unknown": is_unknown(t, threshold)}
    warning = signal_warning(clips[f]) if first.run.config.use_landmarks else None
    if warning:
      row["warning"] = warning
    if len(workdirs) > 1:
      row["runs"] = [os.path.abspath(w) for w in workdirs]
    rows_of[f] = row
  return [rows_of.get(f) or {"file": f, "error": errors[f].removeprefix(f + ": ")} for f in files]
