"""Landmark encoders (BiLSTM, Transformer) and the visual stream. Each returns frame tokens and a pooled
vector: (tokens (B, T, H), pooled (B, H)); padding (mask False) never affects either at real frames."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from asl_jax.models.layers import (AttentionBlock, DenseBlock, Dropout, SinusoidalPositionalEncoding,
                                   masked_mean)
from asl_jax.models.lstm import BiLSTM


class LSTMLandmarkEncoder(nn.Module):
  """The seed's encoder: DenseBlock(H, relu) -> 2-layer BiLSTM -> DenseBlock(H, relu) on the final states.

  The output block is shared by the pooled vector (final states) and the per-frame tokens.
  """

  hidden: int
  dropout: float
  num_layers: int = 2
  matmul_dtype: str = "float32"

  @nn.compact
  def __call__(self, x, mask, train: bool = False):
    x = DenseBlock(self.hidden, self.dropout, "relu")(x, train)
    outputs, final = BiLSTM(self.hidden, self.num_layers, self.dropout, self.matmul_dtype)(x, mask, train)
    out = DenseBlock(self.hidden, self.dropout, "relu", name="out")
    return out(outputs, train), out(final, train)


class TransformerLandmarkEncoder(nn.Module):
  """Pre-LayerNorm Transformer with sinusoidal positions, masked attention, mean or CLS pooling.

  `dropout` acts on the input projection (the seed's block); `layer_dropout` inside the layers (positions,
  attention weights, residual branches), 0.1 like torch.nn.TransformerEncoderLayer: the seed's 0.5 there
  stalls learning at 1000 classes (README, "Class weights")."""

  hidden: int
  dropout: float
  num_layers: int = 2
  num_heads: int = 4
  ff_mult: int = 4
  pooling: str = "mean"  # or "cls"
  layer_dropout: float = 0.1

  @nn.compact
  def __call__(self, x, mask, train: bool = False):
    x = DenseBlock(self.hidden, self.dropout, "relu")(x, train)
    x = SinusoidalPositionalEncoding(self.layer_dropout)(x, train)
    if self.pooling == "cls":
      cls = self.param("cls", nn.initializers.normal(0.02), (1, 1, self.hidden))
      x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, self.hidden)), x], 1)
      mask = jnp.concatenate([jnp.ones((mask.shape[0], 1), bool), mask], 1)
    attn_mask = nn.make_attention_mask(mask, mask)
    drop = Dropout(self.layer_dropout, deterministic=not train)
    for _ in range(self.num_layers):
      y = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, dropout_rate=self.layer_dropout,
                                          deterministic=not train)(nn.LayerNorm()(x), mask=attn_mask)
      x = x + drop(y)
      y = nn.Dense(self.ff_mult * self.hidden)(nn.LayerNorm()(x))
      x = x + drop(nn.Dense(self.hidden)(drop(nn.gelu(y))))
    x = nn.LayerNorm()(x) * mask[..., None].astype(x.dtype)
    if self.pooling == "cls":
      return x[:, 1:], x[:, 0]
    return x, masked_mean(x, mask)


class VisualEncoder(nn.Module):
  """Frozen per-frame visual features -> projection, positions, masked self-attention with a residual,
  masked mean pooling (the seed's stream without its missing residual and positions)."""

  hidden: int
  dropout: float
  num_heads: int = 4

  @nn.compact
  def __call__(self, x, mask, train: bool = False):
    x = DenseBlock(2 * self.hidden, self.dropout)(x, train)
    x = DenseBlock(self.hidden, self.dropout)(x, train)
    x = SinusoidalPositionalEncoding()(x, train)
    x = AttentionBlock(self.num_heads, self.dropout)(x, x, mask, mask, train)
    x = x * mask[..., None].astype(x.dtype)
    return x, masked_mean(x, mask)
