"""What a run computes on its best checkpoint once the epochs are done: the per-stream head weights and the
calibration, both fitted on val, then the test report (DIR/eval_test/). Each is computed once per best
checkpoint: a rerun of a finished run finds them in the run directory."""

from __future__ import annotations

import os

import jax

from asl_jax import models
from asl_jax.data import input_pipeline, splits as splits_lib
from asl_jax.evaluation import evaluator as evaluation, metrics
from asl_jax.runs import restore, run_dir
from asl_jax.runs.run_dir import RunDir
from asl_jax.sharding import DataParallel
from asl_jax.training import setup as setup_lib
from asl_jax.training.console import say


class Finisher:
  """The end of a run, for the best checkpoint's weights `params` (of step `step`); `evaluator` is
  validation's (its compiled step is reused when nothing changes the model)."""

  def __init__(self, config, run: RunDir, setup: setup_lib.Setup, parallel: DataParallel,
               evaluator: evaluation.Evaluator, is_main: bool, eval_size: int):
    self.config, self.run, self.setup, self.parallel = config, run, setup, parallel
    self.evaluator, self.is_main, self.eval_size = evaluator, is_main, eval_size

  def fits_head_weights(self) -> bool:
    return restore.fits_head_weights(self.config, self.setup.model) and len(self.setup.val_idx) > 0

  def head_weights(self, params, step: int) -> tuple | None:
    """With per-stream heads and config.fit_head_weights: the head weights minimising the val loss of the
    best checkpoint (DIR/head_weights.json, fitted once per best checkpoint); None otherwise."""
    if not self.fits_head_weights():
      return None
    setup, names = self.setup, models.hybrid.HEAD_NAMES
    fitted = self.run.head_weights(len(names))
    if fitted is None or fitted.get("step") != step:
      val = self.parallel.replicate(input_pipeline.select(setup.packed, setup.val_idx))
      head_log_probs = self.evaluator.head_log_probs(params, val)
      fitted = {**evaluation.fit_head_weights(head_log_probs, setup.packed.labels[setup.val_idx]),
                "heads": list(names), "step": step}
      if self.is_main:
        self.run.save_head_weights(fitted)
      self.say("head weights fitted on val (" + ", ".join(f"{n} {w:g}" for n, w in zip(names, fitted["weights"]))
               + f"): val loss {fitted['val_loss']:.4f}, equal weights {fitted['equal_val_loss']:.4f}")
    return tuple(fitted["weights"])

  def calibrate(self, params, step: int) -> None:
    """Fits the calibration (DIR/calibration.json: the temperature, the unknown threshold, the enrolment
    scales) on val, when the run has val clips it did not train on."""
    config, setup = self.config, self.setup
    if not len(setup.val_idx) or "val" in splits_lib.train_subsets(config.train_subsets):
      self.say("no calibration: the run has no held-out val clips (its probabilities are the model's own, and it "
               "calls no sign unknown)")
      return
    cal = self.run.calibration()
    if cal is not None and cal.get("step") == step:
      return
    evaluator = self._evaluator(self.head_weights(params, step), 1.0)
    packed = setup.packed
    val = self.parallel.replicate(input_pipeline.select(packed, setup.val_idx))
    train = input_pipeline.select(packed, setup.train_idx)
    cal = evaluation.calibrate(evaluator, jax.device_get(params), val, packed.labels[setup.val_idx], step, train,
                               packed.labels[setup.train_idx])
    if self.is_main:
      self.run.save_calibration(cal)
    self.say(f"calibrated on {cal['clips']} val clips: temperature {cal['temperature']:.3f} (val ECE "
             f"{cal['val_ece_before']:.3f} -> {cal['val_ece_after']:.3f}), unknown below a top-1 probability of "
             f"{cal['unknown_threshold']:.3f}")

  def test(self, params, step: int) -> dict:
    """Evaluates the best checkpoint on the test split (with the run's head weights and temperature) and
    writes DIR/eval_test/; returns the result keys (`test_result`)."""
    setup = self.setup
    packed, idx = setup.packed, setup.test_idx
    self.say(f"testing the best checkpoint (epoch {step // setup.steps_per_epoch}) on {len(idx)} clips")
    weights = self.head_weights(params, step)
    cal = self.run.calibration()
    temperature = cal["temperature"] if cal and cal.get("step") == step else 1.0
    evaluator = self._evaluator(weights, temperature)
    run_dir.crash_point("test_evaluation")
    test = self.parallel.replicate(input_pipeline.select(packed, input_pipeline.padded_indices(idx, self.eval_size)))
    labels = packed.labels[idx]
    summary = evaluator.evaluate(params, test, labels, packed.num_classes, with_probs=True)
    if not self.is_main:
      return {}
    report = evaluation.build_report(summary, "test", step, packed.split.glosses)
    report["clips_without_hands"] = evaluation.clips_without_hands(packed, idx)
    if weights is not None:
      report["head_weights"] = dict(zip(models.hybrid.HEAD_NAMES, weights))
    report["calibration"] = evaluation.calibration_report(summary["probs"], labels, temperature, cal)
    report["retrieval"] = metrics.retrieval(summary["probs"], labels)
    path = evaluation.write_report(self.run.eval_dir("test"), report, summary, labels, packed.split.glosses,
                                   self.run.metrics(), [packed.video_ids[i] for i in idx], summary["probs"],
                                   os.path.basename(os.path.abspath(self.run.path)))
    return test_result(path, report)

  def _evaluator(self, head_weights, temperature: float) -> evaluation.Evaluator:
    """Validation's evaluator, or one for the model with these head weights and temperature."""
    if head_weights is None and temperature == 1.0:
      return self.evaluator
    setup = self.setup
    model = setup.model.clone(head_weights=head_weights or setup.model.head_weights, temperature=temperature)
    return evaluation.Evaluator.from_config(self.config, model, self.parallel, setup.class_weights,
                                            visual_norm=setup.visual_norm)

  def say(self, message: str) -> None:
    say(self.is_main, message)


def test_result(path: str, report: dict) -> dict:
  """The result keys of train_and_evaluate for a test report: its path and its metrics."""
  return {"test_report": path, "test": {"per_instance": report["per_instance"], "per_class": report["per_class"]}}
