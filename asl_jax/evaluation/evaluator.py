"""Evaluation library: a jitted eval step over a split in fixed-size batches, metrics, the report and its
plots. `Evaluator` serves training-time validation and the evaluate application (evaluate.py) alike.
"""

from __future__ import annotations

import itertools
import os

import jax
import jax.numpy as jnp
import numpy as np

from asl_jax import atomic, config as config_lib
from asl_jax.data import input_pipeline, landmark_features
from asl_jax.evaluation import calibration, class_vectors, inference, metrics, plots
from asl_jax.models import losses
from asl_jax.runs import run_dir
from asl_jax.sharding import DataParallel


EVAL_BATCH = 256  # config.eval_batch_size=0 outside training


class Evaluator:
  """Logits -> ranked top-k predictions and loss terms for every clip of a DeviceData."""

  def __init__(self, model, num_frames: int, parallel: DataParallel, batch_size: int, class_weights=None,
               smoothing: float = 0.0, features=input_pipeline.DEFAULT_FEATURES, tta_flip: bool = False,
               visual_norm=None):
    self.parallel = parallel
    self.batch_size = parallel.round_batch(batch_size)
    w = None if class_weights is None else jnp.asarray(class_weights)

    def step(params, data, idx, valid, with_probs=False):
      logits = inference.log_probs(model, params, data, idx, num_frames, features, tta_flip, visual_norm)
      num, den = losses.weighted_ce_terms(logits, data.labels[idx], w, smoothing, valid)
      return (metrics.top_k_predictions(logits), num, den) + ((jnp.exp(logits),) if with_probs else ())

    def probs(params, data, idx, valid):  # pylint: disable=unused-argument
      return jnp.exp(inference.log_probs(model, params, data, idx, num_frames, features, tta_flip, visual_norm))

    def heads(params, data, idx, valid):  # pylint: disable=unused-argument
      return inference.head_log_probs(model, params, data, idx, num_frames, features, tta_flip, visual_norm)

    def embed(params, data, idx, valid):  # pylint: disable=unused-argument
      return inference.embeddings(model, params, data, idx, num_frames, features, tta_flip, visual_norm)

    self._step = jax.jit(step, out_shardings=parallel.replicated)  # every process can read the results
    # The same pass returning the probabilities too (reports: the calibration error).
    self._step_probs = jax.jit(lambda *a: step(*a, with_probs=True), out_shardings=parallel.replicated)
    self._probs = jax.jit(probs, out_shardings=parallel.replicated)
    self._heads = jax.jit(heads, out_shardings=parallel.replicated)
    self._embed = jax.jit(embed, out_shardings=parallel.replicated)
    self.model = model

  @classmethod
  def from_config(cls, config, model, parallel: DataParallel, class_weights=None, batch_size: int = 0,
                  visual_norm=None):
    return cls(model, config.num_frames, parallel, batch_size or config.eval_batch_size or EVAL_BATCH, class_weights,
               config.label_smoothing, landmark_features.FeatureConfig.from_config(config),
               bool(config.tta_flip), visual_norm)

  def _map(self, step, params, data: input_pipeline.DeviceData, chunk_batches: int = 16, count: int | None = None):
    """Runs `step(params, data, idx, valid)` over the first `count` clips of `data` (default all) in fixed-size
    batches; returns the per-batch outputs of each chunk (fetched to the host), padding included.

    Device-resident data is used as is; host (numpy / memory-mapped) data is streamed to the devices in
    chunks of `chunk_batches` batches, so splits larger than device memory evaluate too. Clips after the
    first `count` are padding (`input_pipeline.padded_indices`): two splits padded to one size share one
    compiled step.
    """
    n = data.size if count is None else count
    on_device = isinstance(data.labels, jax.Array)
    chunk = n if on_device else self.batch_size * chunk_batches
    out = []
    for c0 in range(0, n, chunk):
      part = data if on_device else self.parallel.replicate(
          jax.tree_util.tree_map(lambda a, c0=c0: np.ascontiguousarray(a[c0:c0 + chunk]), data))
      m = min(chunk, n - c0)
      chunk_out = []
      for idx, valid, count in inference.padded_batches(m, self.batch_size):
        chunk_out.append((step(params, part, self.parallel.shard_batch(idx), self.parallel.shard_batch(valid)),
                          count))
      # Fetching each chunk's results keeps at most one chunk on the devices.
      out += jax.device_get(chunk_out)
    return out

  def predict(self, params, data: input_pipeline.DeviceData, chunk_batches: int = 16, count: int | None = None,
              with_probs: bool = False):
    """(top_k (N, k) numpy, loss) over the first `count` clips of `data` (default all), in order; with
    `with_probs`, (top_k, loss, probabilities (N, C)) from the same pass."""
    out = self._map(self._step_probs if with_probs else self._step, params, data, chunk_batches, count)
    tops = np.concatenate([o[0][:k] for o, k in out])
    num, den = sum(float(o[1]) for o, _ in out), sum(float(o[2]) for o, _ in out)
    loss = num / max(den, 1e-12)
    return (tops, loss, np.concatenate([o[3][:k] for o, k in out])) if with_probs else (tops, loss)

  def probabilities(self, params, data: input_pipeline.DeviceData, chunk_batches: int = 16) -> np.ndarray:
    """(N, C) class probabilities of every clip of `data`, in order (for ensembles)."""
    out = self._map(self._probs, params, data, chunk_batches)
    return np.concatenate([p[:k] for p, k in out])

  def head_log_probs(self, params, data: input_pipeline.DeviceData, chunk_batches: int = 16) -> np.ndarray:
    """(V, K, N, C): every head's log-probabilities in every test-time view (inference.head_log_probs)."""
    out = self._map(self._heads, params, data, chunk_batches)
    return np.concatenate([h[:, :, :k] for h, k in out], axis=2)

  def view_logits(self, params, data: input_pipeline.DeviceData) -> np.ndarray:
    """(V, N, C): per test-time view, what the model's evaluation logits are before its temperature (the
    heads' log-probabilities combined with its head weights): what calibration fits the temperature on."""
    h = self.head_log_probs(params, data)
    w = np.asarray(self.model.head_weights if h.shape[1] > 1 else (1.0,), np.float32)
    return np.einsum("k,vknc->vnc", w, h)

  def embeddings(self, params, data: input_pipeline.DeviceData, chunk_batches: int = 16) -> np.ndarray:
    """(V, N, E): every clip's embedding in every test-time view (inference.embeddings)."""
    out = self._map(self._embed, params, data, chunk_batches)
    return np.concatenate([e[:, :k] for e, k in out], axis=1)

  def evaluate(self, params, data: input_pipeline.DeviceData, labels: np.ndarray, num_classes: int,
               with_probs: bool = False) -> dict:
    """Metrics of the first len(labels) clips of `data` (the rest, if any, is padding); with `with_probs`
    also their probabilities (summary["probs"], (N, C)), from the same pass."""
    top_k, loss, *probs = self.predict(params, data, count=len(labels), with_probs=with_probs)
    summary = metrics.summarize(top_k, labels, num_classes)
    summary["loss"] = loss
    summary["top_k"] = top_k
    if with_probs:
      summary["probs"] = probs[0]
    return summary


