"""Classifier head: two Dense layers up to 500 classes, three (2H wide, small final init) beyond."""

from __future__ import annotations

import flax.linen as nn

from asl_jax.models.layers import DenseBlock

DEEP_HEAD_ABOVE = 500


def xavier_uniform(gain: float):
  return nn.initializers.variance_scaling(gain**2, "fan_avg", "uniform")


class ClassifierHead(nn.Module):
  num_classes: int
  hidden: int
  dropout: float

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.num_classes <= DEEP_HEAD_ABOVE:
      x = DenseBlock(self.hidden, self.dropout)(x, train)
      return nn.Dense(self.num_classes, name="logits")(x)
    x = DenseBlock(2 * self.hidden, self.dropout)(x, train)
    x = DenseBlock(2 * self.hidden, self.dropout)(x, train)
    return nn.Dense(self.num_classes, kernel_init=xavier_uniform(0.1), name="logits")(x)
