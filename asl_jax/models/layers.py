"""Small building blocks shared by the encoders, fusion and heads."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

ACTIVATIONS = {"relu": nn.relu, "gelu": nn.gelu}
_DROPOUT_LEVELS = 1 << 16


def unit_length(x, axis: int = -1):
  """x scaled to unit length along `axis` (a zero vector stays zero)."""
  return x * jnp.reciprocal(jnp.sqrt(jnp.sum(x * x, axis=axis, keepdims=True) + 1e-12))


class Dropout(nn.Module):
  """Inverted dropout drawing 16 random bits per element instead of flax's 32-bit uniforms.

  On CPU, generating the random numbers dominates dropout's cost; half the bits halve it. The rate is
  rounded to a multiple of 1/65536. Uses the "dropout" rng collection, like nn.Dropout.
  """

  rate: float
  deterministic: bool | None = None

  @nn.compact
  def __call__(self, x: jnp.ndarray, deterministic: bool | None = None) -> jnp.ndarray:
    deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
    threshold = round(self.rate * _DROPOUT_LEVELS)
    if deterministic or threshold == 0:
      return x
    if threshold >= _DROPOUT_LEVELS:
      return jnp.zeros_like(x)
    keep = jax.random.bits(self.make_rng("dropout"), x.shape, jnp.uint16) >= threshold
    return jnp.where(keep, x * (_DROPOUT_LEVELS / (_DROPOUT_LEVELS - threshold)), 0).astype(x.dtype)


def sinusoidal_table(length: int, dim: int) -> np.ndarray:
  """(length, dim) table: PE[p, 2i] = sin(p / 10000^(2i/dim)), PE[p, 2i+1] = cos(same)."""
  pos = np.arange(length, dtype=np.float64)[:, None]
  div = np.power(10000.0, np.arange(0, dim, 2, dtype=np.float64) / dim)
  table = np.zeros((length, dim), np.float64)
  table[:, 0::2] = np.sin(pos / div)
  table[:, 1::2] = np.cos(pos / div)[:, : dim // 2]
  return table.astype(np.float32)


class SinusoidalPositionalEncoding(nn.Module):
  """Adds the sinusoidal table to (B, T, D) inputs, then dropout; works for any T (a constant, no params)."""

  dropout: float = 0.0

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    x = x + jnp.asarray(sinusoidal_table(x.shape[-2], x.shape[-1]), x.dtype)
    return Dropout(self.dropout, deterministic=not train)(x)


class DenseBlock(nn.Module):
  """Dense -> LayerNorm -> activation -> Dropout (the seed's repeated block)."""

  features: int
  dropout: float
  activation: str = "gelu"

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    x = nn.LayerNorm()(nn.Dense(self.features)(x))
    return Dropout(self.dropout, deterministic=not train)(ACTIVATIONS[self.activation](x))


def masked_mean(x: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
  """Mean over axis 1 of (B, T, D) counting only mask (B, T) == True frames."""
  m = mask.astype(x.dtype)[..., None]
  return (x * m).sum(1) / jnp.maximum(m.sum(1), 1.0)


class AttentionBlock(nn.Module):
  """Masked multi-head attention with a residual and LayerNorm: LN(q + Dropout(MHA(q, kv)))."""

  num_heads: int
  dropout: float

  @nn.compact
  def __call__(self, q, kv, q_mask, kv_mask, train: bool = False):
    mask = nn.make_attention_mask(q_mask, kv_mask)
    y = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, dropout_rate=self.dropout,
                                        deterministic=not train)(q, kv, mask=mask)
    return nn.LayerNorm()(q + Dropout(self.dropout, deterministic=not train)(y))


class DropPath(nn.Module):
  """Stochastic depth: drops a residual branch for whole samples with prob `rate` (rescaling the kept
  ones); identity at evaluation."""

  rate: float

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    if not train or self.rate <= 0:
      return x
    keep = jax.random.bernoulli(self.make_rng("dropout"), 1 - self.rate, (x.shape[0],) + (1,) * (x.ndim - 1))
    return jnp.where(keep, x / (1 - self.rate), 0).astype(x.dtype)
