import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asl_jax.data import augment, input_pipeline, layouts


def _data(rng, n=6, t=20, lengths=(20, 12, 5, 1, 20, 9)):
  points = rng.normal(size=(n, t, 54, 3)).astype(np.float32)
  parts = rng.random((n, t, 4)) > 0.3
  mask = np.arange(t)[None] < np.asarray(lengths)[:, None]
  parts &= mask[..., None]
  points *= parts[:, :, layouts.POINT_PART][..., None]
  return input_pipeline.DeviceData(points=jnp.asarray(points), parts=jnp.asarray(parts),
                                   lengths=jnp.asarray(lengths, jnp.int32), labels=jnp.arange(n),
                                   visual=jnp.asarray(rng.normal(size=(n, 8, 5)).astype(np.float32)),
                                   visual_lengths=jnp.full((n,), 8, jnp.int32))


def test_eval_positions():
  pos, valid = input_pipeline.eval_positions(jnp.array([5, 40]), 10)
  np.testing.assert_array_equal(valid[0], np.arange(10) < 5)
  np.testing.assert_allclose(pos[0, :5], np.arange(5))
  np.testing.assert_allclose(pos[1], np.linspace(0, 39, 10), rtol=1e-6)


def test_eval_batch_is_the_stored_clip():
  rng = np.random.default_rng(0)
  d = _data(rng)
  b = input_pipeline.make_batch(d, jnp.arange(6), jax.random.key(0), 20, None, True, True)
  np.testing.assert_array_equal(b["mask"], np.arange(20)[None] < np.asarray(d.lengths)[:, None])
  feats = np.asarray(b["landmarks"])
  np.testing.assert_allclose(feats[0, :, :162], np.asarray(d.points[0]).reshape(20, 162), atol=1e-6)
  np.testing.assert_array_equal(feats[0, :, 162:], np.asarray(d.parts[0], np.float32))
  assert (feats[2, 5:] == 0).all() and (np.asarray(b["visual"])[2, 5:] == 0).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_training_view_is_mask_aware(seed):
  rng = np.random.default_rng(seed)
  d = _data(rng)
  cfg = augment.AugmentConfig(landmark_jitter=0.5, temporal_mask_prob=0.3)
  b = jax.jit(lambda k: input_pipeline.make_batch(d, jnp.arange(6), k, 16, cfg, True, True))(jax.random.key(seed))
  feats, mask = np.asarray(b["landmarks"]), np.asarray(b["mask"])
  assert mask[:, 0].all()  # a prefix mask, never empty
  assert (np.diff(mask.astype(int), axis=1) <= 0).all()
  assert (feats[~mask] == 0).all() and (np.asarray(b["visual"])[~mask] == 0).all()
  parts = feats[..., 162:] > 0
  xyz = feats[..., :162].reshape(6, 16, 54, 3)
  point_present = parts[:, :, layouts.POINT_PART]
  assert (xyz[~point_present] == 0).all()  # missing parts stay exactly zero, jitter never lands there
  assert np.abs(xyz[point_present]).max() > 0


def test_frame_masking_keeps_at_least_half():
  lengths = np.array([1, 2, 7, 16])
  valid = jnp.asarray(np.arange(16)[None] < lengths[:, None])
  parts = jnp.broadcast_to(valid[..., None], (4, 16, 4))
  pts = jnp.ones((4, 16, 54, 3)) * valid[..., None, None]
  cfg = augment.AugmentConfig(temporal_mask_prob=1.0, flip_prob=0, affine_prob=0, landmark_jitter=0)
  out, out_parts = augment.spatial(jax.random.key(0), pts, parts, valid, cfg)
  kept = np.asarray(out_parts.any(-1)).sum(1)
  np.testing.assert_array_equal(kept, np.ceil(lengths / 2))
  dropped = ~np.asarray(out_parts.any(-1)) & np.asarray(valid)
  assert (np.asarray(out)[dropped] == 0).all()
  half = dataclasses.replace(cfg, temporal_mask_prob=0.0)
  _, none_dropped = augment.spatial(jax.random.key(0), pts, parts, valid, half)
  np.testing.assert_array_equal(none_dropped, parts)


