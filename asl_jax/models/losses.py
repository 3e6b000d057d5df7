"""Class weights and the class-weighted, label-smoothed cross-entropy (torch.nn.CrossEntropyLoss
semantics: `CrossEntropyLoss(weight=w, label_smoothing=s)` with mean reduction)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from asl_jax.models.layers import unit_length


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
  """The seed's weights from the training labels actually used: counts + 0.1, inverse, scaled to sum to
  C, clipped to [0.1, 10] (not renormalised after clipping, as the seed)."""
  counts = np.bincount(np.asarray(labels), minlength=num_classes).astype(np.float64) + 0.1
  w = 1.0 / counts
  w = w * num_classes / w.sum()
  return np.clip(w, 0.1, 10.0).astype(np.float32)


def weighted_ce_terms(logits, labels, weights=None, smoothing: float = 0.0, valid=None, outlier=None):
  """(numerator, denominator) of the weighted smoothed CE so that sums over batches / devices combine
  exactly: loss = num / den.

  Per sample i with target y: (1 - s) * w[y] * -log p[y] + s / C * sum_c w[c] * -log p[c];
  den = sum_i w[y_i] (torch's mean reduction with weights). `valid` (B,) drops padded samples.
  `outlier` (a class index, or None): clips of that class are outliers, whose target is the uniform
  distribution over the other classes (outlier exposure): w[y] * mean_{c != y} -log p[c].
  """
  num_classes = logits.shape[-1]
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  w = jnp.ones((num_classes,), jnp.float32) if weights is None else jnp.asarray(weights, jnp.float32)
  nll = -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]
  w_y = w[labels]
  smooth = -(logp * w).sum(-1)
  per_sample = (1 - smoothing) * w_y * nll + smoothing / num_classes * smooth
  if outlier is not None:
    others = (jnp.arange(num_classes) != outlier).astype(jnp.float32)
    uniform = -(logp * others).sum(-1) / (num_classes - 1)
    per_sample = jnp.where(labels == outlier, w_y * uniform, per_sample)
  if valid is not None:
    per_sample, w_y = per_sample * valid, w_y * valid
  return per_sample.sum(), w_y.sum()


def weighted_cross_entropy(logits, labels, weights=None, smoothing: float = 0.0):
  num, den = weighted_ce_terms(logits, labels, weights, smoothing)
  return num / den


def mixed_ce_terms(logits, labels, partner_labels, lam, weights=None, smoothing: float = 0.0, outlier=None):
  """(num, den) of the mixup loss: each sample counts lam for its label and 1 - lam for its partner's, so
  loss = num / den is lam * CE(labels) + (1 - lam) * CE(partner) without class weights, and the same
  weighted mean as `weighted_ce_terms` with them; partner_labels None (no mixup): `weighted_ce_terms`."""
  if partner_labels is None:
    return weighted_ce_terms(logits, labels, weights, smoothing, outlier=outlier)
  n1, d1 = weighted_ce_terms(logits, labels, weights, smoothing, outlier=outlier)
  n2, d2 = weighted_ce_terms(logits, partner_labels, weights, smoothing, outlier=outlier)
  return lam * n1 + (1 - lam) * n2, lam * d1 + (1 - lam) * d2


def supervised_contrastive(embeddings, labels, temperature: float = 0.1):
  """The supervised contrastive loss (Khosla et al. 2020, L_out) of (N, E) embeddings with labels (N,): for
  each anchor, the mean over its positives (the other samples of its label) of -log softmax of the cosine /
  temperature over every other sample. Anchors without a positive add nothing; the loss is the mean over the
  anchors that have one (0 when none has). It pulls a class's clips together in angle and pushes classes
  apart, the geometry enrolment relies on (a new sign's vector is the unit mean of its examples)."""
  z = unit_length(embeddings.astype(jnp.float32))
  n = z.shape[0]
  self_mask = jnp.eye(n, dtype=bool)
  sim = jnp.where(self_mask, -jnp.inf, z @ z.T / temperature)
  logp = jax.nn.log_softmax(sim, axis=-1)
  positive = (labels[:, None] == labels[None, :]) & ~self_mask
  count = positive.sum(-1)
  per_anchor = -jnp.where(positive, logp, 0.0).sum(-1) / jnp.maximum(count, 1)
  has = count > 0
  return jnp.where(has, per_anchor, 0.0).sum() / jnp.maximum(has.sum(), 1)
