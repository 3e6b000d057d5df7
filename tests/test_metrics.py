import numpy as np
import pytest

from asl_jax.evaluation import metrics


def test_hand_made_case():
  # 4 classes; class 3 absent from the split.
  logits = np.array([
      [5, 4, 0, 0],   # label 0: top-1 hit
      [1, 5, 0, 0],   # label 0: top-1 miss, rank 2
      [0, 1, 9, 0],   # label 2: hit
      [9, 0, 1, 2],   # label 1: miss, rank 4 (within top-5)
      [0, 9, 1, 0],   # label 1: hit
  ], np.float32)
  labels = np.array([0, 0, 2, 1, 1])
  top = np.asarray(metrics.top_k_predictions(logits))
  assert top.shape == (5, 4)  # k clipped to the number of classes
  s = metrics.summarize(top, labels, 4)
  assert s["per_instance"]["top1"] == pytest.approx(3 / 5)
  assert s["per_instance"]["top5"] == pytest.approx(1.0)
  # per class: class 0 -> 1/2, class 1 -> 1/2, class 2 -> 1; mean over the 3 present classes
  assert s["per_class"]["top1"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
  assert np.isnan(s["class_top1"][3]) and s["class_counts"].tolist() == [2, 2, 1, 0]
  assert s["predictions"].tolist() == [0, 1, 2, 0, 1]


def test_top5_excludes_rank_six():
  logits = np.arange(10, dtype=np.float32)[None].repeat(2, 0)  # ranks: 9, 8, 7, 6, 5, 4, ...
  s = metrics.summarize(np.asarray(metrics.top_k_predictions(logits)), np.array([5, 4]), 10)
  assert s["per_instance"]["top5"] == pytest.approx(0.5)  # class 5 is 5th, class 4 is 6th


def test_confusion_matrix():
  cm = metrics.confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 0]), 3)
  assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_retrieval_metrics_by_hand():
  """Ranks 1, 2 and 4 of the true class: MRR (1 + 1/2 + 1/4) / 3, DCG (1 + 1/log2(3) + 1/log2(5)) / 3."""
  probs = np.array([[0.7, 0.2, 0.1, 0.0], [0.5, 0.3, 0.1, 0.1], [0.4, 0.3, 0.2, 0.1]])
  r = metrics.retrieval(probs, np.array([0, 1, 3]))
  assert r["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 4) / 3)
  assert r["dcg"] == pytest.approx((1 + 1 / np.log2(3) + 1 / np.log2(5)) / 3)
  assert r["top10"] == r["top20"] == 1.0 and r["mean_rank"] == pytest.approx(7 / 3)
  many = np.tile(np.linspace(1, 0, 30), (2, 1))  # class i ranks i + 1
  assert metrics.retrieval(many, np.array([9, 15]))["top10"] == 0.5
  assert metrics.retrieval(many, np.array([9, 15]))["top20"] == 1.0
