"""Evaluation, prediction and export on one tiny trained run."""

import importlib.util
import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from asl_jax.data import input_pipeline
from asl_jax.errors import CheckpointError, DataError
from asl_jax.evaluation import evaluator as evaluation
from asl_jax.extract import extract_python, landmarks_from_video
from asl_jax.runs import restore
from asl_jax.runs.checkpoints import Checkpoints
from asl_jax.serving import evaluate, predict
from asl_jax.sharding import DataParallel
from asl_jax.training import setup as run_lib, train
from conftest import REPO, tiny_config


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
  run = str(tmp_path_factory.mktemp("trained") / "run")
  cfg = tiny_config(tiny_data, epochs=3, gemma_features_dir=tiny_data["gemma_features_dir"],
                    fusion_type="attention", cache_dir=str(tmp_path_factory.mktemp("cache")))
  result = train.train_and_evaluate(cfg, run)
  # The end-of-training test report draws its reliability diagram, as asl-evaluate's does (its table names it).
  reliability = os.path.join(os.path.dirname(result["test_report"]), "reliability.png")
  assert open(reliability, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
  return {"workdir": run, "result": result, "data": tiny_data}


def test_report_keys_and_values(trained):
  report = evaluate.evaluate_workdir(trained["workdir"], "test")
  for key in ("split", "checkpoint_step", "num_samples", "num_classes", "per_instance", "per_class",
              "per_class_accuracy", "worst", "best"):
    assert key in report
  assert report["split"] == "test" and report["num_classes"] == 8
  # The accuracies, recomputed here from the clips' true glosses: top-1 from predictions.json, top-5 from
  # predict on the same clips (evaluate and predict prepare a clip the same way).
  data = trained["data"]
  split = json.load(open(os.path.join(data["data_dir"], data["subset"])))
  glosses = open(os.path.join(data["data_dir"], "wlasl_class_list.txt")).read().split("\n")
  gloss_of = dict(line.split("\t", 1) for line in glosses if line)
  truth = {vid: gloss_of[str(v["action"][0])] for vid, v in split.items() if v["subset"] == "test"}
  predicted = json.load(open(os.path.join(os.path.dirname(report["path"]), "predictions.json")))
  assert set(predicted) == set(truth) and report["num_samples"] == len(truth)
  hits = {vid: predicted[vid]["gloss"] == truth[vid] for vid in truth}
  assert all(predicted[v]["true"] == truth[v] and predicted[v]["correct"] == hits[v] for v in truth)
  assert report["per_instance"]["top1"] == pytest.approx(np.mean(list(hits.values())))
  by_class = {g: np.mean([hits[v] for v in truth if truth[v] == g]) for g in set(truth.values())}
  assert report["per_class_accuracy"] == pytest.approx(by_class)
  assert report["per_class"]["top1"] == pytest.approx(np.mean(list(by_class.values())))
  vids = sorted(truth)
  rows = predict.predict_files(trained["workdir"], [os.path.join(data["landmarks_dir"], f"{v}_landmarks.npy")
                                                     for v in vids], visual=data["gemma_features_dir"])
  top5 = [truth[v] in [r["gloss"] for r in row["top_k"]] for v, row in zip(vids, rows)]
  assert report["per_instance"]["top5"] == pytest.approx(np.mean(top5))
  assert [row["top_k"][0]["gloss"] for row in rows] == [predicted[v]["gloss"] for v in vids]
  for v, row in zip(vids, rows):  # its top-k and probabilities are predict's
    assert [t["gloss"] for t in predicted[v]["top_k"]] == [t["gloss"] for t in row["top_k"]]
    np.testing.assert_allclose([t["prob"] for t in predicted[v]["top_k"]], [t["prob"] for t in row["top_k"]],
                               atol=1e-5)
  acc = report["per_class_accuracy"]
  assert report["worst"][0]["accuracy"] <= report["best"][0]["accuracy"]
  # Same checkpoint, same numbers as the end-of-training test report.
  assert report["per_instance"] == trained["result"]["test"]["per_instance"]
  out = os.path.dirname(report["path"])
  for png in ("confusion_matrix.png", "per_class_accuracy.png", "training_curves.png"):
    data = open(os.path.join(out, png), "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_val_report_matches_training_validation(trained):
  report = evaluate.evaluate_workdir(trained["workdir"], "val", "best")
  rows = [json.loads(l) for l in open(os.path.join(trained["workdir"], "metrics.jsonl"))]
  best = max(rows, key=lambda r: r["val_top1"])
  assert report["per_instance"]["top1"] == pytest.approx(best["val_top1"])
  assert report["per_class"]["top5"] == pytest.approx(best["val_class_top5"])


def test_predict_agrees_with_evaluate(trained):
  evaluate.evaluate_workdir(trained["workdir"], "test")
  preds = json.load(open(os.path.join(trained["workdir"], "eval_test", "predictions.json")))
  data = trained["data"]
  vids = sorted(preds)[:4]
  files = [os.path.join(data["landmarks_dir"], v + "_landmarks.npy") for v in vids]
  rows = predict.predict_files(trained["workdir"], files, data["gemma_features_dir"], top_k=3)
  for v, row in zip(vids, rows):
    assert row["top_k"][0]["gloss"] == preds[v]["gloss"]
    probs = [t["prob"] for t in row["top_k"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6


def test_predict_bad_inputs(trained, tmp_path):
  data = trained["data"]
  wrong = tmp_path / "w_landmarks.npy"
  np.save(wrong, np.zeros((10, 170), np.float32))
  lm = os.path.join(data["landmarks_dir"], "00001_landmarks.npy")
  rows = predict.predict_files(trained["workdir"], [str(wrong), lm], data["gemma_features_dir"])
  assert rows[0] == {"file": str(wrong), "error": "shape (10, 170): expected (frames, 162)"}
  assert "top_k" in rows[1]  # a bad input fails alone
  [row] = predict.predict_files(trained["workdir"], [lm])
  assert "also needs visual features" in row["error"]
  with pytest.raises(CheckpointError, match="no checkpoints directory"):
    os.makedirs(tmp_path / "empty")
    for name in ("config.json", "label_mapping.json", "data_report.json"):
      with open(os.path.join(trained["workdir"], name)) as src, open(tmp_path / "empty" / name, "w") as dst:
        dst.write(src.read())
    restore.load_run(str(tmp_path / "empty"))
  with pytest.raises(CheckpointError, match="no checkpoint at step 999"):
    restore.load_run(trained["workdir"], "999")


def test_evaluate_cli(trained):
  out = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "evaluate.py"),
                        f"--workdir={trained['workdir']}", "--split=val"], capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "per-instance" in out.stdout and "eval_val/report.json" in out.stdout
  bad = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "evaluate.py"), "--workdir=/nonexistent"],
                       capture_output=True, text=True, timeout=120)
  assert bad.returncode == 1 and "error: --workdir=/nonexistent: no such run directory" in bad.stderr


