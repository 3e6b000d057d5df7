"""On-device, mask-aware training augmentations; pure jnp functions of a batch, vectorised over clips.

Temporal augmentations act on *where* frames are sampled (see `input_pipeline.train_positions`):
random crop, speed resampling and adjacent-frame swaps cost nothing but an index computation. Spatial
ones act on the canonical points (B, F, 54, 3) with part presence (B, F, 4): a missing part stays
exactly zero, padding frames stay untouched.

Strengths (config fields, 0 disables one): the seed's temporal crop (`temporal_crop_prob`, `crop_min`),
adjacent swaps (`temporal_jitter`), frame masking (`temporal_mask_prob`), per-dimension feature dropout
(`feature_dropout`), visual noise (`feature_noise`), landmark jitter (`landmark_jitter`, in shoulder
widths); and the Kaggle ISLR 2023 winners': speed (`speed_range`), horizontal flip with left/right swap
(`flip_prob`), affine (`affine_scale`, `affine_rotate` degrees, `affine_shear`, `affine_shift`).
Mixup (`mixup_prob`, `mixup_alpha`) blends whole clips of a batch after their features are derived.
"""

from __future__ import annotations

import dataclasses
import math
import statistics

import jax
import jax.numpy as jnp
import numpy as np

from asl_jax import config as config_lib
from asl_jax.config import default
from asl_jax.data import layouts


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """The augmentation fields of the config (defaults: asl_jax/config.py); `enabled` is `augmentation`."""

  enabled: bool = default("augmentation")
  temporal_jitter: bool = default("temporal_jitter")
  temporal_crop_prob: float = default("temporal_crop_prob")
  crop_min: float = default("crop_min")
  speed_range: float = default("speed_range")
  temporal_mask_prob: float = default("temporal_mask_prob")
  feature_dropout: float = default("feature_dropout")
  feature_noise: float = default("feature_noise")
  landmark_jitter: float = default("landmark_jitter")
  flip_prob: float = default("flip_prob")
  affine_prob: float = default("affine_prob")
  affine_scale: float = default("affine_scale")
  affine_rotate: float = default("affine_rotate")
  affine_shear: float = default("affine_shear")
  affine_shift: float = default("affine_shift")
  mixup_prob: float = default("mixup_prob")
  mixup_alpha: float = default("mixup_alpha")

  CONFIG_NAMES = {"enabled": "augmentation"}  # consumer field -> config field where they differ

  @classmethod
  def from_config(cls, config) -> "AugmentConfig":
    return cls(**config_lib.pick(config, {f.name: cls.CONFIG_NAMES.get(f.name, f.name)
                                          for f in dataclasses.fields(cls)}))


def crop_and_speed(rng, lengths, num_frames: int, cfg: AugmentConfig):
  """Per clip, the source segment [start, end] (frame units) and how many output frames it fills."""
  k_crop, k_ratio, k_start, k_speed = jax.random.split(rng, 4)
  b = lengths.shape[0]
  n = lengths.astype(jnp.float32)
  do_crop = jax.random.uniform(k_crop, (b,)) < cfg.temporal_crop_prob
  ratio = jax.random.uniform(k_ratio, (b,), minval=cfg.crop_min, maxval=1.0)
  seg = jnp.where(do_crop, jnp.maximum(jnp.minimum(4.0, n), jnp.round(ratio * n)), n)
  start = jnp.floor(jax.random.uniform(k_start, (b,)) * (n - seg + 1))
  speed = jax.random.uniform(k_speed, (b,), minval=1 - cfg.speed_range, maxval=1 + cfg.speed_range)
  out = jnp.clip(jnp.round(jnp.minimum(seg, num_frames) / speed), jnp.minimum(2, n), num_frames)
  return start, start + seg - 1, out.astype(jnp.int32)


def swap_adjacent(rng, positions, valid, prob: float = 0.2, apply_prob: float = 0.5):
  """The seed's temporal jitter: in half the clips, swap disjoint adjacent frame pairs with prob 0.2."""
  k_apply, k_off, k_swap = jax.random.split(rng, 3)
  b, f = positions.shape
  offset = jax.random.randint(k_off, (b, 1), 0, 2)
  t = jnp.arange(f)[None]
  first = ((t - offset) % 2 == 0) & (t + 1 < f)  # t is the first of a pair (t, t+1)
  swap_pair = (jax.random.uniform(k_swap, (b, f)) < prob) & first
  swap_pair &= (jax.random.uniform(k_apply, (b, 1)) < apply_prob)
  swap_pair &= jnp.roll(valid, -1, axis=1)  # never swap a real frame with padding
  from_next = swap_pair
  from_prev = jnp.roll(swap_pair, 1, axis=1) & (t > 0)
  src = t + from_next.astype(jnp.int32) - from_prev.astype(jnp.int32)
  return jnp.take_along_axis(positions, src, axis=1)


def flip(rng, points, parts, prob: float):
  """Horizontal flip with left/right swap for a random subset of clips (a left-handed signer); every
  clip when prob >= 1 (rng unused)."""
  if prob >= 1:
    return points[:, :, layouts.FLIP_POINTS] * jnp.array([-1.0, 1.0, 1.0]), parts[:, :, layouts.FLIP_PARTS]
  do = jax.random.uniform(rng, (points.shape[0],)) < prob
  fp = points[:, :, layouts.FLIP_POINTS] * jnp.array([-1.0, 1.0, 1.0])
  fparts = parts[:, :, layouts.FLIP_PARTS]
  return (jnp.where(do[:, None, None, None], fp, points), jnp.where(do[:, None, None], fparts, parts))


