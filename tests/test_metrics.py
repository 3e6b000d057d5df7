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
