"""The run directory (asl_jax/runs/run_dir.py): a run written by the code before the package layout
(tests/data/run_before_packages, made at commit f5d05ef with its expected outputs beside it) is read, predicts,
evaluates and resumes exactly as then; RunDir's checked reads."""

import json
import os
import shutil

import numpy as np
import pytest

from asl_jax.data.synthetic import make_synthetic
from asl_jax.errors import CheckpointError
from asl_jax.runs import restore, run_dir
from asl_jax.runs.run_dir import InputSpec, RunDir
from asl_jax.serving import evaluate, predict
from asl_jax.training import train
from conftest import REPO

FIXTURE = os.path.join(REPO, "tests", "data", "run_before_packages")


@pytest.fixture(scope="module")
def old_run(tmp_path_factory):
  """A copy of the old run and the synthetic data it was trained on, made again from the same seed."""
  tmp = tmp_path_factory.mktemp("old_run")
  expected = json.load(open(FIXTURE + ".expected.json"))
  s = expected["synthetic"]
  data = make_synthetic(str(tmp / "data"), num_classes=s["num_classes"], seed=s["seed"], train_scale=s["train_scale"])
  shutil.copytree(FIXTURE, tmp / "run")
  return {"workdir": str(tmp / "run"), "data": data, "expected": expected,
          "overrides": {"data_dir": data["data_dir"], "landmarks_dir": data["landmarks_dir"]}}


def test_an_old_run_predicts_as_it_did(old_run):
  e = old_run["expected"]
  p = predict.Predictor(old_run["workdir"])
  clip = p.load_clip(os.path.join(old_run["data"]["landmarks_dir"], f"{e['clip']}_landmarks.npy"))
  np.testing.assert_allclose(p.predict_clips([clip])[0], e["probs"], atol=1e-5)
  assert p.run.step == e["step"] and p.run.unknown_threshold is not None


def test_an_old_run_evaluates_as_it_did(old_run):
  report = evaluate.evaluate_workdir(old_run["workdir"], "val", data_overrides=old_run["overrides"])
  assert report["per_instance"]["top1"] == pytest.approx(old_run["expected"]["val_top1"])
  assert report["path"] == os.path.join(old_run["workdir"], "eval_val", "report.json")
  assert os.path.isfile(os.path.join(old_run["workdir"], "eval_val", "training_curves.png"))


def test_an_old_run_resumes(old_run, tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(old_run["workdir"], workdir)
  before = RunDir(workdir).metrics()
  config = restore.load_config(workdir)
  config.data_dir, config.landmarks_dir = old_run["overrides"]["data_dir"], old_run["overrides"]["landmarks_dir"]
  config.epochs = 3
  result = train.train_and_evaluate(config, workdir)
  rows = RunDir(workdir).metrics()
  assert result["status"] == "done" and [r["epoch"] for r in rows] == [1, 2, 3]
  assert rows[:2] == before  # the old epochs kept as they were, the new one appended


def test_run_dir_reads_the_files_of_a_run(old_run):
  run = RunDir(old_run["workdir"])
  assert run.glosses() == tuple(json.load(open(run.file(run_dir.LABELS_FILE))).values())
  assert run.input_spec() == InputSpec("seed162", 162, 0, True, False)
  assert 0 < run.calibration()["temperature"] and run.has_checkpoints() and run.is_run_config()
  assert run.test_report(old_run["expected"]["step"])["checkpoint_step"] == old_run["expected"]["step"]
  assert run.test_report(old_run["expected"]["step"] + 1) is None  # a report of another checkpoint
  assert run.enrolled() is None and run.head_weights(3) is None


@pytest.mark.parametrize("name, content, expected", [
    (run_dir.LABELS_FILE, '{"0": "a", "2": "b"}', "every label once"),
    (run_dir.CALIBRATION_FILE, '{"temperature": -1}', "temperature must be > 0"),
    (run_dir.CONFIG_FILE, "[1, 2]", "expected a JSON dict"),
    (run_dir.INPUT_SPEC_FILE, "{}", "the run's input format is unknown"),
])
def test_a_damaged_run_file_is_one_error_naming_it(old_run, tmp_path, name, content, expected):
  workdir = tmp_path / "run"
  shutil.copytree(old_run["workdir"], workdir)
  (workdir / name).write_text(content)
  run = RunDir(str(workdir))
  read = {run_dir.LABELS_FILE: run.glosses, run_dir.CALIBRATION_FILE: run.calibration,
          run_dir.CONFIG_FILE: run.config_dict, run_dir.INPUT_SPEC_FILE: run.input_spec}[name]
  with pytest.raises(CheckpointError, match=expected) as e:
    read()
  assert str(workdir / name) in str(e.value)


def test_a_foreign_config_is_refused_before_anything_is_written(tmp_path):
  (tmp_path / run_dir.CONFIG_FILE).write_text('{"model": "someone else\'s"}')
  with pytest.raises(Exception, match="not an asl_jax run's config"):
    run_dir.check_writable(str(tmp_path))
  assert sorted(os.listdir(tmp_path)) == [run_dir.CONFIG_FILE]
