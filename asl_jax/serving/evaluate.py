"""The evaluate application: restore one run (or an ensemble of runs), evaluate it on a split of its data,
write DIR/eval_<split>/ (report.json, plots, predictions.json)."""

from __future__ import annotations

import os

import numpy as np

from asl_jax.data import input_pipeline, splits as splits_lib
from asl_jax.errors import ConfigError, DataError
from asl_jax.evaluation import evaluator as evaluation, metrics, plots
from asl_jax.runs import restore
from asl_jax.runs.run_dir import RunDir
from asl_jax.sharding import DataParallel
from asl_jax.training import setup as run_lib

SPLITS = ("test", "val", "train")


def evaluate_workdir(workdir, split: str = "test", checkpoint: str = "best", batch_size: int = 0,
                     out_dir: str = "", data_overrides: dict | None = None) -> dict:
  """Restores a run, evaluates it on a split of its data and writes DIR/eval_<split>/ (report + plots).

  `workdir` may name several runs ("a,b,c" or a list) trained on the same classes: their class
  probabilities are averaged (an ensemble), the report lists them under "runs" and goes to
  FIRST/eval_<split>_ensemble/ unless `out_dir` is given. `data_overrides` (data_dir, landmarks_dir,
  gemma_features_dir) points the runs at data that moved. Returns the report dict (with "path")."""
  if split not in SPLITS:
    raise ConfigError(f"--split={split!r}: expected one of {list(SPLITS)}")
  workdirs = restore.split_workdirs(workdir)
  if not workdirs:
    raise ConfigError("--workdir: no run directory given")
  parallel = DataParallel()
  probs, first = None, None
  for wd in workdirs:
    run = restore.load_run(wd, checkpoint, data_overrides)
    setup = run_lib.prepare(run.config)
    idx = {"test": setup.test_idx, "val": setup.val_idx, "train": setup.train_idx}[split]
    if split == "val" and "val" in splits_lib.train_subsets(run.config.train_subsets):
      raise ConfigError(f"--split=val: the run in {wd} trained on its val clips too (train_subsets="
                        f"{run.config.train_subsets}), so they are not held out and its val score would mean "
                        "nothing; evaluate --split=test")
    if not len(idx):
      raise DataError(f"{setup.packed.split.path}: the {split} split has no clips with features")
    to_run = _labels_to_run(setup.packed.split, run.glosses, wd)
    labels = to_run[setup.packed.labels[idx]]
    ids = [setup.packed.video_ids[i] for i in idx]
    if first is not None and (ids != first[2] or run.glosses != first[0].glosses):
      raise DataError(f"{wd}: cannot be combined with {workdirs[0]}: the runs differ in their classes or "
                      f"{split} clips")
    same = np.array_equal(to_run, np.arange(len(to_run))) and len(to_run) == len(run.glosses)
    evaluator = evaluation.Evaluator.from_config(run.config, run.model, parallel,
                                                 setup.class_weights if same else None, batch_size, run.visual_norm)
    data = input_pipeline.select(setup.packed, idx)
    data = data.replace(labels=labels.astype(np.int32))
    if len(workdirs) == 1:  # the metrics and the probabilities of one pass
      summary = evaluator.evaluate(parallel.replicate(run.params), data, labels, len(run.glosses), with_probs=True)
      probs = summary["probs"]
    else:
      p = evaluator.probabilities(parallel.replicate(run.params), data)
      probs = p if probs is None else probs + p
    if first is None:
      first = (run, setup, ids, idx, labels)
  run, setup, ids, idx, labels = first
  if len(workdirs) > 1:
    probs /= len(workdirs)
    summary = metrics.summarize(np.argsort(-probs, -1, kind="stable")[:, :metrics.TOP_K], labels, len(run.glosses))
    p_true = np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)
    summary["loss"] = float(-np.log(p_true).mean())  # plain NLL of the averaged probabilities
  report = evaluation.build_report(summary, split, run.step, run.glosses)
  report["clips_without_hands"] = evaluation.clips_without_hands(setup.packed, idx)
  report["calibration"] = evaluation.calibration_report(probs, labels, run.model.temperature, run.calibration)
  report["retrieval"] = metrics.retrieval(probs, labels)
  origins = by_origin(probs, labels, workdirs[0])
  if origins:
    report["by_origin"] = origins
  if len(workdirs) > 1:
    report["runs"] = [os.path.abspath(w) for w in workdirs]
    report["checkpoint"] = checkpoint
  out_dir = out_dir or RunDir(workdirs[0]).eval_dir(split, ensemble=len(workdirs) > 1)
  report["path"] = evaluation.write_report(out_dir, report, summary, labels, run.glosses,
                                           RunDir(workdirs[0]).metrics() if len(workdirs) == 1 else None,
                                           ids, probs, _run_name(workdirs))
  plots.reliability_diagram(report["calibration"]["bins"], report["calibration"]["ece"],
                            os.path.join(out_dir, "reliability.png"), f"{split} split",
                            report["calibration"].get("ece_noise_floor"))
  return report


