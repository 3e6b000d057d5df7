"""Landmark encoders (BiLSTM, Transformer, convolution + Transformer) and the visual stream. Each returns frame tokens and a pooled
vector: (tokens (B, T, H), pooled (B, H)); padding (mask False) never affects either at real frames."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from asl_jax.models.layers import (AttentionBlock, DenseBlock, Dropout, DropPath, SinusoidalPositionalEncoding,
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
  stalls learning at 1000 classes (docs/results.md, "Class weights")."""

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


class DepthwiseConv1D(nn.Module):
  """Depthwise temporal convolution ("SAME", zero padding) of (B, T, C): one batched matmul with a banded
  (T, T) Toeplitz matrix per channel. On a 2-core CPU (B 32, T 32, C 384, k 17, forward + backward) this
  takes 2.6 ms, a sum of k shifted copies 4.5 ms and XLA's grouped convolution (nn.Conv with
  feature_group_count=C) about 25 ms."""

  kernel: int

  @nn.compact
  def __call__(self, x):
    t, c = x.shape[1], x.shape[2]
    w = self.param("kernel", nn.initializers.lecun_normal(in_axis=0, out_axis=()), (self.kernel, c))
    b = self.param("bias", nn.initializers.zeros, (c,))
    tap = jnp.arange(t)[None, :] - jnp.arange(t)[:, None] + (self.kernel - 1) // 2  # (T out, T in)
    band = (tap >= 0) & (tap < self.kernel)
    toeplitz = jnp.where(band[..., None], w[jnp.clip(tap, 0, self.kernel - 1)], 0.0)  # (T, T, C)
    return jnp.einsum("tsc,bsc->btc", toeplitz.astype(x.dtype), x) + b


class _ConvBlock(nn.Module):
  """Pre-LN residual block: Dense (expand) -> swish -> masked depthwise temporal convolution -> LN ->
  squeeze-excite channel gate (masked mean) -> Dense back -> dropout -> drop path."""

  hidden: int
  kernel: int
  expand: int
  dropout: float
  drop_path: float

  @nn.compact
  def __call__(self, x, mask, train: bool = False):
    m = mask[..., None].astype(x.dtype)
    width = self.expand * self.hidden
    y = nn.swish(nn.Dense(width)(nn.LayerNorm()(x))) * m  # padding is zero before the convolution
    y = DepthwiseConv1D(self.kernel)(y)
    y = nn.LayerNorm()(y)
    gate = nn.Dense(width)(nn.swish(nn.Dense(max(8, width // 8))(masked_mean(y, mask))))
    y = y * jax.nn.sigmoid(gate)[:, None]
    y = Dropout(self.dropout, deterministic=not train)(nn.Dense(self.hidden)(y))
    return (x + DropPath(self.drop_path)(y, train)) * m


class _TransformerBlock(nn.Module):
  """Pre-LN masked self-attention and feed-forward (ff_mult x), each with dropout and drop path."""

  hidden: int
  num_heads: int
  ff_mult: int
  dropout: float
  drop_path: float

  @nn.compact
  def __call__(self, x, mask, train: bool = False):
    drop = Dropout(self.dropout, deterministic=not train)
    y = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, dropout_rate=self.dropout,
                                        deterministic=not train)(nn.LayerNorm()(x),
                                                                 mask=nn.make_attention_mask(mask, mask))
    x = x + DropPath(self.drop_path)(drop(y), train)
    y = nn.Dense(self.hidden)(drop(nn.swish(nn.Dense(self.ff_mult * self.hidden)(nn.LayerNorm()(x)))))
    x = x + DropPath(self.drop_path)(drop(y), train)
    return x * mask[..., None].astype(x.dtype)


class ConvTransformerLandmarkEncoder(nn.Module):
  """Depthwise temporal convolutions + Transformer blocks, the landmark model of the Kaggle ISLR 2023
  winners (a stem, then `num_blocks` x [`convs_per_block` conv blocks, one Transformer block]; masked
  mean pooling). Convolutions carry the relative timing, so no positional encoding. Padding frames are
  zero before every convolution and attention is masked, so padding never changes real frames.

  `dropout` acts on the stem output; `layer_dropout` inside the blocks; `drop_path` is the stochastic
  depth of the last block's branches, growing linearly from 0 for the first."""

  hidden: int
  dropout: float
  num_blocks: int = 2
  num_heads: int = 4
  ff_mult: int = 2
  layer_dropout: float = 0.1
  kernel: int = 17
  convs_per_block: int = 3
  drop_path: float = 0.1

  @nn.compact
  def __call__(self, x, mask, train: bool = False):
    m = mask[..., None].astype(x.dtype)
    x = nn.LayerNorm()(nn.Dense(self.hidden, use_bias=False, name="stem")(x)) * m
    x = Dropout(self.dropout, deterministic=not train)(x)
    total = self.num_blocks * (self.convs_per_block + 1)
    k = 0
    for _ in range(self.num_blocks):
      for _ in range(self.convs_per_block):
        k += 1
        x = _ConvBlock(self.hidden, self.kernel, 2, self.layer_dropout, self.drop_path * k / total)(x, mask, train)
      k += 1
      x = _TransformerBlock(self.hidden, self.num_heads, self.ff_mult, self.layer_dropout,
                            self.drop_path * k / total)(x, mask, train)
    x = nn.LayerNorm()(x) * m
    return x, masked_mean(x, mask)


class SeedVisualEncoder(nn.Module):
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


class LinearVisualEncoder(nn.Module):
  """The stream for frozen per-frame features (visual_stream=linear; standardised upstream): the pooled
  vector is the time-mean of the (dropped-out) input features itself, G-dimensional, with no projection, so a
  head on it is a full-rank linear probe; the tokens (for cross-attention fusion) are per-frame projections
  after LayerNorm + gelu. Averaging before anything nonlinear is what makes a weak per-frame signal usable,
  as in a nearest-centroid classifier on time-pooled features; the seed's stream (two 0.5-dropout blocks and
  self-attention on 1152-d inputs) memorises the frame noise instead (docs/results.md, "Visual features and
  fusion"). On frozen features this generalises far better than anything with a norm or a
  nonlinearity after the pooling, and better than a low-rank probe through a randomly initialised projection,
  which Adam fits poorly (weak-visual synthetic set, 100 classes, 7 clips each: docs/results.md, "Visual features
  and fusion")."""

  hidden: int
  dropout: float
  input_dropout: float = 0.1

  @nn.compact
  def __call__(self, x, mask, train: bool = False):
    x = Dropout(self.input_dropout, deterministic=not train)(x)
    frames = nn.Dense(self.hidden)(x)
    norm = nn.LayerNorm()
    drop = Dropout(self.dropout, deterministic=not train)
    pooled = masked_mean(x, mask)
    tokens = drop(nn.gelu(norm(frames))) * mask[..., None].astype(x.dtype)
    return tokens, pooled
