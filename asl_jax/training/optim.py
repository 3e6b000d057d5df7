"""AdamW with global-norm gradient clipping as one fused optax transformation.

The same arithmetic as `optax.chain(optax.clip_by_global_norm(c), optax.adamw(lr, b1, b2, eps,
weight_decay=wd))` (a test pins it), written as one elementwise expression per parameter so that XLA
emits a single loop over each tensor (clip, both moments, bias correction, decay, learning rate). The
chain's separate tree maps cost several passes over the 16-18 M parameters: on a 2-core CPU the update took
82 ms as a chain against 32 ms fused (docs/performance.md, "Performance").
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from asl_jax import models


class AdamWState(NamedTuple):
  count: jnp.ndarray  # int32 steps taken; the schedule is evaluated at the count before the step
  mu: optax.Params
  nu: optax.Params


MATRIX_NAMES = ("kernel", "w_ih_", "w_hh_")  # Dense / conv kernels and the LSTM's input / recurrent matrices


def is_matrix(path: str) -> bool:
  """Whether the parameter at "a/b/name" is a weight matrix (decayed under weight_decay_on=matrices), not a
  bias or a LayerNorm scale."""
  return path.rsplit("/", 1)[-1].startswith(MATRIX_NAMES)


def decay_mask(params) -> optax.Params:
  """The tree of bools `is_matrix` of every parameter (optax's `mask` convention)."""
  return jax.tree.structure(params).unflatten([is_matrix(path) for path in models.named_leaves(params)])


def clipped_adamw(learning_rate: optax.ScalarOrSchedule, max_norm: float = 1.0, b1: float = 0.9,
                  b2: float = 0.999, eps: float = 1e-8, weight_decay: float = 1e-4,
                  mask=None) -> optax.GradientTransformation:
  """optax.chain(clip_by_global_norm(max_norm), adamw(..., mask=mask)) in one pass per parameter tensor;
  max_norm <= 0: no clipping; `mask` (a function of the parameters giving a tree of bools, or None: every
  parameter) says which parameters are decayed."""

  def init(params):
    zeros = lambda p: jnp.zeros_like(p)  # noqa: E731
    return AdamWState(jnp.zeros([], jnp.int32), jax.tree.map(zeros, params), jax.tree.map(zeros, params))

  def update(grads, state, params=None):
    if params is None:
      raise ValueError("clipped_adamw needs the parameters (weight decay)")
    if max_norm > 0:
      norm = optax.tree.norm(grads)
      scale = jnp.where(norm < max_norm, 1.0, max_norm / norm)
    else:  # no clipping
      scale = jnp.float32(1.0)
    count = state.count + 1
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
    c1 = 1 - b1 ** count.astype(jnp.float32)
    c2 = 1 - b2 ** count.astype(jnp.float32)

    def one(g, mu, nu, p, decayed):
      g = g * scale.astype(g.dtype)
      mu = b1 * mu + (1 - b1) * g
      nu = b2 * nu + (1 - b2) * g * g
      step = (mu / c1) / (jnp.sqrt(nu / c2) + eps)
      if decayed:
        step = step + weight_decay * p
      return (-lr * step).astype(p.dtype), mu, nu

    treedef = jax.tree.structure(grads)
    decayed = treedef.flatten_up_to(mask(params)) if mask is not None else [True] * treedef.num_leaves
    out = [one(*leaves) for leaves in zip(*(treedef.flatten_up_to(t) for t in (grads, state.mu, state.nu,
                                                                              params)), decayed)]
    updates, mu, nu = (treedef.unflatten(col) for col in zip(*out))
    return updates, AdamWState(count, mu, nu)

  return optax.GradientTransformation(init, update)
