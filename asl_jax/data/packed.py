"""A split file's clips loaded once into packed arrays, cached on disk and memory-mapped.

`load_packed` reads every clip of the split file that has features (all subsets at once), converts the
landmarks to the canonical representation, normalises them, resamples clips longer than `max_frames`
uniformly, and pads to `max_frames`. The arrays are written to a cache directory keyed by the split
file's content, every feature file's size and mtime, and the settings, so a second start is a handful of
`np.load(mmap_mode="r")` calls; any change to the inputs makes a new key.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import errno
import functools
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from typing import Sequence

import numpy as np

from asl_jax import config as config_lib
from asl_jax.config import default
from asl_jax.data import features as features_lib, formats, layouts, splits as splits_lib
from asl_jax.errors import DataError

CACHE_VERSION = 1
SUBSET_CODES = {name: i for i, name in enumerate(splits_lib.SUBSETS)}
ON_BAD_FILE = config_lib.choices("on_bad_file")


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """Where the data is and how to pack it (the data fields of the config)."""

  data_dir: str
  dataset: str = default("dataset")
  val_participants: str = default("val_participants")
  test_participants: str = default("test_participants")
  subset: str = default("subset")
  landmarks_dir: str = default("landmarks_dir")  # empty: {data_dir}/landmarks
  landmarks_pattern: str = default("landmarks_pattern")  # a clip's file name, {id} its video id
  gemma_pattern: str = default("gemma_pattern")
  gemma_features_dir: str = default("gemma_features_dir")  # the visual features; empty: landmarks only
  gemma_feature_dim: int = default("gemma_feature_dim")  # 0: extraction_metadata.json, else the files
  landmark_layout: str = default("landmark_layout")
  max_frames: int = default("max_frames")
  on_bad_file: str = default("on_bad_file")  # skip: drop unreadable / NaN / wrong-shape clips, reported
  cache_dir: str = default("cache_dir")  # empty: $ASL_JAX_CACHE or ~/.cache/asl_jax; "none": no cache

  @classmethod
  def from_config(cls, config) -> "DataSpec":
    return cls(**config_lib.pick(config, {f.name: f.name for f in dataclasses.fields(cls)}))

  @property
  def split_path(self) -> str:
    if self.dataset == "kaggle_islr":
      return os.path.join(self.data_dir, splits_lib.KAGGLE_TRAIN_CSV)
    if self.dataset == "asl_citizen":
      return os.path.join(self.data_dir, splits_lib.CITIZEN_SPLITS)
    return splits_lib.resolve_split_path(self.data_dir, self.subset)

  def read_split(self) -> splits_lib.Split:
    """The dataset's clips, subsets and classes."""
    if self.dataset == "kaggle_islr":
      return splits_lib.read_kaggle_islr(self.data_dir, self.val_participants, self.test_participants)
    if self.dataset == "asl_citizen":
      return splits_lib.read_asl_citizen(self.data_dir)
    split_path = self.split_path
    names = splits_lib.read_class_names(os.path.dirname(split_path))
    if names is None:
      logging.warning("%s: no class list beside the split file, so glosses will be class numbers (\"37\"); put "
                      "wlasl_class_list.txt (index<TAB>gloss per line) or WLASL_v0.3.json in %s to name them",
                      split_path, os.path.dirname(os.path.abspath(split_path)))
    return splits_lib.read_split(split_path, names)

  @property
  def landmarks_path(self) -> str:
    if self.dataset == "kaggle_islr":
      return self.landmarks_dir or self.data_dir
    return self.landmarks_dir or os.path.join(self.data_dir, "landmarks")

  def landmark_file(self, entry: splits_lib.Entry) -> str:
    """A clip's landmark file: the path its dataset names (Kaggle ISLR), else landmarks_pattern's."""
    if entry.path:
      return os.path.join(self.landmarks_path, entry.path)
    return features_lib.landmark_path(self.landmarks_path, entry.video_id, self.landmarks_pattern)

  def visual_file(self, video_id: str) -> str:
    return features_lib.visual_path(self.gemma_features_dir, video_id, self.gemma_pattern)