def by_origin(probs: np.ndarray, labels: np.ndarray, workdir: str) -> dict | None:
  """For a run asl-enroll made (None for another): the clips of its trained, enrolled and refined signs apart,
  which the per-instance top-1 mixes. Per origin: how many signs and clips, their top-1, and the share of its
  clips taken for another sign that was enrolled (what the enrolled signs cost the others)."""
  from asl_jax.serving import enroll  # pylint: disable=import-outside-toplevel
  origin = np.array([s["origin"] for s in enroll.vocabulary(workdir)])
  if (origin == "trained").all():
    return None
  pred = probs.argmax(-1)
  out = {}
  for o in ("trained", "enrolled", "refined"):
    mask = origin[labels] == o
    if mask.any():
      wrong = pred[mask] != labels[mask]
      out[o] = {"signs": int(len(np.unique(labels[mask]))), "clips": int(mask.sum()),
                "top1": float(np.mean(~wrong)),
                "taken_for_enrolled": float(np.mean(wrong & (origin[pred[mask]] == "enrolled")))}
  return out


def _run_name(workdirs) -> str:
  names = [os.path.basename(os.path.abspath(w)) for w in workdirs]
  return names[0] if len(names) == 1 else f"ensemble of {', '.join(names)}"


def _labels_to_run(split, glosses, workdir: str) -> np.ndarray:
  """The run's class index of each of the split's labels, by gloss: the identity for the run's own data; an
  enrolled run (more classes, asl-enroll) evaluates any split whose glosses it knows."""
  if tuple(split.glosses) == tuple(glosses):
    return np.arange(len(glosses))
  index = {g: i for i, g in enumerate(glosses)}
  missing = [g for g in split.glosses if g not in index]
  if missing:
    raise DataError(f"{split.path}: {len(missing)} of its {len(split.glosses)} classes are not among the "
                    f"{len(glosses)} of the run in {workdir} ({', '.join(missing[:5])}"
                    f"{', ...' if len(missing) > 5 else ''})")
  return np.array([index[g] for g in split.glosses])


def heldout_arrays(workdir: str, checkpoint: str = "best", data_overrides: dict | None = None) -> dict:
  """What a run's calibration is fitted from, on its val clips (which it must not have trained on):
  {"logits": (V, N, C) per-view logits without a temperature, "labels", "step", "enrol": the enrolment
  scales (class_vectors.fit_scales) or None}."""
  run = restore.load_run(workdir, checkpoint, data_overrides)
  if "val" in splits_lib.train_subsets(run.config.train_subsets):
    raise ConfigError(f"{workdir}: the run trained on its val clips (train_subsets={run.config.train_subsets}), "
                      "so they cannot calibrate it")
  setup = run_lib.prepare(run.config)
  if not len(setup.val_idx):
    raise DataError(f"{setup.packed.split.path}: the val split has no clips with features to calibrate on")
  if setup.packed.split.glosses != run.glosses:
    raise DataError(f"{setup.packed.split.path}: its classes are not the run's (an enrolled run is calibrated by "
                    "its base)")
  parallel = DataParallel()
  evaluator = evaluation.Evaluator.from_config(run.config, run.model.clone(temperature=1.0), parallel,
                                               setup.class_weights, 0, run.visual_norm)
  packed = setup.packed
  val = parallel.replicate(input_pipeline.select(packed, setup.val_idx))
  logits = evaluator.view_logits(run.params, val)
  cal = evaluation.calibrate(evaluator, run.params, val, packed.labels[setup.val_idx], run.step,
                             input_pipeline.select(packed, setup.train_idx), packed.labels[setup.train_idx],
                             view_logits=logits)
  return {"logits": logits, "labels": packed.labels[setup.val_idx], "step": run.step, "enrol": cal.get("enrol"),
          "calibration": cal}


def calibrate_workdir(workdir: str, data_overrides: dict | None = None) -> dict:
  """Fits a run's calibration (calibration.json: temperature, unknown threshold, enrolment scales) on its val
  clips, for runs trained before training did it; returns it. The run must not have trained on val."""
  from asl_jax import pretrained  # pylint: disable=import-outside-toplevel
  if pretrained.is_shipped(workdir):
    raise ConfigError(f"{workdir}: the shipped model is calibrated already, and an installed package is not a "
                      "place to write")
  cal = heldout_arrays(workdir, "best", data_overrides)["calibration"]
  RunDir(workdir).save_calibration(cal)
  return cal