HEAD_WEIGHT_GRID = (0.0, 0.25, 0.5, 1.0, 2.0)


def combined_nll(head_log_probs: np.ndarray, labels: np.ndarray, weights) -> float:
  """Mean negative log-likelihood of the prediction inference.log_probs makes from per-view, per-head
  log-probabilities (V, K, N, C) with head weights (K,): per view the weighted sum, normalised; the mean
  probability over the views."""
  w = np.asarray(weights, np.float64).reshape(1, -1, 1, 1)
  return calibration.nll((w * head_log_probs.astype(np.float64)).sum(1), labels)


def fit_head_weights(head_log_probs: np.ndarray, labels: np.ndarray, grid=HEAD_WEIGHT_GRID) -> dict:
  """The head weights (one per head, each from `grid`, not all zero) whose combined prediction has the
  lowest loss on these clips (the validation split): a stream whose head carries no signal gets weight
  ~0, and the weights double as a temperature. Returns {"weights", "val_loss", "equal_val_loss"}."""
  k = head_log_probs.shape[1]
  candidates = [w for w in itertools.product(grid, repeat=k) if any(w)]
  losses_ = [combined_nll(head_log_probs, labels, w) for w in candidates]
  best = int(np.argmin(losses_))
  return {"weights": [float(x) for x in candidates[best]], "val_loss": losses_[best],
          "equal_val_loss": combined_nll(head_log_probs, labels, (1.0,) * k)}


