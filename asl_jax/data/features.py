"""Per-video feature files: `{id}_landmarks.npy` (T, D) and `{id}_gemma.npy` (T, G).

Feature-dimension checks read only the `.npy` headers of every file (a few hundred bytes each), so they
are fast on 20k files. Loading validates each array (2-D, T >= 1, numeric, finite) and turns any problem
into one DataError naming the file; `allow_pickle` is never enabled.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import threading
from typing import Iterable, Sequence

import numpy as np

from asl_jax.data import formats
from asl_jax.errors import DataError

LANDMARK_SUFFIX = "_landmarks.npy"
VISUAL_SUFFIX = "_gemma.npy"
METADATA_FILE = "extraction_metadata.json"


LANDMARK_PATTERN = "{id}" + LANDMARK_SUFFIX  # the seed's names; config landmarks_pattern / gemma_pattern
VISUAL_PATTERN = "{id}" + VISUAL_SUFFIX


def landmark_path(landmarks_dir: str, video_id: str, pattern: str = LANDMARK_PATTERN) -> str:
  return os.path.join(landmarks_dir, pattern.replace("{id}", video_id))


def visual_path(visual_dir: str, video_id: str, pattern: str = VISUAL_PATTERN) -> str:
  return os.path.join(visual_dir, pattern.replace("{id}", video_id))


def read_header(path: str) -> tuple[tuple[int, ...], np.dtype]:
  """(shape, dtype) from a .npy header without reading the data; checks the file is long enough. A Kaggle
  parquet or a .pose file (data/formats.py) is (frames, 1629), holistic543."""
  if formats.is_landmark_format(path):
    return (formats.num_frames(path), formats.DIM), np.dtype(np.float32)
  try:
    with open(path, "rb") as f:
      version = np.lib.format.read_magic(f)
      if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
      elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
      else:
        shape, fortran, dtype = np.lib.format._read_array_header(f, version)  # pylint: disable=protected-access
      offset = f.tell()
  except (ValueError, OSError, EOFError) as e:
    raise DataError(f"{path}: not a readable .npy file ({e})") from None
  if dtype.hasobject:
    raise DataError(f"{path}: holds Python objects (dtype {dtype}); expected a float array")
  expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  size = os.path.getsize(path)
  if size < expected:
    raise DataError(f"{path}: truncated .npy file ({size} bytes, header says shape {shape} {dtype} "
                    f"needs {expected})")
  return tuple(shape), dtype


def read_metadata_dim(feature_dir: str) -> int | None:
  """`feature_dim` from `extraction_metadata.json` in feature_dir, when present."""
  path = os.path.join(feature_dir, METADATA_FILE)
  if not os.path.isfile(path):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      meta = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise DataError(f"{path}: not valid JSON ({e})") from None
  dim = meta.get("feature_dim") if isinstance(meta, dict) else None
  if dim is None:
    return None
  if not isinstance(dim, int) or dim <= 0:
    raise DataError(f"{path}: 'feature_dim' must be a positive integer, got {dim!r}")
  return dim


@dataclasses.dataclass(frozen=True)
class DimCheck:
  dim: int
  bad: tuple[tuple[str, tuple[int, ...]], ...]  # (path, shape) of files that do not match
  max_len: int  # the most frames of any good file


def check_dims(paths: Sequence[str], kind: str, expected: int | None = None,
               metadata_dir: str | None = None, field: str = "") -> DimCheck:
  """Reads every header and decides the feature dimension.

  The dimension is `expected` when given, else `extraction_metadata.json`'s `feature_dim`, else the
  one all files agree on. Files with another dimension, another ndim, zero frames or an unreadable
  header are returned in `bad`; when there is no expected dimension and files disagree, raises with the
  list of shapes, naming the config `field` that sets the dimension (e.g. "landmark_layout=seed162").
  """
  meta_dim = read_metadata_dim(metadata_dir) if metadata_dir else None
  if expected and meta_dim and expected != meta_dim:
    raise DataError(f"{os.path.join(metadata_dir, METADATA_FILE)}: feature_dim {meta_dim} disagrees with the "
                    f"configured {kind} dimension {expected}")
  target = expected or meta_dim
  shapes = {p: read_header(p)[0] for p in paths}
  bad = [(p, s) for p, s in shapes.items() if len(s) != 2 or s[0] < 1]
  dims = collections.Counter(s[1] for s in shapes.values() if len(s) == 2 and s[0] >= 1)
  if target is None:
    if len(dims) > 1:
      listing = _format_listing([(p, s) for p, s in shapes.items() if len(s) == 2], dims)
      raise DataError(f"{kind} files disagree on the feature dimension {dict(dims)}; "
                      f"set config.{field or 'the dimension'} to the one to use (the others are then reported as "
                      f"bad files) or fix these files:\n{listing}")
    target = next(iter(dims)) if dims else None
  if target is None:
    raise DataError(f"no valid {kind} files to infer the feature dimension from")
  bad += [(p, s) for p, s in shapes.items() if len(s) == 2 and s[0] >= 1 and s[1] != target]
  bad_paths = {p for p, _ in bad}
  max_len = max((s[0] for p, s in shapes.items() if p not in bad_paths), default=0)
  return DimCheck(int(target), tuple(sorted(bad)), int(max_len))


def _format_listing(items, dims: collections.Counter, limit: int = 20) -> str:
  majority = dims.most_common(1)[0][0]
  odd = sorted((p, s) for p, s in items if s[1] != majority)
  lines = [f"  {p}: shape {s}" for p, s in odd[:limit]]
  if len(odd) > limit:
    lines.append(f"  ... and {len(odd) - limit} more")
  return "\n".join(lines)


def describe_bad(bad: Iterable[tuple[str, tuple[int, ...]]], dim: int, kind: str, limit: int = 20) -> str:
  bad = list(bad)
  lines = []
  for p, s in bad[:limit]:
    if len(s) != 2:
      why = f"shape {s}: expected 2-D (frames, {dim})"
    elif s[0] < 1:
      why = f"shape {s}: zero frames"
    else:
      why = f"shape {s}: expected (frames, {dim})"
    lines.append(f"  {p}: {why}")
  if len(bad) > limit:
    lines.append(f"  ... and {len(bad) - limit} more")
  return f"{len(bad)} {kind} file(s) have the wrong shape:\n" + "\n".join(lines)


# np.load parses each header with ast.literal_eval. In CPython 3.11 the AST constructor keeps its recursion
# depth in state the threads share (python/cpython#106905): two threads parsing at once can fail with
# "SystemError: AST constructor recursion depth mismatch" (seen here, on a clip of a test's packing). The
# packer loads files in threads, so the loads take turns; the clip preparation after each load still runs
# in parallel.
_NPY_LOAD_LOCK = threading.Lock()


VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
_NPY_MAGIC = b"\x93NUMPY"


def read_npy(path: str) -> np.ndarray:
  """The array in a .npy file; a missing file, a video, a file of another kind (CSV, JSON, ...), a
  truncated or pickled one are each one DataError naming the file and what to do."""
  if path.lower().endswith(VIDEO_SUFFIXES):
    raise DataError(f"{path}: a video given as landmarks; pass it with --video")
  try:
    with open(path, "rb") as f:
      magic = f.read(len(_NPY_MAGIC))
  except FileNotFoundError:
    raise DataError(f"{path}: file not found") from None
  except IsADirectoryError:
    raise DataError(f"{path}: a directory, not a .npy file") from None
  except OSError as e:
    raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None
  if magic != _NPY_MAGIC:
    raise DataError(f"{path}: not a .npy file; asl_jax reads NumPy arrays saved with np.save, one (frames, D) "
                    "array of landmarks per file, Kaggle ISLR .parquet files and pose-format .pose files")
  try:
    with _NPY_LOAD_LOCK:
      return np.load(path, allow_pickle=False)
  except Exception as e:  # truncated, corrupt, pickled object arrays
    raise DataError(f"{path}: cannot read .npy file ({type(e).__name__}: {e})") from None


def read_array(path: str) -> np.ndarray:
  """The landmark array of a .npy, Kaggle ISLR .parquet or pose-format .pose file (the last two as
  holistic543, data/formats.py)."""
  return formats.read(path) if formats.is_landmark_format(path) else read_npy(path)


def load_array(path: str, dim: int) -> np.ndarray:
  """Loads one (T, dim) float32 array; any problem raises a DataError naming the file."""
  return validate_array(read_array(path), dim, path)


def validate_array(x, dim: int, path: str) -> np.ndarray:
  """A (T >= 1, dim) finite float32 array, or a DataError naming `path` (a file or a description)."""
  if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.number):
    raise DataError(f"{path}: expected a numeric array, got dtype {getattr(x, 'dtype', type(x))}")
  if x.ndim != 2:
    raise DataError(f"{path}: shape {x.shape}: expected 2-D (frames, {dim})")
  if x.shape[0] < 1:
    raise DataError(f"{path}: shape {x.shape}: zero frames")
  if x.shape[1] != dim:
    raise DataError(f"{path}: shape {x.shape}: expected (frames, {dim})")
  x = x.astype(np.float32, copy=False)
  if not np.isfinite(x).all():
    bad = int((~np.isfinite(x)).sum())
    raise DataError(f"{path}: {bad} NaN/Inf values")
  return x
