"""Landmark files as the field has them, read into asl_jax's `holistic543` arrays (T, 1629): every MediaPipe
Holistic point in Kaggle ISLR order (face 468, left hand 21, pose 33, right hand 21), x y z each, in
MediaPipe's normalised image coordinates, a missing point all zeros (data/layouts.py).

- **Kaggle ISLR parquet** (Google's Isolated Sign Language Recognition 2023): one sequence per file, columns
  `frame, row_id, type, landmark_index, x, y, z`, 543 rows a frame, a missing point NaN. Read with pyarrow.
- **pose-format `.pose`** (sign-language-processing's format; `video_to_pose` writes it): components found
  by name in any order (POSE_LANDMARKS 33, FACE_LANDMARKS 468 or 478 (the iris points are dropped),
  LEFT_HAND_LANDMARKS 21, RIGHT_HAND_LANDMARKS 21; others such as POSE_WORLD_LANDMARKS are ignored), the
  first person, pixel coordinates divided by the header's width and height, a point of zero confidence
  missing. Read and written with the pose-format package.

Every problem is one DataError naming the file and what is wrong.
"""

from __future__ import annotations

import os

import numpy as np

from asl_jax.errors import DataError

PARQUET_SUFFIX = ".parquet"
POSE_SUFFIX = ".pose"
SUFFIXES = (PARQUET_SUFFIX, POSE_SUFFIX)
# holistic543's parts in order, with their point counts (Kaggle's `type` values).
PARTS = (("face", 468), ("left_hand", 21), ("pose", 33), ("right_hand", 21))
NUM_POINTS = sum(n for _, n in PARTS)  # 543
DIM = NUM_POINTS * 3
OFFSETS = dict(zip([p for p, _ in PARTS], np.cumsum([0] + [n for _, n in PARTS[:-1]]).tolist()))
PARQUET_COLUMNS = ("frame", "type", "landmark_index", "x", "y", "z")
# pose-format component -> holistic543 part.
POSE_COMPONENTS = {"FACE_LANDMARKS": "face", "LEFT_HAND_LANDMARKS": "left_hand", "POSE_LANDMARKS": "pose",
                   "RIGHT_HAND_LANDMARKS": "right_hand"}
# MediaPipe's point names and connections, as pose-format's holistic header has them (that module needs
# mediapipe to import, which the core environment does not install).
BODY_POINTS = ("NOSE LEFT_EYE_INNER LEFT_EYE LEFT_EYE_OUTER RIGHT_EYE_INNER RIGHT_EYE RIGHT_EYE_OUTER LEFT_EAR "
               "RIGHT_EAR MOUTH_LEFT MOUTH_RIGHT LEFT_SHOULDER RIGHT_SHOULDER LEFT_ELBOW RIGHT_ELBOW LEFT_WRIST "
               "RIGHT_WRIST LEFT_PINKY RIGHT_PINKY LEFT_INDEX RIGHT_INDEX LEFT_THUMB RIGHT_THUMB LEFT_HIP RIGHT_HIP "
               "LEFT_KNEE RIGHT_KNEE LEFT_ANKLE RIGHT_ANKLE LEFT_HEEL RIGHT_HEEL LEFT_FOOT_INDEX RIGHT_FOOT_INDEX").split()
BODY_LIMBS = ((0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12), (11, 13), (13, 15),
              (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16), (16, 18), (16, 20), (16, 22), (18, 20),
              (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28), (27, 29), (28, 30), (29, 31),
              (30, 32), (27, 31), (28, 32))
HAND_POINTS = ("WRIST THUMB_CMC THUMB_MCP THUMB_IP THUMB_TIP INDEX_FINGER_MCP INDEX_FINGER_PIP INDEX_FINGER_DIP "
               "INDEX_FINGER_TIP MIDDLE_FINGER_MCP MIDDLE_FINGER_PIP MIDDLE_FINGER_DIP MIDDLE_FINGER_TIP "
               "RING_FINGER_MCP RING_FINGER_PIP RING_FINGER_DIP RING_FINGER_TIP PINKY_MCP PINKY_PIP PINKY_DIP "
               "PINKY_TIP").split()
HAND_LIMBS = ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
              (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20))


def is_landmark_format(path: str) -> bool:
  return str(path).lower().endswith(SUFFIXES)


def read(path: str) -> np.ndarray:
  """The (T, 1629) float32 holistic543 array of a .parquet or .pose file."""
  if not os.path.isfile(path):
    raise DataError(f"{path}: file not found")
  return read_parquet(path) if path.lower().endswith(PARQUET_SUFFIX) else read_pose(path)


def num_frames(path: str) -> int:
  """The frame count of a .parquet (from its metadata alone) or .pose file, for the shape checks."""
  if path.lower().endswith(PARQUET_SUFFIX):
    rows = _parquet_file(path).metadata.num_rows
    if rows % NUM_POINTS:
      raise DataError(f"{path}: {rows} rows, not a multiple of {NUM_POINTS} (Kaggle ISLR files have 543 rows a "
                      "frame)")
    return rows // NUM_POINTS
  return read_pose(path).shape[0]


