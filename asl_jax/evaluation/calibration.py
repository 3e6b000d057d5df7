"""Calibrated probabilities and the unknown-sign decision, both fitted on held-out clips and stored in the run.

- **Temperature scaling**: one temperature T divides the model's evaluation logits (models.HybridModel's
  `temperature`), fitted to minimise the negative log-likelihood of the val clips' prediction, the flip views
  averaged exactly as inference does. It changes no ranking, only how much a probability claims.
- **Unknown signs**: the score is the calibrated top-1 probability; a clip whose score is below the run's
  threshold is `unknown`. The threshold accepts `accept` (95 %) of the val clips, so about 1 in 20 known signs
  is rejected and as many unseen signs as the score can separate are. Because the score is the top-1
  probability itself, every path that has the probabilities (predict, live, both exports, the page) makes the
  same decision.

`fit` returns {"temperature", "unknown_threshold", "unknown_score", "accept", "fitted_on", "clips", "step",
"val_nll_before", "val_nll_after", "val_ece_before", "val_ece_after", "known_scores"}, which a run keeps beside
its weights (runs.run_dir.RunDir.calibration); runs.restore.load_run applies it. A run without the file
predicts with T = 1 and no threshold (nothing is called unknown). "known_scores" (the held-out clips' scores,
sorted) give the threshold for another share of known signs accepted (`threshold_for`: asl-predict and asl-live
`--unknown_accept`, the page's `accept=`): a stricter one turns more wrong answers into "unknown" at the cost of
right ones.
"""

from __future__ import annotations

import numpy as np

from asl_jax.errors import ConfigError

UNKNOWN_SCORE = "max_prob"  # the calibrated top-1 probability
DEFAULT_ACCEPT = 0.95
EVERY_CLIP_MARGIN = 1e-3  # fit_threshold with too few clips to reject one: this far below the lowest score
ECE_BINS = 10


def mean_probs(view_logits: np.ndarray, temperature: float) -> np.ndarray:
  """(V, N, C) logits -> (N, C) the views' mean of softmax(logits / T)."""
  z = view_logits.astype(np.float64) / temperature
  z = z - z.max(-1, keepdims=True)
  p = np.exp(z)
  return (p / p.sum(-1, keepdims=True)).mean(0)


def nll(view_logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
  p = mean_probs(view_logits, temperature)
  return float(-np.log(np.maximum(p[np.arange(len(labels)), labels], 1e-30)).mean())


def fit_temperature(view_logits: np.ndarray, labels: np.ndarray) -> float:
  """The temperature in [0.05, 20] minimising the NLL of the views' mean probability (a log-spaced grid,
  then a golden-section refinement around its best point)."""
  labels = np.asarray(labels)
  if not len(labels):
    return 1.0
  grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 61))
  losses = [nll(view_logits, labels, t) for t in grid]
  i = int(np.argmin(losses))
  lo, hi = np.log(grid[max(i - 1, 0)]), np.log(grid[min(i + 1, len(grid) - 1)])
  g = (np.sqrt(5) - 1) / 2
  for _ in range(40):
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    if nll(view_logits, labels, np.exp(a)) < nll(view_logits, labels, np.exp(b)):
      hi = b
    else:
      lo = a
  return float(np.exp((lo + hi) / 2))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
  """ECE of the top-1 prediction: sum over equal-width confidence bins (`reliability_bins`) of |accuracy -
  confidence| weighted by the share of clips in the bin."""
  n = len(np.asarray(labels))
  return float(sum(b["count"] / n * abs(b["accuracy"] - b["confidence"])
                   for b in reliability_bins(probs, labels, bins) if b["count"]))