def test_flip_twice_is_identity_and_swaps_hands():
  rng = np.random.default_rng(3)
  pts = jnp.asarray(rng.normal(size=(2, 4, 54, 3)).astype(np.float32))
  parts = jnp.asarray(np.array([[[True, False, True, True]] * 4] * 2))
  fp, fparts = augment.flip(jax.random.key(0), pts, parts, 1.0)
  np.testing.assert_allclose(fp[:, :, 21:42, 0], -pts[:, :, 0:21, 0])
  # Every point lands on its mirror partner (tests/test_layouts.py checks the partners), x negated only.
  mirrored = np.asarray(pts)[:, :, layouts.FLIP_POINTS] * np.array([-1.0, 1.0, 1.0], np.float32)
  np.testing.assert_allclose(np.asarray(fp), mirrored)
  assert fparts[0, 0].tolist() == [False, True, True, True]
  back, bparts = augment.flip(jax.random.key(1), fp, fparts, 1.0)
  np.testing.assert_allclose(back, pts)
  np.testing.assert_array_equal(bparts, parts)


def test_affine_zero_strength_is_identity():
  rng = np.random.default_rng(4)
  pts = jnp.asarray(rng.normal(size=(3, 5, 54, 3)).astype(np.float32))
  cfg = augment.AugmentConfig(affine_prob=1.0, affine_scale=0, affine_rotate=0, affine_shear=0, affine_shift=0)
  np.testing.assert_allclose(augment.affine(jax.random.key(0), pts, cfg), pts, atol=1e-6)
  rot = dataclasses.replace(cfg, affine_rotate=30.0)
  out = np.asarray(augment.affine(jax.random.key(0), pts, rot))
  # A rotation keeps distances from the body centre.
  np.testing.assert_allclose(np.linalg.norm(out[..., :2], axis=-1), np.linalg.norm(np.asarray(pts)[..., :2], axis=-1),
                             rtol=1e-4)


def test_crop_and_speed_stay_inside_the_clip():
  lengths = jnp.array([1, 2, 5, 30, 64, 64])
  cfg = augment.AugmentConfig(temporal_crop_prob=1.0, speed_range=0.5)
  for s in range(5):
    start, end, count = augment.crop_and_speed(jax.random.key(s), lengths, 16, cfg)
    assert (np.asarray(start) >= 0).all() and (np.asarray(end) <= np.asarray(lengths) - 1).all()
    assert (np.asarray(count) >= 1).all() and (np.asarray(count) <= 16).all()
    assert (np.asarray(end) - np.asarray(start) + 1 >= np.minimum(4, lengths)).all()


def test_swap_adjacent_is_a_permutation_within_real_frames():
  pos = jnp.tile(jnp.arange(10, dtype=jnp.float32), (50, 1))
  valid = jnp.arange(10)[None] < jnp.arange(50)[:, None] % 10 + 1
  out = np.asarray(augment.swap_adjacent(jax.random.key(0), pos, valid, prob=0.5, apply_prob=1.0))
  assert (np.sort(out, 1) == np.asarray(pos)).all()
  assert (out != np.asarray(pos)).any()
  v = np.asarray(valid)
  assert (out[~v] == np.asarray(pos)[~v]).all()  # padding positions untouched


def test_disabled_augmentation_equals_eval_view():
  rng = np.random.default_rng(5)
  d = _data(rng)
  off = augment.AugmentConfig(enabled=False)
  a = input_pipeline.make_batch(d, jnp.arange(6), jax.random.key(0), 16, off, True, True)
  e = input_pipeline.make_batch(d, jnp.arange(6), jax.random.key(9), 16, None, True, True)
  for k in a:
    np.testing.assert_array_equal(a[k], e[k])


def test_normal_noise_is_standard_normal_and_keyed():
  x = np.asarray(augment.normal_noise(jax.random.key(0), (64, 16, 115)))  # 117,760 values, not a multiple of 4
  assert x.shape == (64, 16, 115) and x.dtype == np.float32
  assert abs(x.mean()) < 0.01 and abs(x.std() - 1) < 0.01
  assert abs(((x ** 4).mean()) - 3) < 0.15  # Gaussian kurtosis, not uniform (1.8)
  assert abs((np.abs(x) < 1).mean() - 0.6827) < 0.01  # the 68 % within one sigma
  assert len(np.unique(x)) == 256 and np.allclose(np.sort(np.unique(x)), -np.sort(np.unique(x))[::-1])
  np.testing.assert_array_equal(x, np.asarray(augment.normal_noise(jax.random.key(0), (64, 16, 115))))
  y = np.asarray(augment.normal_noise(jax.random.key(1), (64, 16, 115)))
  assert abs(np.corrcoef(x.ravel(), y.ravel())[0, 1]) < 0.02
  assert abs(np.corrcoef(x.ravel()[:-1], x.ravel()[1:])[0, 1]) < 0.02  # neighbours (same word) independent


