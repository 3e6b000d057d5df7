"""Fusion of the visual and landmark streams: concat, cross-attention or gated."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from asl_jax.config import choices
from asl_jax.models.layers import AttentionBlock, DenseBlock, masked_mean

FUSIONS = choices("fusion_type")


class ConcatFusion(nn.Module):
  hidden: int
  dropout: float

  @nn.compact
  def __call__(self, v, l, train: bool = False):
    x = DenseBlock(2 * self.hidden, self.dropout)(jnp.concatenate([v.pooled, l.pooled], -1), train)
    return DenseBlock(self.hidden, self.dropout)(x, train)


class CrossAttentionFusion(nn.Module):
  """Landmark frames attend to visual frames and visual frames to landmark frames (masked both ways);
  each result is mean-pooled over its own real frames, then concatenated and projected."""

  hidden: int
  dropout: float
  num_heads: int = 4

  @nn.compact
  def __call__(self, v, l, train: bool = False):
    l2v = AttentionBlock(self.num_heads, self.dropout, name="landmarks_to_visual")(
        l.tokens, v.tokens, l.mask, v.mask, train)
    v2l = AttentionBlock(self.num_heads, self.dropout, name="visual_to_landmarks")(
        v.tokens, l.tokens, v.mask, l.mask, train)
    x = jnp.concatenate([masked_mean(l2v, l.mask), masked_mean(v2l, v.mask)], -1)
    return DenseBlock(self.hidden, self.dropout)(x, train)


class GatedFusion(nn.Module):
  hidden: int
  dropout: float

  @nn.compact
  def __call__(self, v, l, train: bool = False):
    vp = nn.gelu(nn.LayerNorm()(nn.Dense(self.hidden)(v.pooled)))
    lp = nn.gelu(nn.LayerNorm()(nn.Dense(self.hidden)(l.pooled)))
    g = jax.nn.sigmoid(nn.Dense(self.hidden)(jnp.concatenate([v.pooled, l.pooled], -1)))
    return DenseBlock(self.hidden, self.dropout)(g * vp + (1 - g) * lp, train)


def make_fusion(kind: str, hidden: int, dropout: float, num_heads: int = 4) -> nn.Module:
  if kind == "concat":
    return ConcatFusion(hidden, dropout, name="fusion")
  if kind == "attention":
    return CrossAttentionFusion(hidden, dropout, num_heads, name="fusion")
  if kind == "gated":
    return GatedFusion(hidden, dropout, name="fusion")
  raise ValueError(f"fusion_type={kind!r}: expected one of {FUSIONS}")