# ------------------------------------------------------------------------------------------- Kaggle parquet

def _parquet_file(path: str):
  import pyarrow.parquet as pq  # pylint: disable=import-outside-toplevel
  try:
    return pq.ParquetFile(path)
  except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ... for what is not a parquet file
    raise DataError(f"{path}: not a readable parquet file ({type(e).__name__}: {e})") from None


def read_parquet(path: str) -> np.ndarray:
  """A Kaggle ISLR landmark file as (T, 1629): frames in the order of their `frame` numbers."""
  f = _parquet_file(path)
  names = set(f.schema_arrow.names)
  missing = [c for c in PARQUET_COLUMNS if c not in names]
  if missing:
    raise DataError(f"{path}: no column {', '.join(repr(c) for c in missing)} (Kaggle ISLR landmark files have "
                    "frame, row_id, type, landmark_index, x, y, z)")
  t = f.read(columns=list(PARQUET_COLUMNS))
  if not t.num_rows:
    raise DataError(f"{path}: no rows (zero frames)")
  kind = t.column("type").combine_chunks()
  if not hasattr(kind, "dictionary"):  # a plain string column: encoded once, then looked up per type
    kind = kind.dictionary_encode()
  names = [str(v) for v in kind.dictionary.to_pylist()]
  unknown = sorted(set(names) - set(OFFSETS))
  if unknown:
    raise DataError(f"{path}: unknown landmark type(s) {unknown[:5]} (expected {[p for p, _ in PARTS]})")
  codes = kind.indices.to_numpy(zero_copy_only=False)
  offset = np.asarray([OFFSETS[v] for v in names])[codes]
  limit = np.asarray([dict(PARTS)[v] for v in names])[codes]
  frame = t.column("frame").to_numpy()
  index = t.column("landmark_index").to_numpy()
  xyz = np.stack([t.column(c).to_numpy() for c in ("x", "y", "z")], -1).astype(np.float32)
  if (index < 0).any() or (index >= limit).any():
    i = int(np.argmax((index < 0) | (index >= limit)))
    raise DataError(f"{path}: row {i}: landmark_index {index[i]} out of range for type {names[codes[i]]!r} "
                    f"(0..{limit[i] - 1})")
  if (frame[1:] >= frame[:-1]).all():  # the competition's files: rows grouped by frame, in order
    row_frame = np.concatenate([[0], np.cumsum(frame[1:] != frame[:-1])])
    num = int(row_frame[-1]) + 1
  else:
    frames, row_frame = np.unique(frame, return_inverse=True)
    num = len(frames)
  point = offset + index
  out = np.zeros((num, NUM_POINTS, 3), np.float32)
  out[row_frame, point] = xyz
  if np.isinf(out).any():
    raise DataError(f"{path}: infinite coordinates")
  return np.nan_to_num(out, nan=0.0, copy=False).reshape(num, DIM)  # NaN: not detected -> missing (zeros)


def write_parquet(path: str, array: np.ndarray) -> None:
  """A (T, 1629) holistic543 array as a Kaggle ISLR landmark file (missing points NaN), for tests and the
  conversion benchmark."""
  import pyarrow as pa  # pylint: disable=import-outside-toplevel
  import pyarrow.parquet as pq  # pylint: disable=import-outside-toplevel
  a = np.asarray(array, np.float32).reshape(-1, NUM_POINTS, 3).copy()
  a[(a == 0).all(-1)] = np.nan
  frames = len(a)
  kinds = np.concatenate([[p] * n for p, n in PARTS])
  index = np.concatenate([np.arange(n) for _, n in PARTS])
  frame = np.repeat(np.arange(frames), NUM_POINTS)
  table = pa.table({
      "frame": pa.array(frame, pa.int16()),
      "row_id": pa.array([f"{fr}-{k}-{i}" for fr in range(frames) for k, i in zip(kinds, index)]),
      "type": pa.array(np.tile(kinds, frames).tolist()),
      "landmark_index": pa.array(np.tile(index, frames), pa.int16()),
      "x": pa.array(a[..., 0].ravel().astype(np.float64)), "y": pa.array(a[..., 1].ravel().astype(np.float64)),
      "z": pa.array(a[..., 2].ravel().astype(np.float64))})
  pq.write_table(table, path)


# ------------------------------------------------------------------------------------------------ .pose

def _load_pose(path: str):
  """pose-format's Pose of a file, or one DataError naming it."""
  from pose_format import Pose  # pylint: disable=import-outside-toplevel
  if not os.path.isfile(path):
    raise DataError(f"{path}: file not found")
  try:
    with open(path, "rb") as f:
      return Pose.read(f.read())
  except OSError as e:
    raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None
  except Exception as e:  # pose-format raises struct.error, ValueError, ... for what is not a .pose file
    raise DataError(f"{path}: not a readable .pose file ({type(e).__name__}: {e})") from None


def _holistic_slots(header):
  """(component, holistic543 part, its first point in the pose body, the part's point count) for each of
  the header's components that holds a holistic543 part, in the header's order."""
  start = 0
  for comp in header.components:
    part = POSE_COMPONENTS.get(comp.name)
    if part is not None:
      yield comp, part, start, dict(PARTS)[part]
    start += len(comp.points)


