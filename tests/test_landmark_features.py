"""Features derived on device from the canonical points (asl_jax/data/landmark_features.py) and the frame
trimming / test-time flip of the input pipeline."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asl_jax.data import augment, input_pipeline, landmark_features as lf, layouts


def _clip(rng, b=2, f=6):
  points = rng.normal(size=(b, f, layouts.NUM_POINTS, 3)).astype(np.float32)
  parts = np.ones((b, f, layouts.NUM_PARTS), bool)
  parts[0, 2, 0] = False  # left hand missing in one frame
  parts[1, :, 3] = False  # no pose hands at all (holistic170)
  valid = np.ones((b, f), bool)
  valid[1, 4:] = False  # padding
  points *= (parts & valid[..., None])[:, :, layouts.POINT_PART][..., None]
  return points, parts, valid


def test_seed_layout_is_the_old_166_input():
  rng = np.random.default_rng(0)
  points, parts, valid = _clip(rng)
  cfg = lf.FeatureConfig()
  out = np.asarray(lf.derive(points, parts, valid, cfg))
  assert cfg.dim == layouts.FEATURE_DIM == out.shape[-1] == 166
  p = parts & valid[..., None]
  expected = np.concatenate([(points * p[:, :, layouts.POINT_PART][..., None]).reshape(2, 6, -1), p], -1)
  np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("use_z", [True, False])
def test_dims_slices_and_missing_parts_are_zero(use_z):
  rng = np.random.default_rng(1)
  points, parts, valid = _clip(rng)
  cfg = lf.FeatureConfig(lf.parse_blocks("presence,acc,vel,shape,hand,pos"), use_z)
  assert cfg.blocks == lf.BLOCKS  # canonical order whatever the spelling
  c = 3 if use_z else 2
  sl = cfg.slices()
  assert [sl[b].stop - sl[b].start for b in lf.BLOCKS] == [54 * c, 40 * c, 58, 54 * c, 54 * c, 4]
  out = np.asarray(lf.derive(points, parts, valid, cfg))
  assert out.shape == (2, 6, cfg.dim)
  assert not out[1, 4:].any()  # padding frames are zero in every block
  hand = out[0, 2, sl["hand"]].reshape(2, 20, c)
  assert not hand[0].any() and hand[1].any()  # the missing left hand, the present right hand
  shape = out[0, 2, sl["shape"]].reshape(2, 29)
  assert not shape[0].any() and shape[1].any()
  vel = out[0, :, sl["vel"]].reshape(6, 54, c)
  assert not vel[0].any()  # no previous frame
  assert not vel[2, :21].any() and not vel[3, :21].any()  # left hand missing at frame 2: no velocity in or out
  np.testing.assert_allclose(vel[4, 21:42], points[0, 4, 21:42, :c] - points[0, 3, 21:42, :c], atol=1e-6)
  acc = out[0, :, sl["acc"]].reshape(6, 54, c)
  np.testing.assert_allclose(acc[5, 42:], vel[5, 42:] - vel[4, 42:], atol=1e-6)
  assert not out[1, :, sl["pos"]].reshape(6, 54, c)[:, 48:].any()  # absent pose hands


def test_hand_shape_ignores_where_the_hand_is_and_its_size():
  rng = np.random.default_rng(2)
  points, parts, valid = _clip(rng)
  cfg = lf.FeatureConfig(("hand",), use_z=False)
  moved = points.copy()
  moved[:, :, 21:42, :2] = 2.5 * points[:, :, 21:42, :2] + np.array([0.7, -0.3], np.float32)
  a = np.asarray(lf.derive(points, parts, valid, cfg)).reshape(2, 6, 2, 20, 2)
  b = np.asarray(lf.derive(moved, parts, valid, cfg)).reshape(2, 6, 2, 20, 2)
  np.testing.assert_allclose(a[:, :, 1], b[:, :, 1], atol=1e-5)  # right hand: translated + scaled, same shape
  np.testing.assert_array_equal(a[:, :, 0], b[:, :, 0])
  # Unit size: the mean wrist-to-knuckle distance of every present hand is 1.
  knuckles = np.linalg.norm(a[0, 0, 1, [4, 8, 12, 16]], axis=-1)
  assert knuckles.mean() == pytest.approx(1.0, rel=1e-5)


def _open_hand(bend: float = 0.0):
  """(21, 2) points of a hand with straight fingers fanning out from the wrist; `bend` (radians) turns each of
  the index finger's three joints by that much."""
  pts = np.zeros((21, 2), np.float32)
  for finger, fan in enumerate((-0.8, -0.3, 0.0, 0.3, 0.6)):
    at = np.zeros(2)
    for bone in range(4):
      angle = fan + (bend * bone if finger == 1 else 0.0)
      at = at + (0.5 if bone == 0 else 0.25) * np.array([np.sin(angle), np.cos(angle)])
      pts[1 + 4 * finger + bone] = at
  return pts


