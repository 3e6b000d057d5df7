"""Landmark layouts -> one canonical frame representation with per-part presence, body-centred.

Canonical frame: 54 points x (x, y, z), the seed162 order, and 4 part-presence flags:

  points 0-20   left hand (signer's own left), 21 MediaPipe hand landmarks, wrist first
  points 21-41  right hand
  points 42-47  pose 11-16: left/right shoulder, elbow, wrist       (part "arms")
  points 48-53  pose 17-22: left/right pinky, index, thumb          (part "pose_hands")

Supported file layouts (feature dimension in brackets):
  seed162      [162]   the seed's layout: left hand, right hand, pose 11-22, xyz interleaved.
  holistic170  [170]   pose [0, 11-16, 23-26] as xyzv, then left hand, right hand xyz (no pose 17-22).
  holistic543  [1629]  all MediaPipe Holistic points, Kaggle ISLR order: face 468, left hand 21, pose 33,
                       right hand 21; xyz each. The face is not used by the canonical representation.

A part whose coordinates in a frame are all exactly zero is missing (MediaPipe found nothing), never a
part at the origin. Normalisation is per clip: centre = median shoulder midpoint, scale = median shoulder
width (x, y; z is scaled, not centred, since MediaPipe's z has its own reference). Without a pose in
the clip, the hands' centroid and 4x the median palm length are used; with no hands either, identity.
Missing parts are exactly zero after normalisation.
"""

from __future__ import annotations

import numpy as np

from asl_jax.errors import DataError

NUM_POINTS = 54
PARTS = ("left_hand", "right_hand", "arms", "pose_hands")
NUM_PARTS = len(PARTS)
PART_SLICES = (slice(0, 21), slice(21, 42), slice(42, 48), slice(48, 54))
# Which part each point belongs to, (54,).
POINT_PART = np.concatenate([np.full(s.stop - s.start, i) for i, s in enumerate(PART_SLICES)]).astype(np.int32)
# Model input per frame: normalised xyz of every point plus the presence flags.
FEATURE_DIM = NUM_POINTS * 3 + NUM_PARTS

LAYOUT_DIMS = {"seed162": 162, "holistic170": 170, "holistic543": 543 * 3}


def _flip_permutation() -> np.ndarray:
  perm = np.arange(NUM_POINTS)
  perm[0:21], perm[21:42] = np.arange(21, 42), np.arange(0, 21)
  for base in (42, 48):  # pose pairs (11,12), (13,14), ... are adjacent: left, right
    for k in range(0, 6, 2):
      perm[base + k], perm[base + k + 1] = base + k + 1, base + k
  return perm


# Horizontal flip (a left-handed signer as a right-handed one): x -> -x and these swaps.
FLIP_POINTS = _flip_permutation()
FLIP_PARTS = np.array([1, 0, 2, 3])


def layout_for_dim(dim: int, where: str = "landmark files") -> str:
  for name, d in LAYOUT_DIMS.items():
    if d == dim:
      return name
  raise DataError(f"{where}: feature dimension {dim} matches no landmark layout "
                  f"({', '.join(f'{k}={v}' for k, v in LAYOUT_DIMS.items())})")


def to_canonical(raw: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
  """(T, D) raw landmarks -> points (T, 54, 3) float32 and part presence (T, 4) bool."""
  t = raw.shape[0]
  points = np.zeros((t, NUM_POINTS, 3), np.float32)
  if layout == "seed162":
    points[:] = raw.reshape(t, NUM_POINTS, 3)
    available = (True, True, True, True)
  elif layout == "holistic170":
    pose = raw[:, :44].reshape(t, 11, 4)[:, :, :3]  # pose indices [0, 11..16, 23..26]
    points[:, 0:21] = raw[:, 44:107].reshape(t, 21, 3)
    points[:, 21:42] = raw[:, 107:170].reshape(t, 21, 3)
    points[:, 42:48] = pose[:, 1:7]
    available = (True, True, True, False)
  elif layout == "holistic543":
    pts = raw.reshape(t, 543, 3)
    points[:, 0:21] = pts[:, 468:489]
    points[:, 21:42] = pts[:, 522:543]
    points[:, 42:54] = pts[:, 489 + 11:489 + 23]
    available = (True, True, True, True)
  else:
    raise DataError(f"landmark_layout={layout!r}: expected one of {sorted(LAYOUT_DIMS)} or 'auto'")
  present = np.stack([np.any(points[:, s] != 0, axis=(1, 2)) & a for s, a in zip(PART_SLICES, available)], -1)
  return points, present


def to_holistic543(raw: np.ndarray, layout: str) -> np.ndarray:
  """(T, D) raw landmarks of any layout -> (T, 1629) holistic543, the points the layout lacks all zeros
  (missing): how a seed162 or holistic170 file is written as a Kaggle ISLR parquet or a .pose file."""
  t = raw.shape[0]
  out = np.zeros((t, 543, 3), np.float32)
  if layout == "holistic543":
    return np.asarray(raw, np.float32).reshape(t, 543 * 3)
  if layout == "seed162":
    pts = raw.reshape(t, NUM_POINTS, 3)
    out[:, 468:489], out[:, 522:543], out[:, 489 + 11:489 + 23] = pts[:, 0:21], pts[:, 21:42], pts[:, 42:54]
  elif layout == "holistic170":
    pose = raw[:, :44].reshape(t, 11, 4)[:, :, :3]
    out[:, 468:489], out[:, 522:543] = raw[:, 44:107].reshape(t, 21, 3), raw[:, 107:170].reshape(t, 21, 3)
    out[:, 489 + 0], out[:, 489 + 11:489 + 17], out[:, 489 + 23:489 + 27] = pose[:, 0], pose[:, 1:7], pose[:, 7:11]
  else:
    raise DataError(f"landmark_layout={layout!r}: expected one of {sorted(LAYOUT_DIMS)}")
  return out.reshape(t, 543 * 3)


def normalize(points: np.ndarray, present: np.ndarray) -> np.ndarray:
  """Body-centric normalisation of one clip; points (T, 54, 3), present (T, 4) -> (T, 54, 3)."""
  pts = points.astype(np.float32, copy=True)
  arms = present[:, 2]
  if arms.any():
    ls, rs = pts[arms, 42, :2], pts[arms, 43, :2]
    centre = np.median((ls + rs) / 2, axis=0)
    scale = float(np.median(np.linalg.norm(ls - rs, axis=-1)))
  else:
    centre, scale = None, 0.0
  if not scale > 1e-4:  # no pose (or degenerate shoulders): fall back to the hands
    hands = [pts[present[:, h], PART_SLICES[h]] for h in (0, 1)]
    hands = [h for h in hands if len(h)]
    if hands:
      allpts = np.concatenate([h.reshape(-1, 3) for h in hands])
      centre = allpts[:, :2].mean(axis=0) if centre is None else centre
      palm = np.median(np.concatenate([np.linalg.norm(h[:, 0, :2] - h[:, 9, :2], axis=-1) for h in hands]))
      scale = 4.0 * float(palm)
    if not scale > 1e-4:
      centre, scale = (np.zeros(2, np.float32) if centre is None else centre), 1.0
  pts[..., :2] -= centre
  pts /= scale
  pts *= present[:, POINT_PART][..., None]
  return pts