def calibrate(evaluator: Evaluator, params, val, val_labels, step: int, train=None, train_labels=None,
              fitted_on: str = "val", view_logits: np.ndarray | None = None) -> dict:
  """A run's calibration.json from its held-out clips `val` (the evaluator's model without a temperature):
  the temperature, the unknown threshold, and with the training clips the enrolment scales
  (class_vectors.fit_scales). `view_logits`: val's (Evaluator.view_logits), when the caller has them."""
  if view_logits is None:
    view_logits = evaluator.view_logits(params, val)
  cal = calibration.fit(view_logits, val_labels, step, fitted_on=fitted_on)
  model = evaluator.model
  if train is not None and not model.stream_heads and "head" in params and "logits" in params["head"]:
    cal["enrol"] = class_vectors.fit_scales(evaluator.embeddings(params, train), train_labels,
                                            evaluator.embeddings(params, val), val_labels,
                                            jax.device_get(params["head"]["logits"]))
  return cal


REPORT_ACCEPTS = (0.95, 0.9, 0.8, 0.7)  # the shares of known signs whose thresholds a report scores


def calibration_report(probs: np.ndarray, labels: np.ndarray, temperature: float, cal: dict | None) -> dict:
  """report.json's "calibration": the ECE and its bins (the reliability diagram), the ECE a perfectly
  calibrated model would show on as many clips with these confidences (`ece_noise_floor`), the mean
  confidence, the temperature, the run's unknown threshold (from its calibration `cal`; None without one) and
  the share of clips it calls unknown. When `cal` keeps its held-out scores, "stricter": at the threshold that
  accepts each share of them (asl-predict --unknown_accept), the share of these clips answered right, answered
  wrong, and called unknown."""
  threshold = cal.get("unknown_threshold") if cal else None
  out = {"temperature": float(temperature), "ece": calibration.expected_calibration_error(probs, labels),
         "ece_noise_floor": calibration.ece_noise_floor(probs.max(-1)),
         "mean_confidence": float(probs.max(-1).mean()), "bins": calibration.reliability_bins(probs, labels),
         "unknown_threshold": threshold,
         "called_unknown": float(calibration.unknown_mask(probs, threshold).mean())}
  if cal and cal.get("known_scores"):
    right = probs.argmax(-1) == np.asarray(labels)
    rows = []
    for accept in REPORT_ACCEPTS:
      t = calibration.threshold_for(cal, accept, "")
      answered = ~calibration.unknown_mask(probs, t)
      rows.append({"accept": accept, "threshold": t, "right": float((answered & right).mean()),
                   "wrong": float((answered & ~right).mean()), "called_unknown": float((~answered).mean())})
    out["stricter"] = rows
  return out


def clips_without_hands(packed, idx) -> int:
  """How many of the clips `idx` have no detected hand in any frame (their predictions are guesses)."""
  parts, lengths = np.asarray(packed.parts[idx]), np.asarray(packed.lengths[idx])
  real = np.arange(parts.shape[1])[None] < lengths[:, None]
  return int((~((parts[..., 0] | parts[..., 1]) & real).any(1)).sum())


def flat_metrics(summary: dict, prefix: str) -> dict:
  """The scalar metrics (config.METRICS) as metrics.jsonl keys: {prefix}_loss, _top1, _top5, _class_top1,
  _class_top5."""
  values = {"loss": summary["loss"], "top1": summary["per_instance"]["top1"],
            "top5": summary["per_instance"]["top5"], "class_top1": summary["per_class"]["top1"],
            "class_top5": summary["per_class"]["top5"]}
  return {f"{prefix}_{m}": values[m] for m in config_lib.METRICS}