def ece_noise_floor(confidences: np.ndarray, bins: int = ECE_BINS, draws: int = 2000, seed: int = 0) -> dict:
  """The ECE a perfectly calibrated model would show with these top-1 confidences on this many clips (each
  clip right with probability equal to its confidence): {"mean", "p90"} over `draws` simulated label sets.
  On a few dozen clips each bin holds a handful, so even perfect calibration shows a sizeable ECE: an ECE
  near this floor says nothing about miscalibration."""
  conf = np.asarray(confidences, np.float64)
  if not len(conf):
    return {"mean": 0.0, "p90": 0.0}
  onehot = np.eye(bins)[_bin_index(conf, bins)[1]]  # (N, bins)
  correct = np.random.default_rng(seed).random((draws, len(conf))) < conf  # (draws, N)
  # sum_b n_b / N |acc_b - conf_b| = sum_b |right_b - sum of conf_b| / N
  ece = np.abs(correct @ onehot - conf @ onehot).sum(-1) / len(conf)
  return {"mean": float(ece.mean()), "p90": float(np.percentile(ece, 90))}


def _bin_index(conf: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
  """(edges (bins + 1,), each confidence's equal-width bin (N,)): right-closed bins, 0 in the first."""
  edges = np.linspace(0, 1, bins + 1)
  return edges, np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)