def test_mixup_blends_clips_with_their_neighbour_and_unions_masks():
  rng = np.random.default_rng(3)
  batch = {"labels": jnp.arange(4), "landmarks": jnp.asarray(rng.normal(size=(4, 6, 5)), jnp.float32),
           "mask": jnp.asarray(np.arange(6)[None] < np.array([[6], [3], [1], [4]])),
           "visual": jnp.asarray(rng.normal(size=(4, 6, 2)), jnp.float32)}
  batch["visual_mask"] = batch["mask"]
  mix = lambda prob: augment.AugmentConfig(mixup_prob=prob, mixup_alpha=0.4)  # noqa: E731
  lams = []
  for seed in range(5):
    out, partner, lam = augment.mixup(jax.random.key(seed), batch, mix(1.0))
    lam = float(lam)
    lams.append(lam)
    assert 0.5 <= lam <= 1.0
    np.testing.assert_array_equal(partner, [3, 0, 1, 2])
    for key in ("landmarks", "visual"):
      want = lam * np.asarray(batch[key]) + (1 - lam) * np.asarray(batch[key])[[3, 0, 1, 2]]
      np.testing.assert_allclose(out[key], want, rtol=1e-6, atol=1e-6)
    want_mask = np.asarray(batch["mask"]) | np.asarray(batch["mask"])[[3, 0, 1, 2]]
    np.testing.assert_array_equal(out["mask"], want_mask if lam < 1 else batch["mask"])
    np.testing.assert_array_equal(out["labels"], batch["labels"])
  assert len(set(lams)) == 5 and min(lams) < 0.95  # drawn per batch, really blending
  # prob 0: the batch itself, no partner; prob > 0 but not drawn: lam 1, nothing changes.
  for off in (mix(0.0), dataclasses.replace(mix(1.0), enabled=False)):
    same, partner, lam = augment.mixup(jax.random.key(0), batch, off)
    assert same is batch and partner is None and lam is None
  never = [float(augment.mixup(jax.random.key(s), batch, mix(1e-9))[2]) for s in range(5)]
  assert never == [1.0] * 5


def _mirror_by_hand(clip: np.ndarray, parts: np.ndarray):
  """The mirror image of one clip (T, 54, 3), written out point by point without asl_jax's tables: x negated,
  the left hand's 21 points swapped with the right hand's, and each left/right pair of the arm points (42-47)
  and of the pose's hand points (48-53) swapped; the hands' presence flags swapped."""
  out = clip.copy()
  for i in range(21):
    out[:, i], out[:, 21 + i] = clip[:, 21 + i], clip[:, i]
  for left in (42, 44, 46, 48, 50, 52):
    out[:, left], out[:, left + 1] = clip[:, left + 1], clip[:, left]
  out[..., 0] *= -1
  return out, parts[:, [1, 0, 2, 3]]


def test_flip_random_branch_mirrors_and_swaps_the_hands_of_the_clips_it_flips():
  """The recipe's flip_prob=0.5 takes the random branch: each clip comes out either untouched or as its mirror
  image (hands swapped, not only x negated), its flags swapped with it, and both happen."""
  rng = np.random.default_rng(5)
  pts = rng.normal(size=(64, 3, 54, 3)).astype(np.float32)
  parts = rng.random((64, 3, 4)) < 0.5
  fp, fparts = augment.flip(jax.random.key(7), jnp.asarray(pts), jnp.asarray(parts), 0.5)
  fp, fparts = np.asarray(fp), np.asarray(fparts)
  flipped = 0
  for b in range(64):
    mirror, mparts = _mirror_by_hand(pts[b], parts[b])
    if np.allclose(fp[b], pts[b]):
      np.testing.assert_array_equal(fparts[b], parts[b])
    else:
      np.testing.assert_allclose(fp[b], mirror, err_msg=f"clip {b} is neither itself nor its mirror image")
      np.testing.assert_array_equal(fparts[b], mparts)
      flipped += 1
  assert 16 <= flipped <= 48, flipped
