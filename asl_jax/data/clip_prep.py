"""One raw clip -> the packed form the input pipeline reads, in jnp, for any number of frames T.

What `data/packed.prepare_clip` + `pack_clips` do on the host with numpy (layout -> canonical points and
part presence, body-centred normalisation with medians over the frames where a part is present, uniform
resampling of long clips to `max_frames`, zero padding), written as traceable jnp so that the exported
model (asl_jax/serving/export.py) takes a clip exactly as the feature files hold it, with a symbolic T.
tests/test_export.py checks that both agree on every layout, with and without pose or hands.
"""

from __future__ import annotations

import jax
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
  base = jax.lax.div(q, jnp.int32(div))  # q >= 0: truncation is floor (and no lax.rem, whose ONNX lowering
  rem = q - base * div  # fails on a batch dimension unknown at export time)
  up = (2 * rem > div) | ((2 * rem == div) & ((base & 1) == 1))
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


def masked_median(x, mask, sort: bool = True):
  """Median of x (N,) over mask (N,) (numpy's: the mean of the two middle values for an even count);
  NaN-free garbage when the mask is empty (callers select it away). `sort=False` finds the two middle
  order statistics by counting, for each value, how many masked values lie below it (O(N^2) comparisons,
  the same result): ONNX has no sort over a dimension unknown at export time."""
  n = jnp.sum(mask)
  half = lambda k: jax.lax.div(k, jnp.int32(2))  # noqa: E731  (not //: see resample_indices)
  hi = jnp.clip(half(n), 0, x.shape[0] - 1)
  lo = jnp.clip(half(n - 1), 0, x.shape[0] - 1)  # n = 0 gives 0, as (n - 1) // 2 = -1 clipped does
  if sort:
    v = jnp.sort(jnp.where(mask, x, jnp.inf))
    middle = (v[lo] + v[hi]) / 2
  else:
    below = jnp.sum((x[None, :] < x[:, None]) & mask[None, :], axis=1)  # (N,) masked values < x_i
    at_or_below = jnp.sum((x[None, :] <= x[:, None]) & mask[None, :], axis=1)
    def kth(k):  # the k-th smallest masked value (0-based): x_i with below_i <= k < at_or_below_i
      return jnp.max(jnp.where(mask & (below <= k) & (k < at_or_below), x, -jnp.inf))
    middle = (kth(lo) + kth(hi)) / 2
  return jnp.where(n > 0, middle, 0.0)


def normalize_points(points, present, sort: bool = True):
  """Body-centric normalisation of one clip: layouts.normalize in jnp (`sort`: see masked_median)."""
  median = lambda x, mask: masked_median(x, mask, sort)  # noqa: E731
  arms = present[:, 2]
  has_arms = jnp.any(arms)
  ls, rs = points[:, 42, :2], points[:, 43, :2]
  mid = (ls + rs) / 2
  arm_centre = jnp.stack([median(mid[:, 0], arms), median(mid[:, 1], arms)])
  arm_scale = median(jnp.linalg.norm(ls - rs, axis=-1), arms)
  arm_scale = jnp.where(has_arms, arm_scale, 0.0)
  # The hands' fallback: centroid of every present hand point, 4x the median palm length (wrist -> middle
  # finger base) over the frames where each hand is present.
  hand_mask = jnp.concatenate([present[:, 0], present[:, 1]])  # (2T,)
  hands = jnp.concatenate([points[:, 0:21], points[:, 21:42]], axis=0)  # (2T, 21, 3)
  n_hand_points = jnp.sum(hand_mask) * 21
  hand_centre = jnp.sum(jnp.where(hand_mask[:, None, None], hands[..., :2], 0.0), axis=(0, 1)) / jnp.maximum(
      n_hand_points, 1)
  palm = median(jnp.linalg.norm(hands[:, 0, :2] - hands[:, 9, :2], axis=-1), hand_mask)
  hand_scale = jnp.where(jnp.any(hand_mask), 4.0 * palm, 0.0)
  use_hands = ~(arm_scale > 1e-4)
  centre = jnp.where(has_arms, arm_centre, jnp.where(jnp.any(hand_mask), hand_centre, 0.0))
  scale = jnp.where(use_hands, hand_scale, arm_scale)
  scale = jnp.where(scale > 1e-4, scale, 1.0)
  pts = jnp.concatenate([points[..., :2] - centre, points[..., 2:]], axis=-1) / scale
  return pts * present[:, layouts.POINT_PART][..., None]


def pack_clip(raw, layout: str, max_frames: int, length=None, sort: bool = True):
  """(T, D) raw clip -> points (max_frames, 54, 3), parts (max_frames, 4), length (): one packed clip.
  With `length` (a traced int, 1 <= length <= T), only the first `length` frames are the clip and the rest
  is padding (the batched ONNX model); `sort`: see masked_median."""
  points, present = canonical_points(raw, layout)
  if length is None:
    length = raw.shape[0]
  else:
    length = jnp.clip(length, 1, raw.shape[0])
    # The frame numbers as an iota of raw's own dimension: jnp.arange(raw.shape[0]) loses the tie to T in
    # the ONNX converter's tracing.
    frame = jax.lax.broadcasted_iota(jnp.int32, present.shape, 0)
    present = present & (frame < length)
  points = normalize_points(points, present, sort)
  idx, length = resample_indices(length, max_frames)
  valid = jnp.arange(max_frames) < length
  points = jnp.where(valid[:, None, None], points[idx], 0.0)
  present = present[idx] & valid[:, None]
  return points, present, length.astype(jnp.int32)


def pack_visual(visual, max_frames: int, length=None):
  """(Tv, G) visual features -> (max_frames, G) resampled and zero-padded, length (); with `length`, the
  first `length` rows are the clip (as in pack_clip)."""
  length = visual.shape[0] if length is None else jnp.clip(length, 1, visual.shape[0])
  idx, length = resample_indices(length, max_frames)
  valid = jnp.arange(max_frames) < length
  return jnp.where(valid[:, None], visual.astype(jnp.float32)[idx], 0.0), length.astype(jnp.int32)