@dataclasses.dataclass
class Packed:
  """All clips of one split file with features. N clips, T = max_frames.

  points (N, T, 54, 3) float32 canonical, normalised; parts (N, T, 4) bool presence; lengths (N,) int32
  real frames; visual (N, Tv, G) float32 or None with visual_lengths (N,); labels (N,) int32 in
  0..K-1; subsets (N,) int8 codes of ("train", "val", "test").
  """

  points: np.ndarray
  parts: np.ndarray
  lengths: np.ndarray
  labels: np.ndarray
  subsets: np.ndarray
  video_ids: tuple[str, ...]
  split: splits_lib.Split
  report: dict
  visual: np.ndarray | None = None
  visual_lengths: np.ndarray | None = None

  @property
  def num_classes(self) -> int:
    return self.split.num_classes

  @property
  def visual_dim(self) -> int:
    return 0 if self.visual is None else int(self.visual.shape[-1])

  def indices(self, subsets: Sequence[str]) -> np.ndarray:
    """Clip indices of the given subsets (e.g. ("train", "val"))."""
    codes = [SUBSET_CODES[s] for s in subsets]
    return np.flatnonzero(np.isin(self.subsets, codes)).astype(np.int32)


def _resample_index(length: int, max_frames: int) -> np.ndarray:
  if length <= max_frames:
    return np.arange(length)
  return np.round(np.linspace(0, length - 1, max_frames)).astype(np.int64)


def prepare_clip(raw: np.ndarray, layout: str, max_frames: int, visual: np.ndarray | None = None,
                 visual_frames: int | None = None):
  """One validated clip -> (points (t, 54, 3), parts (t, 4), visual (tv, G) or None), t <= max_frames:
  canonical, normalised, long clips resampled uniformly. Packing and prediction share it."""
  points, parts = layouts.to_canonical(raw, layout)
  points = layouts.normalize(points, parts)
  idx = _resample_index(len(points), max_frames)
  if visual is not None:
    visual = visual[_resample_index(len(visual), visual_frames or max_frames)]
  return points[idx], parts[idx], visual


def _empty_arrays(n: int, max_frames: int, visual_frames: int = 0, visual_dim: int = 0):
  """Zeroed (points, parts, lengths, visual, visual_lengths) for n clips."""
  return (np.zeros((n, max_frames, layouts.NUM_POINTS, 3), np.float32),
          np.zeros((n, max_frames, layouts.NUM_PARTS), bool), np.zeros(n, np.int32),
          np.zeros((n, visual_frames, visual_dim), np.float32) if visual_dim else None,
          np.zeros(n, np.int32) if visual_dim else None)


def _put(arrays, i: int, clip) -> None:
  """Writes one prepared clip (`prepare_clip`'s result) into row i of `_empty_arrays`."""
  points, parts, lengths, visual, vis_lengths = arrays
  p, pa, v = clip
  points[i, :len(p)], parts[i, :len(p)], lengths[i] = p, pa, len(p)
  if v is not None:
    visual[i, :len(v)], vis_lengths[i] = v, len(v)


def pack_clips(clips, max_frames: int, visual_frames: int = 0, visual_dim: int = 0):
  """Padded arrays (points, parts, lengths, visual, visual_lengths) of prepared clips (a list of
  `prepare_clip` results)."""
  arrays = _empty_arrays(len(clips), max_frames, visual_frames, visual_dim)
  for i, clip in enumerate(clips):
    _put(arrays, i, clip)
  return arrays


def _cache_root(spec: DataSpec) -> str | None:
  return None if spec.cache_dir == "none" else cache_root(spec.cache_dir)