@pytest.mark.skipif(not (importlib.util.find_spec("mediapipe") or extract_python()),
                    reason="no extraction environment (`make extract-env`, which `make test` builds)")
def test_predict_on_a_video_uses_the_extraction_environment(tiny_data, tmp_path):
  run = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config(tiny_data, epochs=1, cache_dir=str(tmp_path / "cache")), run)
  video = os.path.join(REPO, "tests", "data", "test_video.mp4")
  lm = landmarks_from_video(video, "seed162")  # mediapipe in a subprocess when this env lacks it
  assert lm.shape == (58, 162) and (lm[:, 126:] != 0).any(1).all()  # the pose is found in every frame
  row, = predict.predict_files(run, videos=[video], top_k=3)
  predictor = predict.Predictor(run)
  expected = predictor.predict_clips([predictor.load_clip(lm)])[0]
  assert row["file"] == video and row["top_k"][0]["class"] == int(np.argmax(expected))
  assert row["top_k"][0]["prob"] == pytest.approx(float(expected.max()), rel=1e-5)
  with pytest.raises(DataError, match="nothing.mp4: video not found"):
    landmarks_from_video(str(tmp_path / "nothing.mp4"))


@pytest.mark.skipif(not (importlib.util.find_spec("mediapipe") or extract_python()),
                    reason="no extraction environment (`make extract-env`, which `make test` builds)")
def test_videos_are_extracted_in_a_process_a_core_and_each_failure_is_its_own(tmp_path, monkeypatch):
  """Enrolment and predict read several videos at once: one extraction process a core, not a video (MediaPipe's
  start is paid once a process), the same landmarks as one at a time, and a broken or missing video an error of
  its own."""
  from asl_jax import extract  # pylint: disable=import-outside-toplevel
  video = os.path.join(REPO, "tests", "data", "test_video.mp4")
  broken = tmp_path / "broken.mp4"
  broken.write_bytes(open(video, "rb").read()[:5000])
  started, popen = [], subprocess.Popen
  monkeypatch.setattr(extract.subprocess, "Popen", lambda *a, **k: started.append(a) or popen(*a, **k))
  seen = []
  got = extract.landmarks_from_videos([video, str(broken), str(tmp_path / "none.mp4"), video], "seed162",
                                      progress=seen.append)
  # Three videos exist: one process a core (at most MAX_EXTRACT_WORKERS), never one a video beyond that.
  assert len(started) == (0 if importlib.util.find_spec("mediapipe") else
                          min(3, os.cpu_count() or 1, extract.MAX_EXTRACT_WORKERS))
  assert seen == sorted(seen) and seen[-1] == 4
  np.testing.assert_array_equal(got[0], got[3])
  assert got[0].shape == (58, 162)
  assert isinstance(got[1], DataError) and str(got[1]).startswith(f"{broken}: ") and "no frames could be read" in str(
      got[1])
  assert isinstance(got[2], DataError) and str(got[2]) == f"{tmp_path / 'none.mp4'}: video not found"


