import numpy as np
import pytest

from asl_jax.data import layouts
from asl_jax.errors import DataError


def _seed_frame(rng, left=True, right=True, pose=True):
  pts = rng.uniform(0.2, 0.8, (54, 3)).astype(np.float32)
  pts[42] = [0.6, 0.4, -0.1]  # signer's left shoulder (image right)
  pts[43] = [0.4, 0.4, -0.1]  # right shoulder: width 0.2, midpoint (0.5, 0.4)
  if not left:
    pts[0:21] = 0
  if not right:
    pts[21:42] = 0
  if not pose:
    pts[42:54] = 0
  return pts


def test_seed162_roundtrip_and_presence():
  rng = np.random.default_rng(0)
  frames = np.stack([_seed_frame(rng), _seed_frame(rng, left=False), _seed_frame(rng, right=False, pose=False)])
  points, present = layouts.to_canonical(frames.reshape(3, 162), "seed162")
  np.testing.assert_array_equal(points, frames)
  assert present.tolist() == [[True] * 4, [False, True, True, True], [True, False, False, False]]


def test_holistic170_mapping():
  t = 2
  raw = np.zeros((t, 170), np.float32)
  pose = np.arange(44, dtype=np.float32).reshape(11, 4) + 1  # [0, 11..16, 23..26] as xyzv
  raw[:, :44] = pose.reshape(-1)
  raw[:, 44:107] = 0.3  # left hand
  raw[1, 107:170] = 0.7  # right hand only in frame 1
  points, present = layouts.to_canonical(raw, "holistic170")
  np.testing.assert_array_equal(points[0, 42], pose[1, :3])  # pose 11 = left shoulder
  np.testing.assert_array_equal(points[0, 47], pose[6, :3])  # pose 16 = right wrist
  assert (points[:, 0:21] == 0.3).all() and (points[0, 21:42] == 0).all() and (points[1, 21:42] == 0.7).all()
  assert present[:, 3].sum() == 0  # pose 17-22 do not exist in this layout
  assert present.tolist() == [[True, False, True, False], [True, True, True, False]]


def test_holistic543_mapping():
  pts = np.zeros((1, 543, 3), np.float32)
  pts[0, 468:489] = 1  # left hand
  pts[0, 522:543] = 2  # right hand
  pts[0, 489 + 11] = [3, 3, 3]
  pts[0, 489 + 22] = [4, 4, 4]
  points, present = layouts.to_canonical(pts.reshape(1, -1), "holistic543")
  assert (points[0, :21] == 1).all() and (points[0, 21:42] == 2).all()
  assert (points[0, 42] == 3).all() and (points[0, 53] == 4).all()
  assert present.all()


def test_unknown_layout_and_dim():
  with pytest.raises(DataError, match="landmark_layout"):
    layouts.to_canonical(np.zeros((1, 162)), "openpose")
  assert layouts.layout_for_dim(170) == "holistic170"
  with pytest.raises(DataError, match="dimension 100 matches no landmark layout"):
    layouts.layout_for_dim(100)


def test_normalize_body_centred():
  rng = np.random.default_rng(1)
  frames = np.stack([_seed_frame(rng), _seed_frame(rng, left=False)])
  points, present = layouts.to_canonical(frames.reshape(2, 162), "seed162")
  out = layouts.normalize(points, present)
  np.testing.assert_allclose(out[:, 42, :2], [[0.5, 0.0]] * 2, atol=1e-6)  # shoulders at +-0.5, y=0
  np.testing.assert_allclose(out[:, 43, :2], [[-0.5, 0.0]] * 2, atol=1e-6)
  np.testing.assert_allclose(out[0, 5, :2], (frames[0, 5, :2] - [0.5, 0.4]) / 0.2, rtol=1e-5)
  assert (out[1, 0:21] == 0).all()  # a missing hand stays exactly zero, not moved to -centre/scale


def test_normalize_without_pose_falls_back_to_hands():
  rng = np.random.default_rng(2)
  frames = np.stack([_seed_frame(rng, pose=False) for _ in range(3)])
  points, present = layouts.to_canonical(frames.reshape(3, 162), "seed162")
  out = layouts.normalize(points, present)
  assert np.isfinite(out).all()
  hands = out[:, :42, :2].reshape(-1, 2)
  np.testing.assert_allclose(hands.mean(0), 0, atol=1e-5)  # centred on the hands
  assert (out[:, 42:] == 0).all()
  empty = layouts.normalize(np.zeros((2, 54, 3), np.float32), np.zeros((2, 4), bool))
  assert (empty == 0).all()


def test_flip_permutation_is_an_involution_swapping_sides():
  perm = layouts.FLIP_POINTS
  np.testing.assert_array_equal(perm[perm], np.arange(54))
  # Every point, from MediaPipe's numbering: hand point j <-> the other hand's j; canonical pose point
  # 42 + i is MediaPipe pose 11 + i, whose mirror is its left/right partner (odd <-> next even).
  expected = [j + 21 for j in range(21)] + list(range(21))
  for i in range(12):
    pose = 11 + i
    expected.append(42 + (pose + 1 if pose % 2 else pose - 1) - 11)
  np.testing.assert_array_equal(perm, expected)
  np.testing.assert_array_equal(layouts.FLIP_PARTS[layouts.FLIP_PARTS], np.arange(4))