def cache_root(cache_dir: str = "") -> str:
  """Where asl_jax caches (config.cache_dir): the given directory, else $ASL_JAX_CACHE or ~/.cache/asl_jax."""
  return cache_dir or os.environ.get("ASL_JAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "asl_jax")


@functools.lru_cache(maxsize=1)
def code_version() -> str:
  """A hash of the code that reads, checks and prepares the clips (this module, layouts, features, formats): any
  change to it makes new cache keys, so old packed arrays are never reused by new code."""
  h = hashlib.sha256()
  for path in (__file__, layouts.__file__, features_lib.__file__, formats.__file__):
    with open(path, "rb") as f:
      h.update(f.read())
  return h.hexdigest()[:16]


def _cache_key(spec: DataSpec, split: splits_lib.Split, files: Sequence[str]) -> str:
  """The packed arrays' identity: the settings, the code, the split as read (its clips, subsets, classes and
  names, whatever files it came from) and every feature file's size and time."""
  h = hashlib.sha256()
  settings = dataclasses.asdict(spec)
  settings.pop("cache_dir")
  h.update(json.dumps([CACHE_VERSION, code_version(), settings, os.path.abspath(split.path)],
                      sort_keys=True).encode())
  h.update(json.dumps([[dataclasses.astuple(e) for e in split.entries], split.class_ids, split.glosses]).encode())
  for p in files:
    st = os.stat(p)
    h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
  return h.hexdigest()[:24]


_ARRAYS = ("points", "parts", "lengths", "labels", "subsets", "visual", "visual_lengths")


def _remove_stale_temps(root: str) -> None:
  """Removes half-written cache entries (.tmp-<pid>-*) whose writer process is gone (killed mid-write)."""
  try:
    names = os.listdir(root)
  except OSError:
    return
  for name in names:
    if not name.startswith(".tmp-"):
      continue
    pid = name.split("-")[1]
    alive = False
    if pid.isdigit():
      try:
        os.kill(int(pid), 0)
        alive = True
      except ProcessLookupError:
        alive = False
      except PermissionError:
        alive = True
    if not alive:  # also names without a pid
      shutil.rmtree(os.path.join(root, name), ignore_errors=True)
      logging.info("removed a half-written cache entry %s", name)


def _save_cache(path: str, packed: Packed) -> None:
  parent = os.path.dirname(path)
  try:
    os.makedirs(parent, exist_ok=True)
    _remove_stale_temps(parent)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-", dir=parent)
  except OSError as e:  # an unwritable cache: the run goes on without it
    _warn_uncached(f"cannot write the packed-data cache in {parent}", e)
    return
  try:
    for name in _ARRAYS:
      arr = getattr(packed, name)
      if arr is not None:
        np.save(os.path.join(tmp, name + ".npy"), arr)
    with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
      json.dump({"video_ids": packed.video_ids, "report": packed.report}, f)
    os.replace(tmp, path)  # atomic: readers see a complete cache entry or none
  except OSError as e:
    shutil.rmtree(tmp, ignore_errors=True)
    if e.errno in (errno.ENOTEMPTY, errno.EEXIST) and os.path.isdir(path):
      return  # another process packed the same data first: its entry is as good as ours
    _warn_uncached(f"could not write the packed-data cache {path}", e)


def _warn_uncached(what: str, error: OSError) -> None:
  print(f"warning: {what} ({error.strerror or error}); continuing without it. Set config.cache_dir=none to "
        "switch the cache off, or cache_dir=DIR (or $ASL_JAX_CACHE) to put it elsewhere", file=sys.stderr, flush=True)


def _load_cache(path: str, split: splits_lib.Split) -> Packed | None:
  try:
    with open(os.path.join(path, "meta.json"), encoding="utf-8") as f:
      meta = json.load(f)
    arrays = {}
    for name in _ARRAYS:
      p = os.path.join(path, name + ".npy")
      arrays[name] = np.load(p, mmap_mode="r", allow_pickle=False) if os.path.exists(p) else None
  except (OSError, ValueError) as e:
    logging.warning("ignoring unreadable cache %s: %s", path, e)
    return None
  return Packed(video_ids=tuple(meta["video_ids"]), split=split, report=meta["report"], **arrays)


def _list_limited(items, limit=20):
  items = list(items)
  text = "\n".join(f"  {x}" for x in items[:limit])
  return text + (f"\n  ... and {len(items) - limit} more" if len(items) > limit else "")


def load_packed(spec: DataSpec, train_subsets: Sequence[str] = ("train",)) -> Packed:
  """Loads (from cache when possible) every clip of the split file that has features."""
  if spec.on_bad_file not in ON_BAD_FILE:
    raise DataError(f"on_bad_file={spec.on_bad_file!r}: expected one of {ON_BAD_FILE}")
  if spec.max_frames < 1:
    raise DataError(f"max_frames={spec.max_frames}: must be >= 1")
  split = spec.read_split()
  split_path = split.path
  no_train = splits_lib.classes_without_training(split, train_subsets)
  if no_train:
    raise DataError(f"{split_path}: {len(no_train)} class(es) have no clip in the training subsets "
                    f"{list(train_subsets)}: ids {no_train[:20]}{' ...' if len(no_train) > 20 else ''}")
  lm_dir, vis_dir = spec.landmarks_path, spec.gemma_features_dir
  if not os.path.isdir(lm_dir):
    raise DataError(f"{lm_dir}: landmarks directory not found (config landmarks_dir)")
  if vis_dir and not os.path.isdir(vis_dir):
    raise DataError(f"{vis_dir}: visual features directory not found (config gemma_features_dir; "
                    "empty means landmarks only)")

  report = {"split_file": split_path, "entries": split.counts(), "missing_features": [], "skipped": {}}
  candidates, files = [], []
  for e in split.entries:
    lp = spec.landmark_file(e)
    if not os.path.exists(lp):
      report["missing_features"].append(e.video_id)
      continue
    if vis_dir:
      vp = spec.visual_file(e.video_id)
      if not os.path.exists(vp):
        if spec.on_bad_file == "error":
          raise DataError(f"{vp}: visual features missing for a clip that has landmarks ({lp}); "
                          "extract them, set gemma_features_dir= (landmarks only), or on_bad_file=skip")
        report["skipped"][vp] = "visual features missing"
        continue
      files.append(vp)
    files.append(lp)
    candidates.append(e)

  root = _cache_root(spec)
  if root:
    _remove_stale_temps(root)
  cache_path = os.path.join(root, "packed-" + _cache_key(spec, split, files)) if root else None
  packed = _load_cache(cache_path, split) if cache_path and os.path.isdir(cache_path) else None
  if packed is not None:
    logging.info("loaded %d packed clips from cache %s", len(packed.labels), cache_path)
  else:
    packed = _pack(spec, split, candidates, report)
    if cache_path:
      _save_cache(cache_path, packed)
  _check_training_clips(packed, train_subsets)
  return packed


def _check_training_clips(packed: Packed, train_subsets: Sequence[str]) -> None:
  """Every class keeps a training clip once the clips without (usable) features are gone."""
  have = set(np.unique(packed.labels[packed.indices(train_subsets)]).tolist())
  lost = [packed.split.class_ids[i] for i in range(packed.num_classes) if i not in have]
  if lost:
    raise DataError(f"{packed.split.path}: {len(lost)} class(es) have no training clip with features "
                    f"(their files are missing or were skipped, see the data report): ids {lost[:20]}"
                    f"{' ...' if len(lost) > 20 else ''}; extract their features or remove them from the split file")


@dataclasses.dataclass(frozen=True)
class _Formats:
  """What the feature files of the candidate clips hold (checked from their headers, without loading)."""

  layout: str
  landmark_dim: int
  visual_dim: int
  visual_frames: int
  wrong_shape: dict  # path -> "shape (...)" of files whose shape differs from the rest


def _check_formats(spec: DataSpec, split: splits_lib.Split, candidates: list) -> _Formats:
  """The landmark layout and visual dimension all files agree on; files that disagree are an error, or
  listed in `wrong_shape` with on_bad_file=skip."""
  lm_dir, vis_dir = spec.landmarks_path, spec.gemma_features_dir
  if spec.landmark_layout != "auto" and spec.landmark_layout not in layouts.LAYOUT_DIMS:
    raise DataError(f"landmark_layout={spec.landmark_layout!r}: expected one of "
                    f"{sorted(layouts.LAYOUT_DIMS)} or 'auto'")
  if not candidates:
    raise DataError(f"{split.path}: none of its {len(split.entries)} clips has a landmarks file in {lm_dir} "
                    f"(expected {spec.landmarks_pattern}; config landmarks_pattern names other files, "
                    "e.g. {id}.npy)")
  wrong = {}

  def check(paths, kind, expected, meta_dir, field):
    result = features_lib.check_dims(paths, kind, expected, meta_dir, field)
    if result.bad and spec.on_bad_file != "skip":
      raise DataError(features_lib.describe_bad(result.bad, result.dim, kind)
                      + "\n(set on_bad_file=skip to drop them with a report)")
    return result, {p: f"shape {shape}" for p, shape in result.bad}

  expected_lm = layouts.LAYOUT_DIMS.get(spec.landmark_layout)
  lm, wrong_lm = check([spec.landmark_file(e) for e in candidates], "landmark",
                       expected_lm, lm_dir, "landmark_layout (" + ", ".join(layouts.LAYOUT_DIMS) + ")")
  wrong.update(wrong_lm)
  layout = layouts.layout_for_dim(lm.dim, lm_dir) if spec.landmark_layout == "auto" else spec.landmark_layout
  vis_dim = vis_frames = 0
  if vis_dir:
    vis, wrong_vis = check([spec.visual_file(e.video_id) for e in candidates], "visual",
                           spec.gemma_feature_dim or None, vis_dir, "gemma_feature_dim")
    vis_dim, vis_frames = vis.dim, min(spec.max_frames, vis.max_len)
    wrong.update(wrong_vis)
  return _Formats(layout, lm.dim, vis_dim, vis_frames, wrong)


def _load_clips(spec: DataSpec, formats: _Formats, candidates: list):
  """(kept entries, (points, parts, lengths, visual, visual_lengths) of them, {path: why} of unusable
  files), loading in parallel threads. Each clip is prepared and written straight into arrays sized for
  every candidate, so the peak memory is the packed arrays plus a clip per thread (a Kaggle-sized set packs
  in a few GB); rows of unusable files are dropped at the end."""
  vis_dir = spec.gemma_features_dir
  arrays = _empty_arrays(len(candidates), spec.max_frames, formats.visual_frames, formats.visual_dim)

  def load_one(i):
    e = candidates[i]
    lp = spec.landmark_file(e)
    vp = spec.visual_file(e.video_id) if vis_dir else None
    if lp in formats.wrong_shape or vp in formats.wrong_shape:
      return None
    try:
      raw = features_lib.load_array(lp, formats.landmark_dim)
      vis = features_lib.load_array(vp, formats.visual_dim) if vp else None
    except DataError as err:
      return str(err)
    _put(arrays, i, prepare_clip(raw, formats.layout, spec.max_frames, vis, formats.visual_frames))
    return True

  keep, errors = np.zeros(len(candidates), bool), []
  with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 2)) as pool:
    for i, result in enumerate(pool.map(load_one, range(len(candidates)), chunksize=64)):
      if isinstance(result, str):
        errors.append(result)
      keep[i] = result is True
  if errors and spec.on_bad_file != "skip":
    raise DataError(f"{len(errors)} feature file(s) cannot be used (set on_bad_file=skip to drop them "
                    f"with a report):\n" + _list_limited(errors))
  unusable = {}
  for msg in errors:
    path, _, why = msg.partition(": ")
    unusable[path] = why
  if not keep.all():
    arrays = tuple(None if a is None else a[keep] for a in arrays)
  return [e for e, k in zip(candidates, keep) if k], arrays, unusable


