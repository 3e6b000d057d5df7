"""Scores of continuous recognition: gloss error rate and segment F1 at a temporal IoU, and the continuous
test streams they are measured on (clips of a split placed back to back, with or without their rests)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

VARIANTS = ("natural", "rest2", "norest")  # the clips' own rests; rests cut to <= 2 frames a side; none


def edit_distance(a: Sequence, b: Sequence) -> int:
  """Levenshtein distance between two sequences (substitutions, insertions and deletions cost 1)."""
  prev = list(range(len(b) + 1))
  for i, x in enumerate(a, 1):
    cur = [i]
    for j, y in enumerate(b, 1):
      cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
    prev = cur
  return prev[-1]


def gloss_error_rate(predicted: Sequence, reference: Sequence) -> float:
  """Edit distance between the predicted and the true gloss sequences over the reference's length."""
  return edit_distance(predicted, reference) / max(len(reference), 1)


def iou(a: tuple[int, int], b: tuple[int, int]) -> float:
  """Temporal IoU of two inclusive frame ranges."""
  inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
  union = max(a[1], b[1]) - min(a[0], b[0]) + 1
  return max(inter, 0) / union


def segment_f1(predicted: Sequence[tuple[int, int]], reference: Sequence[tuple[int, int]],
               threshold: float = 0.5) -> dict:
  """Precision, recall and F1 of predicted segments against true ones: one-to-one matches (greedy by IoU)
  with IoU >= threshold."""
  pairs = sorted(((iou(p, r), i, j) for i, p in enumerate(predicted) for j, r in enumerate(reference)),
                 reverse=True)
  used_p, used_r, hits = set(), set(), 0
  for score, i, j in pairs:
    if score < threshold:
      break
    if i not in used_p and j not in used_r:
      used_p.add(i)
      used_r.add(j)
      hits += 1
  precision = hits / len(predicted) if predicted else float(not reference)
  recall = hits / len(reference) if reference else 1.0
  f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
  return {"precision": precision, "recall": recall, "f1": f1, "hits": hits}


def clip_hand_span(hands: np.ndarray) -> tuple[int, int] | None:
  """First and last frame with a detected hand, or None."""
  idx = np.flatnonzero(hands)
  return (int(idx[0]), int(idx[-1])) if len(idx) else None


def build_stream(clips: Sequence[np.ndarray], hands: Sequence[np.ndarray], variant: str):
  """Clips (T_i, D) placed back to back -> (stream (T, D), true segments [(start, end)] = each clip's hand
  span in stream frames, clip bounds [(first, last)]). `variant`: natural (whole clips), rest2 (at most 2
  frames kept on each side of the hand span), norest (each clip cut to its hand span). Clips without a
  hand must be left out by the caller."""
  if variant not in VARIANTS:
    raise ValueError(f"variant={variant!r}: expected one of {VARIANTS}")
  parts, truth, bounds, at = [], [], [], 0
  for raw, h in zip(clips, hands):
    a, b = clip_hand_span(h)
    if variant == "natural":
      lo, hi = 0, len(raw) - 1
    elif variant == "rest2":
      lo, hi = max(0, a - 2), min(len(raw) - 1, b + 2)
    else:
      lo, hi = a, b
    parts.append(raw[lo:hi + 1])
    truth.append((at + a - lo, at + b - lo))
    bounds.append((at, at + hi - lo))
    at += hi - lo + 1
  return np.concatenate(parts), truth, bounds