def build_report(summary: dict, split: str, step: int, glosses, n_list: int = 10) -> dict:
  """The report.json dict (accuracies as fractions)."""
  acc = summary["class_top1"]
  present = np.flatnonzero(~np.isnan(acc))
  per_class = {glosses[c]: float(acc[c]) for c in present}
  order = present[np.lexsort((present, acc[present]))]  # ascending accuracy, then class index
  entry = lambda c: {"gloss": glosses[c], "class": int(c), "accuracy": float(acc[c]),  # noqa: E731
                     "count": int(summary["class_counts"][c])}
  return {
      "split": split, "checkpoint_step": int(step), "num_samples": int(len(summary["predictions"])),
      "num_classes": int(len(glosses)), "loss": summary["loss"],
      "per_instance": summary["per_instance"], "per_class": summary["per_class"],
      "per_class_accuracy": per_class,
      "worst": [entry(c) for c in order[:n_list]], "best": [entry(c) for c in order[::-1][:n_list]],
  }


def write_report(out_dir: str, report: dict, summary: dict, labels: np.ndarray, glosses,
                 training_rows: list[dict] | None = None, video_ids=None, probs: np.ndarray | None = None,
                 run_name: str = "") -> str:
  """Writes report.json, the PNG plots (titled with the split and `run_name`; the training curves from
  `training_rows`, the run's metrics.jsonl rows, when given; the reliability diagram when the report has its
  calibration) and, with `video_ids` and `probs`,
  predictions.json (`predictions`) into out_dir; returns the report path."""
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, run_dir.REPORT_FILE)
  atomic.write_json(path, report)
  what = "your signs" if report["split"] == "signs" else f"{report['split']} split"
  title = what + (f", {run_name}" if run_name else "")
  cm = metrics.confusion_matrix(labels, summary["predictions"], len(glosses))
  plots.plot_confusion_matrix(cm, glosses, os.path.join(out_dir, "confusion_matrix.png"), title=title)
  plots.per_class_accuracy(summary["class_top1"], glosses, os.path.join(out_dir, "per_class_accuracy.png"),
                           title=title)
  if training_rows:
    plots.training_curves(training_rows, os.path.join(out_dir, "training_curves.png"), title=run_name)
  cal = report.get("calibration")
  if cal:
    plots.reliability_diagram(cal["bins"], cal["ece"], os.path.join(out_dir, "reliability.png"), what,
                              cal.get("ece_noise_floor"))
  if video_ids is not None and probs is not None:
    threshold = (report.get("calibration") or {}).get("unknown_threshold")
    atomic.write_json(os.path.join(out_dir, PREDICTIONS_FILE), predictions(video_ids, probs, labels, glosses,
                                                                           threshold), indent=1)
  return path


PREDICTIONS_FILE = "predictions.json"
# What a report folder holds (write_report): asl-evaluate refuses to replace these in a folder the user named unless
# --overwrite.
REPORT_FILES = (run_dir.REPORT_FILE, "confusion_matrix.png", "per_class_accuracy.png", "training_curves.png",
                PREDICTIONS_FILE, "reliability.png")


def predictions(video_ids, probs: np.ndarray, labels: np.ndarray, glosses, threshold: float | None,
                k: int = metrics.TOP_K) -> dict:
  """predictions.json: per clip id, the predicted gloss, the true one, whether they agree, the top-k
  glosses with their probabilities, and whether the run calls the clip unknown (its top-1 probability below
  the run's threshold)."""
  order = np.argsort(-probs, -1, kind="stable")[:, :k]
  unknown = calibration.unknown_mask(probs, threshold)
  return {vid: {"gloss": glosses[int(o[0])], "true": glosses[int(y)], "correct": bool(o[0] == y),
                "unknown": bool(u), "top_k": [{"gloss": glosses[int(c)], "prob": round(float(p[c]), 6)} for c in o]}
          for vid, o, y, p, u in zip(video_ids, order, labels, probs, unknown)}


def _calibration_line(cal: dict) -> str:
  line = f"calibration: expected calibration error {cal['ece']:.3f} (temperature {cal['temperature']:.3g}; "
  floor = cal.get("ece_noise_floor")  # reports written before it have none
  if floor:
    line += (f"a perfectly calibrated model would show {floor['mean']:.3f} on these clips, up to {floor['p90']:.3f} "
             "one time in ten; ")
  return line + "reliability.png)"