def read_pose(path: str) -> np.ndarray:
  """A pose-format file as (T, 1629), from its holistic components (the first person)."""
  return read_pose_with_fps(path)[0]


def read_pose_with_fps(path: str) -> tuple[np.ndarray, float]:
  """`read_pose`'s array and the frame rate the file records, from one read of it."""
  pose = _load_pose(path)
  header = pose.header
  names = [c.name for c in header.components]
  missing = [c for c in ("LEFT_HAND_LANDMARKS", "RIGHT_HAND_LANDMARKS") if c not in names]
  if missing:
    raise DataError(f"{path}: no {' or '.join(missing)} component (it has {names}); asl_jax reads MediaPipe "
                    "Holistic poses (video_to_pose --format mediapipe)")
  width, height = header.dimensions.width, header.dimensions.height
  if not (width and height):
    raise DataError(f"{path}: the header's width and height are {width} x {height}; they are needed to bring "
                    "pixel coordinates back to MediaPipe's")
  data = np.asarray(pose.body.data.filled(0) if hasattr(pose.body.data, "filled") else pose.body.data, np.float32)
  conf = np.asarray(pose.body.confidence, np.float32)
  if data.ndim != 4 or data.shape[0] < 1 or data.shape[1] < 1:
    raise DataError(f"{path}: body of shape {data.shape}: expected (frames >= 1, people >= 1, points, dims)")
  frames = data.shape[0]
  out = np.zeros((frames, NUM_POINTS, 3), np.float32)
  for comp, part, start, want in _holistic_slots(header):
    if len(comp.points) < want:
      raise DataError(f"{path}: component {comp.name} has {len(comp.points)} points, expected {want}")
    dims = comp.format.replace("C", "")
    xyz = data[:, 0, start:start + want, :3] if len(dims) >= 3 else np.concatenate(
        [data[:, 0, start:start + want, :2], np.zeros((frames, want, 1), np.float32)], -1)
    seen = conf[:, 0, start:start + want] > 0
    xyz = xyz / np.asarray([width, height, 1.0], np.float32)  # video_to_pose: x * width, y * height, z as is
    out[:, OFFSETS[part]:OFFSETS[part] + want] = np.where(seen[..., None], xyz, 0.0)
  if not np.isfinite(out).all():
    raise DataError(f"{path}: NaN or infinite coordinates at points with a confidence")
  return out.reshape(frames, DIM), float(pose.body.fps)


def holistic_header(width: int, height: int):
  """pose-format's MediaPipe Holistic header (POSE, FACE 468, LEFT_HAND, RIGHT_HAND, POSE_WORLD; XYZC)."""
  from pose_format.pose_header import (PoseHeader, PoseHeaderComponent,  # pylint: disable=import-outside-toplevel
                                       PoseHeaderDimensions)
  hand = lambda name: PoseHeaderComponent(name, list(HAND_POINTS), list(HAND_LIMBS), [(0, 255, 0)], "XYZC")  # noqa: E731
  body = lambda name: PoseHeaderComponent(name, list(BODY_POINTS), list(BODY_LIMBS), [(255, 0, 0)], "XYZC")  # noqa: E731
  components = [body("POSE_LANDMARKS"),
                PoseHeaderComponent("FACE_LANDMARKS", [str(i) for i in range(468)], [], [(128, 0, 0)], "XYZC"),
                hand("LEFT_HAND_LANDMARKS"), hand("RIGHT_HAND_LANDMARKS"), body("POSE_WORLD_LANDMARKS")]
  return PoseHeader(0.1, PoseHeaderDimensions(width=int(width), height=int(height), depth=1000), components)


def pose_fps(path: str) -> float:
  """The frame rate a .pose file records."""
  return float(_load_pose(path).body.fps)


def write_pose(path: str, array: np.ndarray, fps: float, width: int = 1000, height: int = 1000) -> None:
  """A (T, 1629) holistic543 array as a pose-format file with pose-format's MediaPipe Holistic header
  (pixel coordinates for a `width` x `height` frame, confidence 0 where a point is missing)."""
  from pose_format import Pose  # pylint: disable=import-outside-toplevel
  from pose_format.numpy import NumPyPoseBody  # pylint: disable=import-outside-toplevel
  a = np.asarray(array, np.float32).reshape(-1, NUM_POINTS, 3)
  header = holistic_header(width, height)
  total = sum(len(c.points) for c in header.components)
  data = np.zeros((len(a), 1, total, 3), np.float32)
  conf = np.zeros((len(a), 1, total), np.float32)
  for _, part, start, want in _holistic_slots(header):
    points = a[:, OFFSETS[part]:OFFSETS[part] + want]
    data[:, 0, start:start + want] = points * np.asarray([width, height, 1.0], np.float32)
    conf[:, 0, start:start + want] = (points != 0).any(-1)
  body = NumPyPoseBody(fps=float(fps), data=data, confidence=conf)
  tmp = f"{path}.tmp-{os.getpid()}"
  try:
    with open(tmp, "wb") as f:
      Pose(header, body).write(f)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
