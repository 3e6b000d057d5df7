"""Classification metrics, one implementation for training-time validation and evaluation.

Per-instance top-k is the fraction of clips whose label is among the k best logits; per-class top-k is
the mean over the classes present in the split of each class's per-instance top-k (WLASL's P-C).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

TOP_K = 5


def top_k_predictions(logits, k: int = TOP_K):
  """(B, k) class indices, best first (ties broken by the lower index)."""
  k = min(k, logits.shape[-1])
  return jax.lax.top_k(logits, k)[1]


def summarize(top_k: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
  """Metrics from (N, k) ranked predictions and (N,) labels.

  Returns per_instance/per_class top1/top5 (fractions), `class_top1` (C,) with NaN for absent classes,
  `class_counts` (C,), and `predictions` (N,) = the top-1 class.
  """
  top_k, labels = np.asarray(top_k), np.asarray(labels)
  if len(labels) == 0:
    raise ValueError("no samples to summarise")
  hit1 = top_k[:, 0] == labels
  hit5 = (top_k[:, :TOP_K] == labels[:, None]).any(-1)
  counts = np.bincount(labels, minlength=num_classes)
  present = counts > 0
  with np.errstate(invalid="ignore", divide="ignore"):
    c1 = np.bincount(labels, hit1, minlength=num_classes) / counts
    c5 = np.bincount(labels, hit5, minlength=num_classes) / counts
  return {
      "per_instance": {"top1": float(hit1.mean()), "top5": float(hit5.mean())},
      "per_class": {"top1": float(c1[present].mean()), "top5": float(c5[present].mean())},
      "class_top1": np.where(present, c1, np.nan), "class_counts": counts, "predictions": top_k[:, 0],
  }


def retrieval(probs: np.ndarray, labels: np.ndarray) -> dict:
  """Recognition scored as dictionary retrieval (ASL Citizen's metrics), from (N, C) class probabilities
  and (N,) labels: top-10 and top-20 accuracy, the mean reciprocal rank of the true class (MRR), and the
  mean discounted cumulative gain (DCG: a clip scores 1 / log2(1 + rank), so rank 1 scores 1). The rank is
  1 + the number of classes with a higher probability than the true one."""
  probs, labels = np.asarray(probs, np.float64), np.asarray(labels)
  if len(labels) == 0:
    raise ValueError("no samples to score")
  true = probs[np.arange(len(labels)), labels]
  rank = 1 + (probs > true[:, None]).sum(-1)
  return {"top10": float((rank <= 10).mean()), "top20": float((rank <= 20).mean()),
          "mrr": float((1.0 / rank).mean()), "dcg": float((1.0 / np.log2(1.0 + rank)).mean()),
          "mean_rank": float(rank.mean())}


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
  """(C, C) counts, rows = true class, columns = predicted."""
  cm = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(cm, (np.asarray(labels), np.asarray(predictions)), 1)
  return cm


def accuracy_from_logits(logits, labels) -> jnp.ndarray:
  return (jnp.argmax(logits, -1) == labels).mean()