def _pack(spec: DataSpec, split: splits_lib.Split, candidates: list, report: dict) -> Packed:
  """Checks the formats, loads and prepares every candidate clip, packs them; the returned Packed carries
  `report` completed with the layout, the skipped files and the packed counts."""
  formats = _check_formats(spec, split, candidates)
  kept, arrays, unusable = _load_clips(spec, formats, candidates)
  skipped = {**report["skipped"], **formats.wrong_shape, **unusable}
  if not kept:
    raise DataError(f"{split.path}: no clip has usable features in {spec.landmarks_path}"
                    + (f" and {spec.gemma_features_dir}" if spec.gemma_features_dir else "")
                    + f" ({len(report['missing_features'])} missing, {len(skipped)} skipped)")
  points, parts, lengths, visual, vis_lengths = arrays
  lut = split.label_of()
  subsets = np.asarray([SUBSET_CODES[e.subset] for e in kept], np.int8)
  report = {**report, "skipped": skipped, "landmark_layout": formats.layout, "visual_dim": formats.visual_dim,
            "packed": {s: int((subsets == c).sum()) for s, c in SUBSET_CODES.items()}}
  if report["missing_features"] or skipped:
    logging.warning("%s: %d clips without features, %d skipped (listed in the data report)", split.path,
                    len(report["missing_features"]), len(skipped))
  return Packed(points=points, parts=parts, lengths=lengths,
                labels=np.asarray([lut[e.class_id] for e in kept], np.int32), subsets=subsets,
                video_ids=tuple(e.video_id for e in kept), split=split, report=report,
                visual=visual, visual_lengths=vis_lengths)