def test_fit_head_weights_gives_a_head_without_signal_no_weight():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 6, 200)
  onehot = np.eye(6)[labels]
  informative = np.log(0.7 * onehot + 0.3 / 6)  # right 75 % of the time
  noise = np.log(rng.dirichlet(np.full(6, 0.3), 200))  # confident and unrelated to the labels
  heads = np.stack([informative, informative, noise])[None]  # (V=1, K=3, N, C)
  fitted = evaluation.fit_head_weights(heads, labels)
  assert fitted["weights"][2] == 0 and sum(fitted["weights"][:2]) > 0
  assert fitted["val_loss"] < fitted["equal_val_loss"]
  assert fitted["val_loss"] == pytest.approx(evaluation.combined_nll(heads, labels, fitted["weights"]))


def test_fitted_head_weights_are_saved_and_used_by_every_application(tiny_data, tmp_path):
  """A hybrid run with per-stream heads fits their weights on val after training; the fitting objective is
  exactly the loss of the prediction made with them (flip TTA included); evaluate, predict and the export
  restore them."""
  run = str(tmp_path / "run")
  cfg = tiny_config(tiny_data, epochs=2, gemma_features_dir=tiny_data["gemma_features_dir"],
                    visual_stream="linear", visual_standardize=True, aux_loss_weight=0.5, fit_head_weights=True,
                    tta_flip=True, cache_dir=str(tmp_path / "cache"))
  result = train.train_and_evaluate(cfg, run)
  fitted = json.load(open(os.path.join(run, "head_weights.json")))
  assert fitted["heads"] == ["fused", "landmarks", "visual"] and len(fitted["weights"]) == 3
  assert fitted["val_loss"] <= fitted["equal_val_loss"] + 1e-9
  report = json.load(open(result["test_report"]))
  assert report["head_weights"] == dict(zip(fitted["heads"], fitted["weights"]))
  assert fitted["step"] == report["checkpoint_step"]

  restored = restore.load_run(run)
  assert restored.model.head_weights == tuple(fitted["weights"])
  setup = run_lib.prepare(restored.config)
  parallel = DataParallel()
  data = input_pipeline.select(setup.packed, setup.val_idx)
  labels = setup.packed.labels[setup.val_idx]
  evaluator = evaluation.Evaluator.from_config(restored.config, restored.model, parallel,
                                               visual_norm=restored.visual_norm)
  heads = evaluator.head_log_probs(restored.params, data)
  assert heads.shape == (2, 3, len(labels), 8)  # two views (flip TTA), three heads
  # The run's calibration divides the combination by its temperature (calibration.json): without it, the
  # probabilities are exactly the head weights' product of experts.
  assert restored.model.temperature == json.load(open(os.path.join(run, "calibration.json")))["temperature"]
  for weights in (fitted["weights"], (1.0, 0.5, 0.0), (0.0, 0.0, 2.0)):
    model = restored.model.clone(head_weights=tuple(weights), temperature=1.0)
    probs = evaluation.Evaluator.from_config(restored.config, model, parallel, visual_norm=restored.visual_norm
                                             ).probabilities(restored.params, data)
    nll = float(-np.log(probs[np.arange(len(labels)), labels]).mean())
    assert nll == pytest.approx(evaluation.combined_nll(heads, labels, weights), rel=1e-4)
  # The fitted weights are the grid's minimiser of exactly that loss (not merely no worse than equal weights).
  grid = [w for w in itertools.product(evaluation.HEAD_WEIGHT_GRID, repeat=3) if any(w)]
  losses = {w: evaluation.combined_nll(heads, labels, w) for w in grid}
  assert fitted["val_loss"] == pytest.approx(min(losses.values()), rel=1e-5)
  assert losses[tuple(fitted["weights"])] == pytest.approx(min(losses.values()), rel=1e-5)
  # They belong to the best checkpoint's step: another step is refused, not silently given them.
  other = next(s for s in Checkpoints(run, read_only=True).all_steps("latest") if s != fitted["step"])
  with pytest.raises(CheckpointError, match=f"fitted for the best checkpoint \\(step {fitted['step']}\\), not for "
                     f"step {other}: use --checkpoint=best"):
    restore.load_run(run, str(other))
  # evaluate (through restore) reproduces the training test report, made with the fitted weights.
  assert evaluate.evaluate_workdir(run, "test")["per_instance"] == result["test"]["per_instance"]
  # Switched off for the finished run: tested again with equal weights, which restore then uses too.
  cfg.fit_head_weights = False
  again = train.train_and_evaluate(cfg, run)
  assert "head_weights" not in json.load(open(again["test_report"]))
  assert restore.load_run(run).model.head_weights == (1.0, 1.0, 1.0)
