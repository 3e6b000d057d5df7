"""Classifier head: two Dense layers up to 500 classes, three (2H wide, small final init) beyond; or (layers
-1) the last layer alone, on the encoder's pooled output."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from asl_jax.models.layers import DenseBlock, Dropout, unit_length

DEEP_HEAD_ABOVE = 500
NO_HIDDEN = -1  # `layers`: no hidden layer, the last layer on the pooled output (with the head's dropout)


def xavier_uniform(gain: float):
  return nn.initializers.variance_scaling(gain**2, "fan_avg", "uniform")


class CosineDense(nn.Module):
  """logits = scale * <unit(x), unit(w_c)> + b_c with a learned scale (init 16): class vectors and embeddings
  compared by angle alone."""

  features: int

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    log_scale = self.param("log_scale", nn.initializers.constant(np.log(16.0)), ())
    return jnp.exp(log_scale) * unit_length(x) @ unit_length(kernel, 0) + bias


def hidden_layers(num_classes: int, layers: int = 0) -> int:
  """The head's hidden layers: `layers` (NO_HIDDEN: none), or by class count when 0 (1 up to DEEP_HEAD_ABOVE
  classes, else 2)."""
  return layers or (1 if num_classes <= DEEP_HEAD_ABOVE else 2)


class ClassifierHead(nn.Module):
  num_classes: int
  hidden: int
  dropout: float
  layers: int = 0  # hidden layers: 0 = by class count (1 up to DEEP_HEAD_ABOVE classes, else 2); NO_HIDDEN: none
  norm: str = "none"  # the last layer: "none" (a Dense layer) or "cosine" (CosineDense)

  @nn.compact
  def __call__(self, x, train: bool = False, embed: bool = False):
    """Logits (B, C); with `embed`, the (B, E) input of the last layer instead: the clip's embedding, over
    which each class is one vector (a column of `logits/kernel` and its bias), the space enrolment adds
    classes in (asl_jax/serving/enroll.py)."""
    n = hidden_layers(self.num_classes, self.layers)
    if n == NO_HIDDEN:  # the embedding is the encoder's pooled output itself
      x = Dropout(self.dropout, deterministic=not train)(x)
    elif n == 1:
      x = DenseBlock(self.hidden, self.dropout)(x, train)
    else:
      x = DenseBlock(2 * self.hidden, self.dropout)(x, train)
      x = DenseBlock(2 * self.hidden, self.dropout)(x, train)
    init = xavier_uniform(0.1) if n == 2 else nn.initializers.lecun_normal()
    self.sow("intermediates", "embedding", x)  # kept only when applied with mutable=["intermediates"]
    if self.norm == "cosine":
      return unit_length(x) if embed else CosineDense(self.num_classes, name="logits")(x)
    if embed:
      return x
    return nn.Dense(self.num_classes, kernel_init=init, name="logits")(x)
