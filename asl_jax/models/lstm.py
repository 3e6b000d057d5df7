"""Masked bidirectional LSTM with hoisted input projections and both directions fused in one scan."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def reverse_index(mask: jnp.ndarray) -> jnp.ndarray:
  """(B, T) gather index that reverses each row's real frames and leaves padding in place.

  Assumes real frames come first (mask is a prefix). The map is its own inverse.
  """
  t = jnp.arange(mask.shape[1])[None]
  lengths = mask.sum(-1, keepdims=True)
  return jnp.where(t < lengths, lengths - 1 - t, t)


def _forget_bias_init(key, shape, dtype=jnp.float32):
  del key
  h = shape[-1] // 4
  return jnp.zeros(shape, dtype).at[..., h:2 * h].set(1.0)  # gate order i, f, g, o


class BiLSTM(nn.Module):
  """Stacked bidirectional LSTM over padded batches.

  The forward state is read at each clip's true last frame and the backward direction starts there:
  padding never changes the result. Per layer, the input projections of all time steps and both
  directions are one matmul; the scan carries (2, B, H) states and does one batched recurrent matmul.

  Returns (outputs (B, T, 2H) zero at padding, final (B, 2H) = [forward last; backward first]).
  """

  hidden: int
  num_layers: int = 2
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x: jnp.ndarray, mask: jnp.ndarray, train: bool = False):
    h_dim = self.hidden
    rev = reverse_index(mask)
    steps_mask = jnp.swapaxes(mask, 0, 1)[:, None, :, None]  # (T, 1, B, 1)
    final = None
    for layer in range(self.num_layers):
      if layer:
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
      w_ih = self.param(f"w_ih_{layer}", nn.initializers.lecun_normal(), (x.shape[-1], 2 * 4 * h_dim))
      w_hh = self.param(f"w_hh_{layer}", nn.initializers.orthogonal(column_axis=-1), (2, h_dim, 4 * h_dim))
      bias = self.param(f"b_{layer}", _forget_bias_init, (2, 4 * h_dim))
      pre = (x @ w_ih).reshape(x.shape[:2] + (2, 4 * h_dim)) + bias  # (B, T, 2, 4H)
      pre_fwd = pre[:, :, 0]
      pre_bwd = jnp.take_along_axis(pre[:, :, 1], rev[..., None], axis=1)
      xs = jnp.stack([pre_fwd, pre_bwd], 0).transpose(2, 0, 1, 3)  # (T, 2, B, 4H)

      def step(carry, inp, w_hh=w_hh):
        h, c = carry
        gates, m = inp
        gates = gates + jnp.einsum("kbh,khg->kbg", h, w_hh)
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        c_new = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h_new = jax.nn.sigmoid(o) * jnp.tanh(c_new)
        return (jnp.where(m, h_new, h), jnp.where(m, c_new, c)), h_new

      zeros = jnp.zeros((2, x.shape[0], h_dim), x.dtype)
      (h_last, _), ys = jax.lax.scan(step, (zeros, zeros), (xs, steps_mask))
      ys = jnp.swapaxes(ys, 1, 2)  # (T, B, 2, H)
      out_fwd = jnp.swapaxes(ys[:, :, 0], 0, 1)
      out_bwd = jnp.take_along_axis(jnp.swapaxes(ys[:, :, 1], 0, 1), rev[..., None], axis=1)
      x = jnp.concatenate([out_fwd, out_bwd], -1) * mask[..., None].astype(x.dtype)
      final = jnp.concatenate([h_last[0], h_last[1]], -1)
    return x, final
