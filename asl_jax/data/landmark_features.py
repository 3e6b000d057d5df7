"""Model input features derived on device from the canonical points, after augmentation.

The packed data holds canonical points (B, F, 54, 3), body-normalised per clip (see data/layouts.py), and
part presence (B, F, 4). The training step samples frames, augments the *points* (so a rotation also
rotates the hand shapes and the motion), then derives the per-frame feature vector here. Blocks, chosen
by `config.features` (comma-separated, concatenated in this order):

  pos       body-normalised coordinates of the 54 points (centre: shoulder midpoint, unit: shoulder width)
  hand      per hand, the 20 finger points relative to the wrist, divided by the hand's own size (mean
            wrist-to-knuckle distance in x, y): hand shape independent of where the hand is and how far
            from the camera
  shape     per hand, 29 values that do not change with the hand's position, size or in-plane rotation: the
            cosine of the bend at each of the 15 finger joints, of the spread between neighbouring fingers'
            first segments (4), and the 10 fingertip-to-fingertip distances over the hand's size
  vel       frame-to-frame differences of the `pos` block (zero where a part is missing in either frame)
  acc       second differences of the `pos` block
  presence  the four part-presence flags (left hand, right hand, arms, pose hands)

`use_z=False` drops MediaPipe's relative depth from every block (x, y only). Missing parts and padding
frames are exactly zero in every block. The seed-compatible input is `features="pos,presence"` with
`use_z=True` (166 values per frame, the default); the recommended configs use
`pos,hand,vel,presence` without z (docs/results.md, "Results on real data": +x points on WLASL100 landmarks).

`hand_span` gives the first and last frame with a detected hand, for `trim_no_hands` (input_pipeline).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from asl_jax.config import FEATURE_BLOCKS as BLOCKS  # noqa: F401  (re-exported)
from asl_jax.config import default, parse_blocks
from asl_jax.data import layouts

HAND_POINTS = 21
# Knuckles (MCP joints of the index, middle, ring and little fingers): their mean distance to the wrist
# is the hand's size, stable across hand shapes (fingertips move, the palm does not).
_KNUCKLES = np.array([5, 9, 13, 17])
_MIN_HAND_SIZE = 1e-3  # in shoulder widths; a degenerate hand gives zeros, not infinities
_FINGER_BASES = np.array([1, 5, 9, 13, 17])  # thumb CMC, index/middle/ring/little MCP: then 3 more points each
_TIPS = _FINGER_BASES + 3
_TIP_PAIRS = np.array([(i, j) for i in range(5) for j in range(i + 1, 5)])
SHAPE_VALUES = 29  # per hand: 15 bends, 4 spreads, 10 fingertip distances


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
  """What the landmark stream sees per frame, and which frames (the config fields features, use_z,
  trim_no_hands)."""

  blocks: tuple[str, ...] = tuple(default("features").split(","))  # the config's `features`, parsed
  use_z: bool = default("use_z")
  trim_no_hands: bool = default("trim_no_hands")

  CONFIG_NAMES = {"blocks": "features"}

  @classmethod
  def from_config(cls, config) -> "FeatureConfig":
    return cls(parse_blocks(config.features), bool(config.use_z), bool(config.trim_no_hands))

  @property
  def coords(self) -> int:
    return 3 if self.use_z else 2

  @property
  def dim(self) -> int:
    """Values per frame."""
    c, n = self.coords, layouts.NUM_POINTS
    sizes = {"pos": n * c, "hand": 2 * (HAND_POINTS - 1) * c, "shape": 2 * SHAPE_VALUES, "vel": n * c,
             "acc": n * c, "presence": layouts.NUM_PARTS}
    return sum(sizes[b] for b in self.blocks)

  def slices(self) -> dict[str, slice]:
    """Where each block sits in the feature vector."""
    out, start = {}, 0
    for b in self.blocks:
      size = FeatureConfig((b,), self.use_z).dim
      out[b] = slice(start, start + size)
      start += size
    return out


def _shift(x, k: int):
  """x[:, t - k] along axis 1, zeros for t < k."""
  pad = jnp.zeros_like(x[:, :k])
  return jnp.concatenate([pad, x[:, :-k]], 1)


def _cosine(a, b):
  return (a * b).sum(-1) / (jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1) + 1e-6)


def hand_shape(hand, size, ok):
  """(B, F, SHAPE_VALUES) of one hand's points (B, F, 21, c), its size (B, F) and whether it is there (B, F)."""
  chain = jnp.concatenate([hand[:, :, :1, None].repeat(5, 2),
                           jnp.stack([hand[:, :, _FINGER_BASES + k] for k in range(4)], 3)], 3)  # (B, F, 5, 5, c)
  bones = chain[:, :, :, 1:] - chain[:, :, :, :-1]  # (B, F, 5 fingers, 4 bones, c)
  bends = _cosine(bones[:, :, :, :-1], bones[:, :, :, 1:]).reshape(*hand.shape[:2], 15)
  spreads = _cosine(bones[:, :, :-1, 1], bones[:, :, 1:, 1])  # (B, F, 4)
  tips = hand[:, :, _TIPS]
  dist = jnp.linalg.norm(tips[:, :, _TIP_PAIRS[:, 0]] - tips[:, :, _TIP_PAIRS[:, 1]], axis=-1)
  dist = dist / jnp.maximum(size, _MIN_HAND_SIZE)[..., None]
  return jnp.concatenate([bends, spreads, dist], -1) * ok[..., None]