def visual_stats(packed: Packed, idx: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
  """Per-dimension mean and standard deviation (G,) float32 of the visual features over the real frames
  of clips `idx` (the training split), streamed in chunks from the (memory-mapped) packed array."""
  g = packed.visual_dim
  total, sq, n = np.zeros(g), np.zeros(g), 0
  for c0 in range(0, len(idx), chunk):
    sel = np.sort(idx[c0:c0 + chunk])
    vis = np.asarray(packed.visual[sel], np.float64)
    valid = np.arange(vis.shape[1])[None] < packed.visual_lengths[sel][:, None]
    frames = vis[valid]
    total += frames.sum(0)
    sq += (frames ** 2).sum(0)
    n += len(frames)
  mean = total / max(n, 1)
  std = np.sqrt(np.maximum(sq / max(n, 1) - mean ** 2, 0.0))
  return mean.astype(np.float32), np.maximum(std, 1e-3 * max(float(std.mean()), 1e-6)).astype(np.float32)


def require_nonempty(packed: Packed, subsets: Sequence[str]) -> np.ndarray:
  """Indices of the subsets; a split that ends empty is an error naming the split file."""
  idx = packed.indices(subsets)
  if len(idx) == 0:
    raise DataError(f"{packed.split.path}: the {'+'.join(subsets)} split has no clips with features "
                    f"({packed.split.counts()} entries; {len(packed.report['missing_features'])} without "
                    "features)")
  return idx