def _stricter_line(cal: dict) -> str:
  """The answers at each share of known signs accepted (calibration_report's "stricter")."""
  return "unknown decision, --unknown_accept: " + "; ".join(
      f"{r['accept']:.2f}: {100 * r['right']:.0f}% right, {100 * r['wrong']:.0f}% wrong, "
      f"{100 * r['called_unknown']:.0f}% unknown" for r in cal["stricter"])


def _origin_line(origins: dict) -> str:
  """The top-1 of an enrolled run's trained, enrolled and refined signs apart (evaluate.by_origin)."""
  return "by origin: " + "; ".join(
      f"{o} signs {100 * r['top1']:.1f}% of {r['clips']} clips ({100 * r['taken_for_enrolled']:.1f}% taken for an "
      "enrolled sign)" for o, r in origins.items())


def _unknown_signs_line(u: dict) -> str:
  """The clips of signs the run does not know (asl-evaluate --signs): how many it calls unknown."""
  line = (f"signs it does not know: {u['clips']} clip(s) of {len(u['glosses'])} sign(s), "
          f"{100 * u['called_unknown']:.0f}% called unknown")
  if u.get("auroc") is not None:
    line += f" (AUROC of the unknown score against the known clips {u['auroc']:.3f})"
  if u.get("stricter"):
    line += "; --unknown_accept: " + ", ".join(f"{r['accept']:.2f}: {100 * r['called_unknown']:.0f}%"
                                               for r in u["stricter"])
  return line


WEAKEST_LINE = 5  # signs named on asl-evaluate --signs' "weakest signs" line


def _weakest_line(weakest: list[dict]) -> str:
  """asl-evaluate --signs: the first WEAKEST_LINE signs with a clip answered wrong (the enrolled ones first), with
  what their clips were taken for."""
  return "weakest signs: " + "; ".join(
      f"{w['gloss']} {100 * w['top1']:.0f}% of {w['clips']} (taken for "
      f"{', '.join(f'{g} x{n}' if n > 1 else g for g, n in w['taken_for'].items())})"
      for w in weakest[:WEAKEST_LINE]) + (
      f"; {len(weakest) - WEAKEST_LINE} more in report.json" if len(weakest) > WEAKEST_LINE else "")


def format_table(report: dict) -> str:
  if report["split"] == "signs":
    head = (f"your signs ({report['signs']}), step {report['checkpoint_step']}, {report['num_samples']} clips of "
            f"signs the run knows, {report['num_classes']} classes")
  else:
    head = (f"{report['split']} split, step {report['checkpoint_step']}, {report['num_samples']} clips, "
            f"{report['num_classes']} classes")
  tail = [_unknown_signs_line(report["unknown_signs"])] if report.get("unknown_signs") else []
  if not report["num_samples"]:
    return "\n".join([head] + tail)
  pi, pc = report["per_instance"], report["per_class"]
  return "\n".join([
      head,
      f"{'':14s}{'top-1':>8s}{'top-5':>8s}",
      f"{'per-instance':14s}{100 * pi['top1']:7.2f}%{100 * pi['top5']:7.2f}%",
      f"{'per-class':14s}{100 * pc['top1']:7.2f}%{100 * pc['top5']:7.2f}%",
  ] + ([_calibration_line(report["calibration"])] if report.get("calibration") else []) + (
      [_stricter_line(report["calibration"])] if (report.get("calibration") or {}).get("stricter") else []) + (
      [f"retrieval: top-10 {100 * report['retrieval']['top10']:.2f}%, top-20 {100 * report['retrieval']['top20']:.2f}%, "
       f"MRR {report['retrieval']['mrr']:.3f}, DCG {report['retrieval']['dcg']:.3f}"] if report.get("retrieval")
      else []) + (
      [f"{report['clips_without_hands']} clip(s) have no detected hand in any frame (their predictions are "
       "guesses)"] if report.get("clips_without_hands") else []) + (
      [_origin_line(report["by_origin"])] if report.get("by_origin") else []) + (
      [_weakest_line(report["weakest"])] if report.get("weakest") else []) + tail)
