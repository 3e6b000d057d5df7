"""The evaluate application: restore one run (or an ensemble of runs), evaluate it on a split of its data,
write DIR/eval_<split>/ (report.json, plots, predictions.json)."""

from __future__ import annotations

import collections
import os

import numpy as np

from asl_jax import atomic
from asl_jax.data import input_pipeline, splits as splits_lib
from asl_jax.errors import ConfigError, DataError
from asl_jax.evaluation import calibration, evaluator as evaluation, metrics
from asl_jax.runs import restore, run_dir as run_dir_lib
from asl_jax.runs.run_dir import RunDir
from asl_jax.serving import enroll, predict as predict_lib
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
  return report


def evaluate_signs(workdir, signs: str, checkpoint: str = "best", batch_size: int = 0, out_dir: str = "") -> dict:
  """Evaluates a run (or an ensemble, "a,b,c") on your own labelled clips: SIGNS/<gloss>/ folders of landmark
  files or videos, or the page's export, as asl-enroll reads them. The clips of glosses the run knows are
  scored as a split is (top-1/5, per sign, the calibration, by origin for an enrolled run); the clips of other
  glosses are unknown signs, and the report gives the share the run calls unknown and how well its unknown score
  ranks them below the known clips (AUROC). A clip a sign of the run was enrolled from is left out: a sign
  scored on its own examples looks better than it is. Writes report.json, the plots and predictions.json (by
  file) to `out_dir` (default WORKDIR/eval_signs) and returns the report, with "path", "skipped" (one line per
  file or folder that could not be used) and "left_out"."""
  workdirs = restore.split_workdirs(workdir)
  if not workdirs:
    raise ConfigError("--workdir: no run directory given")
  predictors = [predict_lib.Predictor(w, checkpoint, batch_size or 32) for w in workdirs]
  first = predictors[0]
  for w, p in zip(workdirs, predictors):
    if p.run.visual_dim:
      raise ConfigError(f"{w}: this run also needs visual features; --signs gives landmark clips only")
    if p.glosses != first.glosses or (p.run.layout, p.run.config.max_frames) != (
        first.run.layout, first.run.config.max_frames):
      raise DataError(f"{w}: cannot be combined with {workdirs[0]}: the runs differ in their classes or input")
  examples, skipped = enroll.find_examples(signs, use="evaluated")
  examples, left_out = _not_enrolled_from(examples, first.run.workdir)
  clips, bad = enroll.load_examples(first, examples, use="evaluated")
  skipped += bad
  examples = [e for e in examples if e.path in clips]
  if not examples:
    raise enroll.NoUsableExamples(f"--signs={signs}: no usable clip to evaluate on" + (
        f" ({len(skipped) + len(left_out)} skipped or left out, each for the reason given)"
        if skipped or left_out else ""), skipped, left_out)
  glosses = list(first.glosses)
  true = [enroll.same_gloss(e.gloss, glosses) for e in examples]
  known = np.array([g in glosses for g in true])
  labels = np.array([glosses.index(g) if k else -1 for g, k in zip(true, known)])
  batch = [clips[e.path] for e in examples]
  probs = sum(p.predict_clips(batch) for p in predictors) / len(predictors)
  cal = first.run.calibration
  called = calibration.unknown_mask(probs, cal.get("unknown_threshold") if cal else None)
  summary = None
  if known.any():
    pk, lk = probs[known], labels[known]
    summary = metrics.summarize(np.argsort(-pk, -1, kind="stable")[:, :metrics.TOP_K], lk, len(glosses))
    summary["loss"] = float(-np.log(np.clip(pk[np.arange(len(lk)), lk], 1e-12, None)).mean())
    report = evaluation.build_report(summary, "signs", first.run.step, glosses)
    report["calibration"] = evaluation.calibration_report(pk, lk, float(first.run.model.temperature), cal)
    report["retrieval"] = metrics.retrieval(pk, lk)
    origins = by_origin(pk, lk, first.run.workdir)
    if origins:
      report["by_origin"] = origins
    report["weakest"] = _weakest(pk.argmax(-1), lk, glosses, first.run.workdir)
  else:
    report = {"split": "signs", "checkpoint_step": int(first.run.step), "num_samples": 0,
              "num_classes": len(glosses)}
  report["signs"] = os.path.abspath(signs)
  if not known.all():
    report["unknown_signs"] = _unknown_signs(probs, known, called, [g for g, k in zip(true, known) if not k], glosses,
                                             cal)
  report["skipped"], report["left_out"] = skipped, left_out
  if len(workdirs) > 1:
    report["runs"] = [os.path.abspath(w) for w in workdirs]
    report["checkpoint"] = checkpoint
  out_dir = out_dir or RunDir(workdirs[0]).eval_dir("signs", ensemble=len(workdirs) > 1)
  os.makedirs(out_dir, exist_ok=True)
  if summary is not None:
    report["path"] = evaluation.write_report(out_dir, report, summary, labels[known], glosses,
                                             run_name=_run_name(workdirs))
  else:  # nothing to plot: no plot of an earlier evaluation is left beside this report
    for name in evaluation.REPORT_FILES:
      if name.endswith(".png") and os.path.exists(os.path.join(out_dir, name)):
        os.remove(os.path.join(out_dir, name))
    report["path"] = os.path.join(out_dir, run_dir_lib.REPORT_FILE)
    atomic.write_json(report["path"], report)
  order = np.argsort(-probs, -1, kind="stable")[:, :metrics.TOP_K]
  atomic.write_json(os.path.join(out_dir, evaluation.PREDICTIONS_FILE), {
      e.path: {"gloss": glosses[int(o[0])], "true": g, "known": bool(k), "correct": bool(k and o[0] == y),
               "unknown": bool(u), "top_k": [{"gloss": glosses[int(c)], "prob": round(float(p[c]), 6)} for c in o]}
      for e, o, g, k, y, p, u in zip(examples, order, true, known, labels, probs, called)}, indent=1)
  return report


