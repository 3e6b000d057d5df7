"""Evaluation: a jitted eval step over a split in fixed-size batches, metrics, the report and its plots.

`Evaluator` serves training-time validation and the evaluate script alike (one implementation).
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from asl_jax import input_pipeline, losses, metrics
from asl_jax.sharding import DataParallel


class Evaluator:
  """Logits -> ranked top-k predictions and loss terms for every clip of a DeviceData."""

  def __init__(self, model, num_frames: int, parallel: DataParallel, batch_size: int, class_weights=None,
               smoothing: float = 0.0):
    self.parallel = parallel
    self.batch_size = parallel.round_batch(batch_size)
    w = None if class_weights is None else jnp.asarray(class_weights)

    def step(params, data, idx, valid):
      batch = input_pipeline.make_batch(data, idx, jax.random.key(0), num_frames, None,
                                        model.use_landmarks, model.use_visual)
      logits = model.apply({"params": params}, batch, train=False)
      num, den = losses.weighted_ce_terms(logits, batch["labels"], w, smoothing, valid)
      return metrics.top_k_predictions(logits), num, den

    self._step = jax.jit(step, out_shardings=parallel.replicated)  # every process can read the results

  def predict(self, params, data: input_pipeline.DeviceData, chunk_batches: int = 16):
    """(top_k (N, k) numpy, loss) over all clips of `data`, in order.

    Device-resident data is used as is; host (numpy / memory-mapped) data is streamed to the devices in
    chunks of `chunk_batches` batches, so splits larger than device memory evaluate too.
    """
    n = data.size
    on_device = isinstance(data.labels, jax.Array)
    chunk = n if on_device else self.batch_size * chunk_batches
    tops, nums, dens = [], [], []
    for c0 in range(0, n, chunk):
      part = data if on_device else self.parallel.replicate(
          jax.tree_util.tree_map(lambda a, c0=c0: np.ascontiguousarray(a[c0:c0 + chunk]), data))
      m = min(chunk, n - c0)
      chunk_tops = []
      for start in range(0, m, self.batch_size):
        idx = np.arange(start, start + self.batch_size)
        valid = idx < m
        idx = np.where(valid, idx, 0).astype(np.int32)
        top, num, den = self._step(params, part, self.parallel.shard_batch(idx), self.parallel.shard_batch(valid))
        chunk_tops.append(top)
        nums.append(num)
        dens.append(den)
      # Fetching each chunk's results keeps at most one chunk on the devices; padding rows are dropped.
      tops.append(np.concatenate(jax.device_get(chunk_tops))[:m])
    nums, dens = jax.device_get((nums, dens))
    return np.concatenate(tops), float(np.sum(nums) / max(np.sum(dens), 1e-12))

  def evaluate(self, params, data: input_pipeline.DeviceData, labels: np.ndarray, num_classes: int) -> dict:
    top_k, loss = self.predict(params, data)
    summary = metrics.summarize(top_k, labels, num_classes)
    summary["loss"] = loss
    summary["top_k"] = top_k
    return summary


def flat_metrics(summary: dict, prefix: str) -> dict:
  """The scalar metrics as metrics.jsonl keys: {prefix}_loss, _top1, _top5, _class_top1, _class_top5."""
  return {f"{prefix}_loss": summary["loss"], f"{prefix}_top1": summary["per_instance"]["top1"],
          f"{prefix}_top5": summary["per_instance"]["top5"], f"{prefix}_class_top1": summary["per_class"]["top1"],
          f"{prefix}_class_top5": summary["per_class"]["top5"]}


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
                 metrics_jsonl: str | None = None) -> str:
  """Writes report.json and the PNG plots into out_dir; returns the report path."""
  from asl_jax import plots  # pylint: disable=import-outside-toplevel  (matplotlib only when reporting)
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, "report.json")
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(report, f, indent=2)
  os.replace(tmp, path)
  cm = metrics.confusion_matrix(labels, summary["predictions"], len(glosses))
  plots.confusion_matrix(cm, glosses, os.path.join(out_dir, "confusion_matrix.png"))
  plots.per_class_accuracy(summary["class_top1"], glosses, os.path.join(out_dir, "per_class_accuracy.png"))
  if metrics_jsonl and os.path.exists(metrics_jsonl):
    plots.training_curves(metrics_jsonl, os.path.join(out_dir, "training_curves.png"))
  return path


def format_table(report: dict) -> str:
  pi, pc = report["per_instance"], report["per_class"]
  return "\n".join([
      f"{report['split']} split, step {report['checkpoint_step']}, {report['num_samples']} clips, "
      f"{report['num_classes']} classes",
      f"{'':14s}{'top-1':>8s}{'top-5':>8s}",
      f"{'per-instance':14s}{100 * pi['top1']:7.2f}%{100 * pi['top5']:7.2f}%",
      f"{'per-class':14s}{100 * pc['top1']:7.2f}%{100 * pc['top5']:7.2f}%",
  ])



SPLITS = ("test", "val", "train")


def evaluate_workdir(workdir: str, split: str = "test", checkpoint: str = "best", batch_size: int = 0) -> dict:
  """Restores a run, evaluates it on a split of its data and writes DIR/eval_<split>/ (report + plots).

  Returns the report dict (with "path")."""
  from asl_jax import train, workdir as workdir_lib  # pylint: disable=import-outside-toplevel
  from asl_jax.errors import ConfigError, DataError  # pylint: disable=import-outside-toplevel
  if split not in SPLITS:
    raise ConfigError(f"--split={split!r}: expected one of {list(SPLITS)}")
  run = workdir_lib.load_run(workdir, checkpoint)
  setup = train.prepare(run.config)
  idx = {"test": setup.test_idx, "val": setup.val_idx, "train": setup.train_idx}[split]
  if split == "val" and not len(idx):
    idx = setup.packed.indices(["val"])
  if not len(idx):
    raise DataError(f"{setup.packed.split.path}: the {split} split has no clips with features")
  if setup.packed.num_classes != len(run.glosses):
    raise DataError(f"{setup.packed.split.path}: {setup.packed.num_classes} classes, but the run in {workdir} "
                    f"was trained on {len(run.glosses)}")
  parallel = DataParallel()
  weights = setup.class_weights
  evaluator = Evaluator(run.model, run.config.num_frames, parallel, batch_size or run.config.eval_batch_size,
                        weights, run.config.label_smoothing)
  labels = setup.packed.labels[idx]
  summary = evaluator.evaluate(parallel.replicate(run.params), input_pipeline.select(setup.packed, idx), labels,
                               setup.packed.num_classes)
  report = build_report(summary, split, run.step, run.glosses)
  report["path"] = write_report(os.path.join(workdir, f"eval_{split}"), report, summary, labels, run.glosses,
                                os.path.join(workdir, "metrics.jsonl"))
  predictions = {vid: run.glosses[int(p)] for vid, p in
                 zip((setup.packed.video_ids[i] for i in idx), summary["predictions"])}
  with open(os.path.join(workdir, f"eval_{split}", "predictions.json"), "w", encoding="utf-8") as f:
    json.dump(predictions, f, indent=1)
  return report
