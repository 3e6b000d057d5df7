"""One raw clip -> the packed form the input pipeline reads, in jnp, for any number of frames T.

What `data/packed.prepare_clip` + `pack_clips` do on the host with numpy (layout -> canonical points and
part presence, body-centred normalisation with medians over the frames where a part is present, uniform
resampling of long clips to `max_frames`, zero padding), written as traceable jnp so that the exported
model (asl_jax/export.py) takes a clip exactly as the feature files hold it, with a symbolic T.
tests/test_export.py checks that both agree on every layout, with and without pose or hands.
"""

from __future__ import annotations

import jax.numpy as jnp

from asl_jax.data import layouts


def resample_indices(length, max_frames: int):
  """(max_frames,) int32 frame indices and the kept length min(length, max_frames): every frame of a short
  clip (padded with its last index), or round-half-even of `linspace(0, length - 1, max_frames)` for a long
  one, in exact integer arithmetic (it equals numpy's float64 linspace + round)."""
  length = jnp.asarray(length, jnp.int32)  # a symbolic dimension becomes a traced value
  k = jnp.arange(max_frames, dtype=jnp.int32)
  q = k * (length - 1)
  div = max(max_frames - 1, 1)
  base, rem = q // div, q % div
  up = (2 * rem > div) | ((2 * rem == div) & (base % 2 == 1))
  long_idx = base + up.astype(jnp.int32)
  short_idx = jnp.minimum(k, length - 1)
  return jnp.where(length > max_frames, long_idx, short_idx), jnp.minimum(length, max_frames)


def canonical_points(raw, layout: str):
  """(T, D) raw landmarks -> points (T, 54, 3) float32, part presence (T, 4) bool: layouts.to_canonical in jnp."""
  t = raw.shape[0]
  raw = raw.astype(jnp.float32)
  if layout == "seed162":
    points = raw.reshape(t, layouts.NUM_POINTS, 3)
    available = (True, True, True, True)
  elif layout == "holistic170":
    pose = raw[:, :44].reshape(t, 11, 4)[:, :, :3]
    zeros = jnp.zeros((t, 6, 3), jnp.float32)
    points = jnp.concatenate([raw[:, 44:107].reshape(t, 21, 3), raw[:, 107:170].reshape(t, 21, 3), pose[:, 1:7],
                              zeros], axis=1)
    available = (True, True, True, False)
  elif layout == "holistic543":
    pts = raw.reshape(t, 543, 3)
    points = jnp.concatenate([pts[:, 468:489], pts[:, 522:543], pts[:, 489 + 11:489 + 23]], axis=1)
    available = (True, True, True, True)
  else:
    raise ValueError(f"layout={layout!r}: expected one of {sorted(layouts.LAYOUT_DIMS)}")
  present = jnp.stack([jnp.any(points[:, s] != 0, axis=(1, 2)) & a
                       for s, a in zip(layouts.PART_SLICES, available)], -1)
  return points, present


def masked_median(x, mask):
  """Median of x (N,) over mask (N,) (numpy's: the mean of the two middle values for an even count);
  NaN-free garbage when the mask is empty (callers select it away)."""
  n = jnp.sum(mask)
  v = jnp.sort(jnp.where(mask, x, jnp.inf))
  hi = jnp.clip(n // 2, 0, x.shape[0] - 1)
  lo = jnp.clip((n - 1) // 2, 0, x.shape[0] - 1)
  return jnp.where(n > 0, (v[lo] + v[hi]) / 2, 0.0)


def normalize_points(points, present):
  """Body-centric normalisation of one clip: layouts.normalize in jnp."""
  arms = present[:, 2]
  has_arms = jnp.any(arms)
  ls, rs = points[:, 42, :2], points[:, 43, :2]
  mid = (ls + rs) / 2
  arm_centre = jnp.stack([masked_median(mid[:, 0], arms), masked_median(mid[:, 1], arms)])
  arm_scale = masked_median(jnp.linalg.norm(ls - rs, axis=-1), arms)
  arm_scale = jnp.where(has_arms, arm_scale, 0.0)
  # The hands' fallback: centroid of every present hand point, 4x the median palm length (wrist -> middle
  # finger base) over the frames where each hand is present.
  hand_mask = jnp.concatenate([present[:, 0], present[:, 1]])  # (2T,)
  hands = jnp.concatenate([points[:, 0:21], points[:, 21:42]], axis=0)  # (2T, 21, 3)
  n_hand_points = jnp.sum(hand_mask) * 21
  hand_centre = jnp.sum(jnp.where(hand_mask[:, None, None], hands[..., :2], 0.0), axis=(0, 1)) / jnp.maximum(
      n_hand_points, 1)
  palm = masked_median(jnp.linalg.norm(hands[:, 0, :2] - hands[:, 9, :2], axis=-1), hand_mask)
  hand_scale = jnp.where(jnp.any(hand_mask), 4.0 * palm, 0.0)
  use_hands = ~(arm_scale > 1e-4)
  centre = jnp.where(has_arms, arm_centre, jnp.where(jnp.any(hand_mask), hand_centre, 0.0))
  scale = jnp.where(use_hands, hand_scale, arm_scale)
  scale = jnp.where(scale > 1e-4, scale, 1.0)
  pts = points.at[..., :2].add(-centre)
  pts = pts / scale
  return pts * present[:, layouts.POINT_PART][..., None]


def pack_clip(raw, layout: str, max_frames: int):
  """(T, D) raw clip -> points (max_frames, 54, 3), parts (max_frames, 4), length (): one packed clip."""
  points, present = canonical_points(raw, layout)
  points = normalize_points(points, present)
  idx, length = resample_indices(raw.shape[0], max_frames)
  valid = jnp.arange(max_frames) < length
  points = jnp.where(valid[:, None, None], points[idx], 0.0)
  present = present[idx] & valid[:, None]
  return points, present, length.astype(jnp.int32)


def pack_visual(visual, max_frames: int):
  """(Tv, G) visual features -> (max_frames, G) resampled and zero-padded, length ()."""
  idx, length = resample_indices(visual.shape[0], max_frames)
  valid = jnp.arange(max_frames) < length
  return jnp.where(valid[:, None], visual.astype(jnp.float32)[idx], 0.0), length.astype(jnp.int32)