def reliability_points(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(confidence (N,), correct (N,) bool) of each clip's top-1 prediction."""
  probs = np.asarray(probs)
  return probs.max(-1), probs.argmax(-1) == np.asarray(labels)


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
  """Per confidence bin: {"lo", "hi", "count", "confidence", "accuracy"} (the reliability diagram's data)."""
  conf, correct = reliability_points(probs, labels)
  edges, which = _bin_index(conf, bins)
  out = []
  for k in range(bins):
    sel = which == k
    out.append({"lo": float(edges[k]), "hi": float(edges[k + 1]), "count": int(sel.sum()),
                "confidence": float(conf[sel].mean()) if sel.any() else None,
                "accuracy": float(correct[sel].mean()) if sel.any() else None})
  return out


def unknown_scores(probs: np.ndarray) -> np.ndarray:
  """The unknown score of each clip (N, C) -> (N,): its calibrated top-1 probability; lower = less known."""
  return np.asarray(probs).max(-1)


GAUSS_SHRINK = 0.1  # covariances are shrunk this much towards their mean variance (192-d from ~400 clips)


def _whitening(x: np.ndarray, shrink: float) -> np.ndarray:
  """W (E, E) with ||W d||^2 = d^T S^-1 d for the shrunk covariance S of the rows of x (centred already)."""
  cov = x.T @ x / max(len(x) - 1, 1)
  cov = (1 - shrink) * cov + shrink * np.trace(cov) / len(cov) * np.eye(len(cov))
  return np.linalg.cholesky(np.linalg.inv(cov)).T


def fit_gaussians(emb: np.ndarray, labels: np.ndarray, shrink: float = GAUSS_SHRINK) -> dict:
  """The relative Mahalanobis score's statistics from training clips' embeddings (N, E) (the views' mean)
  and labels: each class's mean and their shared within-class covariance, and the clips' overall mean and
  covariance, both as whitening matrices with whitened means: {"classes" (C,) the labels in order, "whiten"
  (E, E), "means" (C, E), "whiten0" (E, E), "mean0" (E,)}."""
  emb, labels = np.asarray(emb, np.float64), np.asarray(labels)
  classes = np.unique(labels)
  means = np.stack([emb[labels == c].mean(0) for c in classes])
  w = _whitening(emb - means[np.searchsorted(classes, labels)], shrink)
  mean0 = emb.mean(0)
  w0 = _whitening(emb - mean0, shrink)
  return {"classes": classes, "whiten": w, "means": means @ w.T, "whiten0": w0, "mean0": w0 @ mean0}


def mahalanobis_distances(emb: np.ndarray, g: dict) -> tuple[np.ndarray, np.ndarray]:
  """(nearest (N,), overall (N,)): the squared Mahalanobis distances of embeddings (N, E) to the nearest class
  mean under the shared within-class covariance, and to the overall mean under the overall covariance
  (`fit_gaussians`' statistics)."""
  emb = np.asarray(emb, np.float64)
  z = emb @ np.asarray(g["whiten"]).T
  nearest = ((z[:, None] - np.asarray(g["means"])[None]) ** 2).sum(-1).min(-1)
  overall = ((emb @ np.asarray(g["whiten0"]).T - np.asarray(g["mean0"])) ** 2).sum(-1)
  return nearest, overall


def rel_mahalanobis(emb: np.ndarray, g: dict) -> np.ndarray:
  """(N,) the relative Mahalanobis score of embeddings (N, E) (higher = more like a known class): minus the
  smallest squared Mahalanobis distance to a class mean, less the distance to the overall mean (Ren et al.
  2021, "A simple fix to Mahalanobis distance for improving near-OOD detection").

  A candidate unknown score, measured by benchmarks/unknown_scores.py: it ranks unseen signs better than the
  top-1 probability but rejects no more of them at the runs' operating point, so runs keep UNKNOWN_SCORE
  (docs/open_vocabulary_experiments.md, "Other unknown scores")."""
  nearest, overall = mahalanobis_distances(emb, g)
  return overall - nearest


def auroc(known: np.ndarray, unknown: np.ndarray) -> float | None:
  """How well an unknown score ranks known clips above unknown ones: the chance that a known clip scores above an
  unknown one, ties counting half (None when either set is empty)."""
  k, u = np.asarray(known, np.float64)[:, None], np.asarray(unknown, np.float64)[None]
  if not k.size or not u.size:
    return None
  return float((k > u).mean() + 0.5 * (k == u).mean())


def fit_threshold(scores: np.ndarray, accept: float = DEFAULT_ACCEPT) -> float:
  """The threshold that accepts (score >= threshold) `accept` of these known clips' scores (the lowest
  floor((1 - accept) * N) are below it). It lies halfway between the highest score below and the lowest above,
  not on a clip's score: the same clip scored in another process, batch or export differs by float rounding
  (1e-7 to 1e-5), and a threshold equal to its score would accept or reject it by that noise."""
  scores = np.sort(np.asarray(scores, np.float64))
  if not len(scores):
    return 0.0
  k = min(int(np.floor((1 - accept) * len(scores))), len(scores) - 1)  # clips below the threshold
  below = scores[k - 1] if k else scores[0] - 2 * EVERY_CLIP_MARGIN  # every clip accepted: just below the lowest
  return float((below + scores[k]) / 2)


def unknown_mask(probs: np.ndarray, threshold: float | None) -> np.ndarray:
  """(N,) bool: the clips whose score is below `threshold` (none when there is no threshold)."""
  scores = unknown_scores(probs)
  return np.zeros(len(scores), bool) if threshold is None else scores < threshold


def fit(view_logits: np.ndarray, labels: np.ndarray, step: int, accept: float = DEFAULT_ACCEPT,
        fitted_on: str = "val") -> dict:
  """The calibration of a run from its held-out clips' per-view logits (V, N, C) and labels."""
  labels = np.asarray(labels)
  t = fit_temperature(view_logits, labels)
  before, after = mean_probs(view_logits, 1.0), mean_probs(view_logits, t)
  scores = unknown_scores(after)
  return {"temperature": t, "unknown_score": UNKNOWN_SCORE,
          "unknown_threshold": fit_threshold(scores, accept), "accept": accept,
          "fitted_on": fitted_on, "clips": int(len(labels)), "step": int(step),
          "val_nll_before": nll(view_logits, labels, 1.0), "val_nll_after": nll(view_logits, labels, t),
          "val_ece_before": expected_calibration_error(before, labels),
          "val_ece_after": expected_calibration_error(after, labels),
          "known_scores": [float(x) for x in np.sort(scores)]}


def threshold_for(cal: dict | None, accept: float, where: str) -> float:
  """The threshold that accepts `accept` of the run's held-out known clips (fit_threshold on the scores its
  calibration keeps; at the run's own `accept` it is the stored threshold). `where` names the run in the error
  for a calibration without them."""
  if not 0 < accept <= 1:
    raise ConfigError(f"--unknown_accept={accept}: the share of known signs to accept, in (0, 1]")
  scores = (cal or {}).get("known_scores")
  if not scores:
    raise ConfigError(f"{where}: its calibration keeps no held-out scores (it was fitted before they were "
                      "kept): run `asl-evaluate --workdir=DIR --calibrate` to refit it, or give "
                      "--unknown_threshold instead")
  return fit_threshold(np.asarray(scores, np.float64), accept)