def affine(rng, points, cfg: AugmentConfig):
  """Per clip: scale, rotation, shear and shift of x, y (about the body centre, the origin)."""
  k_apply, k_scale, k_rot, k_shear, k_shift = jax.random.split(rng, 5)
  b = points.shape[0]
  u = lambda k, r, shape=(b,): jax.random.uniform(k, shape, minval=-r, maxval=r)  # noqa: E731
  do = (jax.random.uniform(k_apply, (b,)) < cfg.affine_prob)[:, None, None]
  scale = 1 + u(k_scale, cfg.affine_scale)
  theta = jnp.deg2rad(u(k_rot, cfg.affine_rotate))
  shear = u(k_shear, cfg.affine_shear)
  c, s = jnp.cos(theta), jnp.sin(theta)
  rot = jnp.stack([jnp.stack([c, -s], -1), jnp.stack([s, c], -1)], -2)  # (B, 2, 2)
  sh = jnp.stack([jnp.stack([jnp.ones(b), shear], -1), jnp.stack([jnp.zeros(b), jnp.ones(b)], -1)], -2)
  mat = scale[:, None, None] * rot @ sh
  mat = jnp.where(do, mat, jnp.eye(2))
  shift = jnp.where(do[:, :, 0], u(k_shift, cfg.affine_shift, (b, 2)), 0.0)
  xy = jnp.einsum("bij,btpj->btpi", mat, points[..., :2]) + shift[:, None, None, :]
  return jnp.concatenate([xy, points[..., 2:]], -1)


def spatial(rng, points, parts, valid, cfg: AugmentConfig):
  """Flip, affine, jitter and frame masking on (B, F, 54, 3) points; presence-aware. Returns
  (points, parts) with missing parts, masked frames and padding exactly zero."""
  k_flip, k_aff, k_jit, k_mask = jax.random.split(rng, 4)
  points, parts = flip(k_flip, points, parts, cfg.flip_prob)
  points = affine(k_aff, points, cfg)
  points = points + cfg.landmark_jitter * normal_noise(k_jit, points.shape)
  b, f = valid.shape
  drop = jax.random.uniform(k_mask, (b, f)) < cfg.temporal_mask_prob
  # Keep at least half of each clip's real frames: undo drops beyond that budget, latest first.
  lengths = valid.sum(1, keepdims=True)
  drop &= valid & (jnp.cumsum(drop & valid, axis=1) <= lengths - (lengths + 1) // 2)
  parts = parts & ~drop[..., None] & valid[..., None]
  return points * parts[:, :, layouts.POINT_PART][..., None], parts


# The 256 equiprobable quantiles of N(0, 1), rescaled to unit variance (they reach +-2.9 sigma).
_NORMAL_QUANTILES = np.array([statistics.NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)])
_NORMAL_QUANTILES = (_NORMAL_QUANTILES / _NORMAL_QUANTILES.std()).astype(np.float32)


def normal_noise(rng, shape) -> jnp.ndarray:
  """Standard-normal noise for augmentation from one random byte per value (a 256-level quantile table):
  a quarter of the random bits of jax.random.normal and no erf_inv. On a CPU, generating random bits
  is most of the augmentation's cost (B x T x 1152 values per batch for the visual noise)."""
  n = math.prod(shape)
  words = jax.random.bits(rng, (-(-n // 4),), jnp.uint32)
  bytes_ = jnp.stack([(words >> s) & 0xFF for s in (0, 8, 16, 24)], -1).reshape(-1)[:n]
  return jnp.asarray(_NORMAL_QUANTILES)[bytes_.reshape(shape)]


def mixup(rng, batch: dict, cfg: AugmentConfig):
  """Mixup of a training batch (after features): with probability `mixup_prob`, every clip i becomes
  lam * clip i + (1 - lam) * clip i-1 of the batch (one lam ~ Beta(mixup_alpha, mixup_alpha) per batch,
  folded to >= 0.5 so each clip stays the main one), masks are their union. Returns (batch, partner labels,
  lam); lam is 1 (the batch unchanged) when mixup is not drawn, and the partner labels None when mixup is
  off (`mixup_prob` 0 or augmentation disabled). The loss is `losses.mixed_ce_terms`."""
  if not cfg.enabled or cfg.mixup_prob <= 0:
    return batch, None, None
  labels = batch["labels"]
  partner = jnp.roll(jnp.arange(labels.shape[0]), 1)
  k_apply, k_lam = jax.random.split(rng)
  lam = jax.random.beta(k_lam, cfg.mixup_alpha, cfg.mixup_alpha)
  lam = jnp.where(jax.random.uniform(k_apply) < cfg.mixup_prob, jnp.maximum(lam, 1 - lam), 1.0).astype(jnp.float32)
  out = dict(batch)
  for key in ("landmarks", "visual"):
    if key in batch:
      out[key] = lam * batch[key] + (1 - lam) * batch[key][partner]
  for key in ("mask", "visual_mask"):
    if key in batch:
      out[key] = batch[key] | jnp.where(lam < 1, batch[key][partner], False)
  return out, labels[partner], lam


def feature_dropout(rng, x, rate: float):
  """Zero each feature dimension with prob `rate`, shared over time (the seed's, no rescale)."""
  keep = jax.random.uniform(rng, (x.shape[0], 1, x.shape[-1])) >= rate
  return x * keep