def derive(points, parts, valid, cfg: FeatureConfig):
  """(B, F, cfg.dim) features from points (B, F, 54, 3), parts (B, F, 4) bool, valid (B, F) bool."""
  b, f = valid.shape
  parts = parts & valid[..., None]
  point_ok = parts[:, :, layouts.POINT_PART]  # (B, F, 54)
  pos = points[..., :cfg.coords] * point_ok[..., None]
  out = []
  if "pos" in cfg.blocks:
    out.append(pos.reshape(b, f, -1))
  if "hand" in cfg.blocks or "shape" in cfg.blocks:
    hands, shapes = [], []
    for h, sl in enumerate(layouts.PART_SLICES[:2]):
      hand = pos[:, :, sl]
      rel = hand[:, :, 1:] - hand[:, :, :1]  # (B, F, 20, c)
      size = jnp.linalg.norm(rel[:, :, _KNUCKLES - 1, :2], axis=-1).mean(-1)  # (B, F)
      ok = parts[..., h] & (size > _MIN_HAND_SIZE)
      scale = jnp.where(ok, 1.0 / jnp.maximum(size, _MIN_HAND_SIZE), 0.0)
      if "hand" in cfg.blocks:
        hands.append((rel * scale[..., None, None]).reshape(b, f, -1))
      if "shape" in cfg.blocks:
        shapes.append(hand_shape(hand, size, ok))
    out.extend(hands + shapes)  # the block order: every hand's `hand`, then every hand's `shape`
  if "vel" in cfg.blocks or "acc" in cfg.blocks:
    ok1 = point_ok & _shift(point_ok, 1)
    vel = jnp.where(ok1[..., None], pos - _shift(pos, 1), 0.0)
    if "vel" in cfg.blocks:
      out.append(vel.reshape(b, f, -1))
    if "acc" in cfg.blocks:
      ok2 = ok1 & _shift(point_ok, 2)
      acc = jnp.where(ok2[..., None], vel - _shift(vel, 1), 0.0)
      out.append(acc.reshape(b, f, -1))
  if "presence" in cfg.blocks:
    out.append(parts.astype(points.dtype))
  return jnp.concatenate(out, -1)


def hand_span(parts, lengths):
  """First and last frame (B,) int32 of each clip with a detected hand; the whole clip when no frame
  has one. parts (B, T, 4) bool, lengths (B,)."""
  t = parts.shape[1]
  frames = jnp.arange(t)[None]
  hands = (parts[..., 0] | parts[..., 1]) & (frames < lengths[:, None])
  any_hand = hands.any(1)
  first = jnp.argmax(hands, axis=1)
  last = t - 1 - jnp.argmax(hands[:, ::-1], axis=1)
  first = jnp.where(any_hand, first, 0).astype(jnp.int32)
  last = jnp.where(any_hand, last, lengths - 1).astype(jnp.int32)
  return first, last