def test_shape_block_is_the_hand_without_place_size_or_rotation():
  """`shape`: 15 bend cosines, 4 spreads, 10 fingertip distances per hand. A straight finger's bends are 1, a
  bent one's less; moving, scaling or rotating the hand in the image changes nothing; a missing hand is 0."""
  cfg = lf.FeatureConfig(("shape",), use_z=False)
  assert cfg.dim == 58
  points = np.zeros((1, 3, layouts.NUM_POINTS, 3), np.float32)
  theta = np.deg2rad(40.0)
  rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]], np.float32)
  points[0, 0, 21:42, :2] = _open_hand()
  points[0, 1, 21:42, :2] = 1.7 * _open_hand() @ rot.T + np.array([0.4, -0.9], np.float32)
  points[0, 2, 21:42, :2] = _open_hand(bend=0.6)
  parts = np.zeros((1, 3, layouts.NUM_PARTS), bool)
  parts[..., 1] = True  # the right hand only
  out = np.asarray(lf.derive(points, parts, np.ones((1, 3), bool), cfg)).reshape(3, 2, 29)
  assert not out[:, 0].any()  # no left hand
  straight, moved, bent = out[:, 1]
  np.testing.assert_allclose(moved, straight, atol=1e-4)
  np.testing.assert_allclose(straight[:15], 1.0, atol=1e-4)  # every finger straight
  np.testing.assert_allclose(bent[3:6], np.cos(0.6), atol=1e-4)  # finger 1's three joints
  unchanged = np.delete(np.arange(29), np.r_[3:6, 15:17, 19:29])  # its spreads and tip distances may change
  np.testing.assert_allclose(bent[unchanged], straight[unchanged], atol=1e-4)
  assert (bent[19:29] != straight[19:29]).sum() == 4  # the index fingertip's distances to the four others


def test_rotation_before_features_rotates_the_hand_shapes():
  """Augmentation acts on the points, so the derived hand shapes rotate with the body."""
  rng = np.random.default_rng(3)
  points, parts, valid = _clip(rng)
  cfg = lf.FeatureConfig(("hand",), use_z=False)
  theta = np.deg2rad(30.0)
  rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]], np.float32)
  rotated = points.copy()
  rotated[..., :2] = points[..., :2] @ rot.T
  a = np.asarray(lf.derive(points, parts, valid, cfg)).reshape(2, 6, 2, 20, 2)
  b = np.asarray(lf.derive(rotated, parts, valid, cfg)).reshape(2, 6, 2, 20, 2)
  np.testing.assert_allclose(b, a @ rot.T, atol=1e-5)


def test_unknown_block_is_rejected():
  with pytest.raises(ValueError, match="features='pos,depth'"):
    lf.parse_blocks("pos,depth")
  with pytest.raises(ValueError):
    lf.parse_blocks(" , ")


def test_hand_span_and_trimmed_sampling():
  t = 10
  parts = np.zeros((3, t, 4), bool)
  parts[:, :, 2] = True  # the pose everywhere
  parts[0, 3:7, 1] = True  # a right hand in frames 3..6
  parts[1, 8, 0] = True  # a left hand in frame 8 only; clip length 9
  lengths = np.array([10, 9, 6])  # clip 2: no hand at all -> the whole clip
  first, last = lf.hand_span(jnp.asarray(parts), jnp.asarray(lengths))
  assert first.tolist() == [3, 8, 0] and last.tolist() == [6, 8, 5]
  data = input_pipeline.DeviceData(points=jnp.zeros((3, t, 54, 3)), parts=jnp.asarray(parts),
                                   lengths=jnp.asarray(lengths), labels=jnp.zeros(3, jnp.int32))
  cfg = lf.FeatureConfig(trim_no_hands=True)
  batch = input_pipeline.make_batch(data, jnp.arange(3), jax.random.key(0), 8, None, features=cfg)
  assert np.asarray(batch["mask"]).sum(1).tolist() == [4, 1, 6]
  presence = np.asarray(batch["landmarks"])[..., -4:]
  assert presence[0, :4, 1].all() and presence[1, 0, 0]  # every kept frame of clip 0 has its hand
  # Training crops stay inside the hand span too.
  aug = augment.AugmentConfig(temporal_mask_prob=0.0)
  for seed in range(5):
    batch = input_pipeline.make_batch(data, jnp.arange(3), jax.random.key(seed), 8, aug, features=cfg)
    presence = np.asarray(batch["landmarks"])[..., -4:]
    mask = np.asarray(batch["mask"])
    assert (presence[0, mask[0], 1]).all()


def test_flip_view_mirrors_x_and_swaps_hands():
  rng = np.random.default_rng(4)
  points, parts, valid = _clip(rng)
  data = input_pipeline.DeviceData(points=jnp.asarray(points), parts=jnp.asarray(parts),
                                   lengths=jnp.asarray(valid.sum(1)), labels=jnp.zeros(2, jnp.int32))
  plain = input_pipeline.make_batch(data, jnp.arange(2), jax.random.key(0), 6, None)
  flipped = input_pipeline.make_batch(data, jnp.arange(2), jax.random.key(0), 6, None, flip=True)
  a = np.asarray(plain["landmarks"])[..., :162].reshape(2, 6, 54, 3)
  b = np.asarray(flipped["landmarks"])[..., :162].reshape(2, 6, 54, 3)
  np.testing.assert_allclose(b[:, :, 21:42, 0], -a[:, :, 0:21, 0])
  np.testing.assert_allclose(b[:, :, 0:21, 1:], a[:, :, 21:42, 1:])
  np.testing.assert_allclose(b, a[:, :, layouts.FLIP_POINTS] * np.array([-1.0, 1.0, 1.0]), atol=1e-6)  # every point