def _weakest(pred: np.ndarray, labels: np.ndarray, glosses, workdir: str) -> list[dict]:
  """The known signs with a clip answered wrong, the signs enrolled into the run (or refined) first, then by
  accuracy: {"gloss", "origin", "clips", "top1", "taken_for": {gloss: clips}, most often first}."""
  origin = [s["origin"] for s in enroll.vocabulary(workdir)]
  rows = []
  for c in np.unique(labels):
    mine = labels == c
    wrong = collections.Counter(glosses[p] for p in pred[mine & (pred != c)])
    if wrong:
      rows.append({"gloss": glosses[c], "origin": origin[c], "clips": int(mine.sum()),
                   "top1": float(np.mean(pred[mine] == c)), "taken_for": dict(wrong.most_common())})
  return sorted(rows, key=lambda r: (r["origin"] == "trained", r["top1"], -r["clips"], r["gloss"]))


def _not_enrolled_from(examples: list, workdir: str) -> tuple[list, list[str]]:
  """(the examples, the lines of those left out): an example that a sign of run `workdir` was enrolled from
  (enrolled.json keeps their hashes) is left out."""
  enrolled_from = {h: g for g, r in ((RunDir(workdir).enrolled() or {}).get("signs") or {}).items()
                   for h in r.get("hashes", ())}
  if not enrolled_from:
    return examples, []
  kept, left_out = [], []
  for e in examples:
    g = enrolled_from.get(enroll.example_hash(e))
    if g is None:
      kept.append(e)
    else:
      left_out.append(f"{e.path}: an example {g!r} was enrolled from (a sign scored on its own examples looks "
                      "better than it is); left out")
  return kept, left_out


def _unknown_signs(probs: np.ndarray, known: np.ndarray, called: np.ndarray, other: list[str], glosses,
                   cal: dict | None) -> dict:
  """report.json's "unknown_signs" for the clips (~known) of signs the run does not know (their glosses `other`;
  `called`: the clips the run calls unknown): the share it calls unknown at its threshold and at each
  REPORT_ACCEPTS share of its held-out known clips, the AUROC of its unknown score against the known clips (None
  without any), and what they were taken for."""
  scores = calibration.unknown_scores(probs)
  out = {"glosses": sorted(set(other)), "clips": int((~known).sum()),
         "unknown_threshold": cal.get("unknown_threshold") if cal else None,
         "called_unknown": float(called[~known].mean()),
         "auroc": calibration.auroc(scores[known], scores[~known]),
         "taken_for": dict(collections.Counter(glosses[c] for c in probs[~known].argmax(-1)).most_common())}
  if cal and cal.get("known_scores"):
    out["stricter"] = []
    for accept in evaluation.REPORT_ACCEPTS:
      t = calibration.threshold_for(cal, accept, "")
      out["stricter"].append({"accept": accept, "threshold": t,
                              "called_unknown": float((scores[~known] < t).mean())})
  return out


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
