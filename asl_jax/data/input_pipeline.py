"""From packed arrays on device to model batches, inside jit: gather by index, sample frames, augment.

The training set lives on device (`DeviceData`, replicated over the mesh). A batch is an index vector;
`make_batch` gathers the clips, decides per clip which (fractional) source frames fill the model's
`num_frames` slots, interpolates, augments and assembles the model inputs. No host work per step.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from asl_jax.data import augment as aug_lib, landmark_features, layouts


@flax.struct.dataclass
class DeviceData:
  """Packed clips as (device) arrays; see `data.packed.Packed` for the shapes."""

  points: jnp.ndarray
  parts: jnp.ndarray
  lengths: jnp.ndarray
  labels: jnp.ndarray
  visual: jnp.ndarray | None = None
  visual_lengths: jnp.ndarray | None = None

  @property
  def size(self) -> int:
    return int(self.labels.shape[0])


def select(packed, indices: np.ndarray) -> DeviceData:
  """Host (numpy) DeviceData of the given clips of a Packed; put it on devices with `jax.device_put`."""
  take = lambda a: None if a is None else np.ascontiguousarray(a[indices])  # noqa: E731
  return DeviceData(points=take(packed.points), parts=take(packed.parts), lengths=take(packed.lengths),
                    labels=take(packed.labels), visual=take(packed.visual),
                    visual_lengths=take(packed.visual_lengths))


def padded_indices(indices: np.ndarray, size: int) -> np.ndarray:
  """`indices` followed by copies of its first element up to `size` entries: a split selected with these
  has the shapes of a larger one, so both evaluate with one compiled step (`Evaluator.evaluate` reads
  only the first len(labels) clips)."""
  indices = np.asarray(indices)
  if not len(indices):
    return indices
  return np.concatenate([indices, np.full(max(0, size - len(indices)), indices[0], indices.dtype)])


def eval_positions(lengths, num_frames: int, first=None):
  """Uniform sampling: every frame of short clips, `num_frames` evenly spaced ones of long clips.

  `lengths` (B,) frames to sample from, starting at frame `first` (B,) (default 0). Returns positions
  (B, F) float32 in frame units and valid (B, F) bool (a prefix per row).
  """
  n = lengths.astype(jnp.float32)[:, None]
  start = jnp.zeros_like(n) if first is None else first.astype(jnp.float32)[:, None]
  out = jnp.minimum(n, num_frames)
  return _segment_positions(start, start + n - 1, out, num_frames)


def _segment_positions(start, end, count, num_frames: int):
  k = jnp.arange(num_frames, dtype=jnp.float32)[None]
  step = jnp.where(count > 1, (end - start) / jnp.maximum(count - 1, 1), 0.0)
  valid = k < count
  return jnp.where(valid, start + k * step, 0.0), valid


def train_positions(rng, lengths, num_frames: int, cfg: aug_lib.AugmentConfig, first=None):
  """Random crop + speed resampling (+ adjacent swaps) of the sampling positions (within the `lengths`
  frames from `first`, as `eval_positions`)."""
  k_seg, k_swap = jax.random.split(rng)
  start, end, count = aug_lib.crop_and_speed(k_seg, lengths, num_frames, cfg)
  if first is not None:
    start, end = start + first, end + first
  pos, valid = _segment_positions(start[:, None], end[:, None], count[:, None].astype(jnp.float32), num_frames)
  if cfg.temporal_jitter:
    pos = aug_lib.swap_adjacent(k_swap, pos, valid)
  return pos, valid


def _interp(x, pos, length, present=None):
  """Linear interpolation of x (B, T, ...) at pos (B, F) clamped to [0, length-1].

  With `present` (B, T, P) and a point->part map, parts missing at either neighbour take the nearest
  frame instead of a blend with zeros. Returns (values (B, F, ...), present (B, F, P) or None).
  """
  pos = jnp.clip(pos, 0.0, (length - 1).astype(jnp.float32)[:, None])
  i0 = jnp.floor(pos).astype(jnp.int32)
  i1 = jnp.minimum(i0 + 1, length[:, None] - 1)
  w = pos - i0
  take = lambda a, i: jnp.take_along_axis(a, i.reshape(i.shape + (1,) * (a.ndim - 2)), axis=1, mode="clip")  # noqa: E731
  x0, x1 = take(x, i0), take(x, i1)
  wx = w.reshape(w.shape + (1,) * (x.ndim - 2))
  blend = (1 - wx) * x0 + wx * x1
  if present is None:
    return blend, None
  p0, p1 = take(present, i0), take(present, i1)
  nearest_is_1 = (w >= 0.5)[..., None]
  p_near = (nearest_is_1 & p1) | (~nearest_is_1 & p0)  # a select of booleans, without jnp.where (ONNX has no bool Where)
  x_near = jnp.where(nearest_is_1[..., None], x1, x0)  # points (B, F, 54, 3)
  both = (p0 & p1)[:, :, layouts.POINT_PART][..., None]
  return jnp.where(both, blend, x_near), p_near


DEFAULT_FEATURES = landmark_features.FeatureConfig()


def make_batch(data: DeviceData, idx, rng, num_frames: int, aug: aug_lib.AugmentConfig | None,
               use_landmarks: bool = True, use_visual: bool = False,
               features: landmark_features.FeatureConfig = DEFAULT_FEATURES, flip: bool = False,
               visual_norm=None):
  """The model batch for clips `idx` (B,). `aug=None` (or disabled) gives the deterministic eval view, for
  which `rng` may be None;
  `flip=True` mirrors every clip (test-time augmentation). With `features.trim_no_hands`, frames before
  the first and after the last detected hand are left out (clips without any hand keep every frame)."""
  lengths = data.lengths[idx]
  train = aug is not None and aug.enabled
  if train and rng is None:
    raise ValueError("make_batch: training augmentations need an rng")
  k_pos, k_spatial, k_drop_l, k_drop_v, k_noise = jax.random.split(rng, 5) if train else (None,) * 5
  first = None
  span = lengths
  if features.trim_no_hands:
    first, last = landmark_features.hand_span(data.parts[idx], lengths)
    span = last - first + 1
  if train:
    pos, valid = train_positions(k_pos, span, num_frames, aug, first)
  else:
    pos, valid = eval_positions(span, num_frames, first)
  batch = {"labels": data.labels[idx], "mask": valid}
  if use_landmarks:
    points, parts = _interp(data.points[idx], pos, lengths, data.parts[idx])
    if flip:
      points, parts = aug_lib.flip(None, points, parts, 1.0)
    if train:
      points, parts = aug_lib.spatial(k_spatial, points, parts, valid, aug)
    feats = landmark_features.derive(points, parts, valid, features)
    if train and aug.feature_dropout > 0 and "pos" in features.blocks:
      sl = features.slices()["pos"]
      feats = feats.at[..., sl].set(aug_lib.feature_dropout(k_drop_l, feats[..., sl], aug.feature_dropout))
    batch["landmarks"] = feats
  if use_visual:
    vlen = data.visual_lengths[idx]
    vpos = pos * ((vlen - 1) / jnp.maximum(lengths - 1, 1)).astype(jnp.float32)[:, None]
    vis, _ = _interp(data.visual[idx].astype(jnp.float32), vpos, vlen)
    if visual_norm is not None:
      vis = (vis - visual_norm[0]) / visual_norm[1]
    if train:
      vis = aug_lib.feature_dropout(k_drop_v, vis, aug.feature_dropout)
      vis = vis + aug.feature_noise * aug_lib.normal_noise(k_noise, vis.shape)
    batch["visual"] = vis * valid[..., None]
    batch["visual_mask"] = valid
  return batch
