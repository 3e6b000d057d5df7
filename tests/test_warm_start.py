"""Continuing a run (epochs may grow, with the schedule re-planned from the current step) and starting
from a trained one (init_from: the encoder loaded, the classifier new when the classes differ)."""

import json
import os

import jax
import numpy as np
import pytest

from asl_jax import models
from asl_jax.errors import ConfigError
from asl_jax.runs import restore, run_dir
from asl_jax.training import setup as run_lib, train, warm_start
from conftest import tiny_config


def _rows(wd):
  return [json.loads(line) for line in open(os.path.join(wd, "metrics.jsonl"))]


def test_epochs_grow_on_a_finished_run(tiny_data, tmp_path, capsys):
  wd = str(tmp_path / "run")
  short = train.train_and_evaluate(tiny_config(tiny_data, epochs=2, warmup_epochs=1), wd)
  first = _rows(wd)
  longer = tiny_config(tiny_data, epochs=4, warmup_epochs=1)
  out = train.train_and_evaluate(longer, wd)
  rows = _rows(wd)
  assert [r["epoch"] for r in rows] == [1, 2, 3, 4] and rows[:2] == first
  assert "epochs 2 -> 4: continuing from epoch 2" in capsys.readouterr().err
  steps = rows[0]["step"]
  schedule = run_lib.make_schedule(longer, steps)
  for r in rows[2:]:  # the 4-epoch plan's learning rate from the resumed step on
    assert r["lr"] == pytest.approx(float(schedule(r["step"] - 1)), rel=1e-5)
  assert rows[2]["lr"] > 0 and first[-1]["lr"] == 0.0
  assert out["status"] == "done" and json.load(open(os.path.join(wd, "config.json")))["epochs"] == 4
  assert short["test_report"] == out["test_report"]
  with pytest.raises(ConfigError, match="has trained 4 epochs already; epochs can grow, or shrink to no fewer than 4"):
    train.train_and_evaluate(tiny_config(tiny_data, epochs=3, warmup_epochs=1), wd)
  assert json.load(open(os.path.join(wd, "config.json")))["epochs"] == 4  # the refused config was not written


def _other_classes(data, tmp_path):
  """The same clips, classes renamed: another vocabulary of the same size."""
  d = tmp_path / "renamed"
  d.mkdir()
  split = json.load(open(os.path.join(data["data_dir"], data["subset"])))
  json.dump(split, open(d / data["subset"], "w"))
  lines = open(os.path.join(data["data_dir"], "wlasl_class_list.txt")).read().splitlines()
  (d / "wlasl_class_list.txt").write_text("\n".join(f"{l.split(chr(9))[0]}\tother_{i}" for i, l in enumerate(lines)))
  return {**data, "data_dir": str(d), "landmarks_dir": os.path.join(data["data_dir"], "landmarks")}


def test_init_from_loads_the_encoder_and_a_new_classifier(tiny_data, tmp_path):
  src = str(tmp_path / "src")
  train.train_and_evaluate(tiny_config(tiny_data, epochs=2, evaluate_test=False), src)
  trained = restore.load_run(src)
  other = _other_classes(tiny_data, tmp_path)
  cfg = tiny_config(other, landmarks_dir=other["landmarks_dir"], epochs=1, evaluate_test=False, init_from=src)
  setup = run_lib.prepare(cfg)
  fresh = jax.device_get(run_lib.create_state(cfg, setup.model, 0, setup.steps_per_epoch,
                                              jax.random.fold_in(jax.random.key(cfg.seed), 0)).params)
  params, report = warm_start.warm_start(cfg, fresh, setup.packed.split.glosses)
  assert not report["same_classes"] and sorted(report["new"]) == ["head/logits/bias", "head/logits/kernel"]
  flat, theirs, init = (models.named_leaves(t) for t in (params, trained.params, fresh))
  for name in report["loaded"]:
    np.testing.assert_array_equal(flat[name], theirs[name])
  for name in report["new"]:
    np.testing.assert_array_equal(flat[name], init[name])
  assert any(n.startswith("landmark_encoder") for n in report["loaded"])
  # Through training: the report is written and printed; the same classes load the classifier too.
  wd = str(tmp_path / "tuned")
  train.train_and_evaluate(cfg, wd)
  saved = json.load(open(os.path.join(wd, run_dir.INIT_FILE)))
  assert saved["new"] == report["new"] and saved["init_from"] == src
  same = tiny_config(tiny_data, epochs=1, evaluate_test=False, init_from=src)
  train.train_and_evaluate(same, str(tmp_path / "same"))
  assert json.load(open(tmp_path / "same" / run_dir.INIT_FILE))["new"] == []


def test_init_from_another_shape_names_the_fields(tiny_data, tmp_path):
  src = str(tmp_path / "src")
  train.train_and_evaluate(tiny_config(tiny_data, epochs=1, evaluate_test=False), src)
  with pytest.raises(ConfigError, match="hidden_dim: 32 there, 64 here"):
    train.train_and_evaluate(tiny_config(tiny_data, epochs=1, hidden_dim=64, init_from=src), str(tmp_path / "x"))
  with pytest.raises(Exception, match="workdir not found"):
    train.train_and_evaluate(tiny_config(tiny_data, epochs=1, init_from=str(tmp_path / "nope")),
                             str(tmp_path / "y"))
