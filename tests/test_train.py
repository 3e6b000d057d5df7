import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from asl_jax import config as config_lib
from asl_jax.errors import ConfigError, TrainingDivergedError
from asl_jax.runs.checkpoints import Checkpoints
from asl_jax.training import setup as run_lib, train
from conftest import REPO, tiny_config


def _rows(workdir):
  if not os.path.exists(os.path.join(workdir, "metrics.jsonl")):  # killed before its first row
    return []
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(l) for l in f]
  return [{k: v for k, v in r.items() if not k.endswith("_time_s")} for r in rows]


def _cli(data, workdir, env_extra=None, **overrides):
  """The train command line for tiny_config(data, **overrides)."""
  cfg = tiny_config(data, **overrides)
  args = [sys.executable, os.path.join(REPO, "scripts", "train.py"), f"--config={REPO}/configs/default.py",
          f"--workdir={workdir}"]
  defaults = config_lib.default_config()
  for k, v in cfg.items():
    if v != defaults[k]:
      args.append(f"--config.{k}={v}")
  env = {**os.environ, **(env_extra or {})}
  return args, env


def test_schedule_warmup_then_cosine():
  cfg = tiny_config({"data_dir": "", "subset": ""}, lr=1e-3, epochs=10, warmup_epochs=2, min_lr_ratio=0.0)
  sched = run_lib.make_schedule(cfg, steps_per_epoch=100)
  assert float(sched(0)) == pytest.approx(1e-3 / 200, rel=1e-4)  # the first batch already learns
  assert float(sched(199)) == pytest.approx(1e-3, rel=1e-5)  # end of warmup: the peak
  assert float(sched(199 + 400)) == pytest.approx(0.5e-3, rel=1e-3)  # half-way through the cosine
  assert float(sched(999)) == pytest.approx(0.0, abs=1e-9)  # the end
  assert float(sched(99)) == pytest.approx(0.5e-3, rel=1e-5)


# bfloat16 LSTM matmuls learning is in the heavy tier: test_models checks them against float32 in every tier.
@pytest.mark.parametrize("matmul_dtype,mixup_prob", [("float32", 0.0),
                                                     pytest.param("bfloat16", 0.0, marks=pytest.mark.heavy),
                                                     pytest.param("float32", 1.0, marks=pytest.mark.heavy)])
def test_learns_tiny_problem(small_data, tmp_path, matmul_dtype, mixup_prob):
  cfg = tiny_config(small_data, epochs=12, hidden_dim=48, dropout=0.1, lr=3e-3, num_frames=16,
                    lstm_matmul_dtype=matmul_dtype, mixup_prob=mixup_prob)
  result = train.train_and_evaluate(cfg, str(tmp_path / "run"))
  rows = _rows(tmp_path / "run")
  assert rows[-1]["train_loss"] < 0.7 * rows[0]["train_loss"]
  assert result["best_value"] > 0.4  # 12 classes: chance is 0.083
  report = json.load(open(result["test_report"]))
  assert report["per_instance"]["top1"] > 0.35 and report["per_instance"]["top5"] >= report["per_instance"]["top1"]
  for name in ("config.json", "label_mapping.json", "data_report.json", "metrics.jsonl"):
    assert os.path.exists(tmp_path / "run" / name)
  assert os.listdir(tmp_path / "run" / "tensorboard")
  mapping = json.load(open(tmp_path / "run" / "label_mapping.json"))
  assert mapping["0"] == "sign0000" and len(mapping) == 12


def test_determinism_and_seed(tiny_data, tmp_path):
  """The same config twice in one process gives the same metrics; another seed, dropout generator or mixup
  setting gives others. (A threefry run repeated in another process: test_killed_run_resumes_exactly, whose
  resumed run must equal an uninterrupted one.)"""
  runs = {}
  for name, seed, mixup, rng in (("a", 1, 0.0, "threefry"), ("c", 2, 0.0, "threefry"), ("m", 1, 1.0, "threefry"),
                                 ("r", 1, 0.0, "rbg"), ("s", 1, 0.0, "rbg")):
    train.train_and_evaluate(tiny_config(tiny_data, seed=seed, evaluate_test=False, mixup_prob=mixup,
                                         dropout_rng=rng), str(tmp_path / name))
    runs[name] = _rows(tmp_path / name)
  assert runs["r"] == runs["s"]  # reproducible in one process, with the generator that is the recipe's
  assert runs["a"] != runs["c"]
  assert all(abs(r["train_loss"] - a["train_loss"]) > 1e-4 for r, a in zip(runs["r"], runs["a"], strict=True))
  # Mixup draws from a key of its own, so it is the only difference between "a" and "m": a run that ignored
  # mixup_prob would log exactly the same training losses.
  assert len(runs["m"]) == len(runs["a"])
  for a, m in zip(runs["a"], runs["m"]):
    assert abs(m["train_loss"] - a["train_loss"]) > 1e-3


def test_supervised_contrastive_step_adds_the_weighted_term_over_two_views(tiny_data):
  """supcon_weight > 0: a step sees two views of its clips, counted both in the train top-1, and its loss is
  their cross-entropy plus the weight times their contrastive loss: from the same state and views, weights
  0.5 and 1 differ by half that loss, about log(2B - 1) for an untrained embedding (each anchor's positives
  no closer than the other 2B - 2 views)."""
  from asl_jax.data import input_pipeline  # pylint: disable=import-outside-toplevel
  from asl_jax.sharding import DataParallel  # pylint: disable=import-outside-toplevel
  parallel, loss = DataParallel(), {}
  for weight in (0.5, 1.0):
    cfg = tiny_config(tiny_data, supcon_weight=weight)
    setup = run_lib.prepare(cfg)
    state = run_lib.init_state(cfg, setup, parallel)
    data = parallel.replicate(input_pipeline.select(setup.packed, setup.train_idx))
    order = run_lib.epoch_order(cfg, setup.packed.labels[setup.train_idx], 0, setup.steps_per_epoch)
    step = train.make_train_step(cfg, setup.model, setup.steps_per_epoch, parallel)
    state, loss[weight] = step(state, data, order, None)
    sums = np.asarray(state.epoch_sums)
    assert sums[3] == 2 * cfg.batch_size and 0 <= sums[2] <= sums[3]  # both views counted
  supcon = 2 * (float(loss[1.0]) - float(loss[0.5]))
  assert 0.5 * np.log(2 * cfg.batch_size - 1) < supcon < 2 * np.log(2 * cfg.batch_size - 1), supcon


def test_class_weights_start_epoch_defers_the_weights(tiny_data, tmp_path):
  """Before class_weights_start_epoch the step is the unweighted one; from it on, the weighted one."""
  rows = {}
  for name, kw in (("plain", {"use_class_weights": False}), ("weighted", {"use_class_weights": True}),
                   ("deferred", {"use_class_weights": True, "class_weights_start_epoch": 1})):
    train.train_and_evaluate(tiny_config(tiny_data, evaluate_test=False, **kw), str(tmp_path / name))
    rows[name] = _rows(tmp_path / name)
  same_step = ("train_loss", "train_top1", "val_top1", "val_top5", "val_class_top1")
  assert rows["weighted"][0]["train_loss"] != rows["plain"][0]["train_loss"]  # the tiny set is imbalanced
  assert {k: rows["deferred"][0][k] for k in same_step} == {k: rows["plain"][0][k] for k in same_step}
  # Epoch 1 starts from the same state in both runs (epoch 0 was the same step), so only the weights differ.
  assert rows["deferred"][1]["train_loss"] != pytest.approx(rows["plain"][1]["train_loss"], rel=1e-3)


def test_resume_conflict_is_refused(tiny_data, tmp_path):
  train.train_and_evaluate(tiny_config(tiny_data, epochs=1, evaluate_test=False), str(tmp_path / "r"))
  with pytest.raises(ConfigError, match="hidden_dim: saved 32, now 64"):
    train.train_and_evaluate(tiny_config(tiny_data, epochs=1, hidden_dim=64), str(tmp_path / "r"))


def test_nan_loss_stops_with_message_and_no_checkpoint(tiny_data, tmp_path):
  cfg = tiny_config(tiny_data, lr=1e30, warmup_epochs=0, grad_clip=1e30, epochs=3, log_every=1)
  with pytest.raises(TrainingDivergedError, match="loss became nan.*No checkpoint had been saved yet"):
    train.train_and_evaluate(cfg, str(tmp_path / "nan"))
  assert Checkpoints(str(tmp_path / "nan")).latest_step() is None


@pytest.mark.parametrize("dropout_rng", ["threefry", pytest.param("rbg", marks=pytest.mark.heavy)])
def test_eight_devices_match_one(tiny_data, tmp_path, dropout_rng):
  """The same run on 1 and on 8 (virtual CPU) devices gives the same losses, with either dropout generator
  (the masks do not depend on how the batch is sharded)."""
  losses = {}
  for n in (1, 8):
    args, env = _cli(tiny_data, tmp_path / f"d{n}", {"XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"},
                     epochs=2, evaluate_test=False, dropout_rng=dropout_rng)
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{n} device(s)" in out.stderr
    losses[n] = _rows(tmp_path / f"d{n}")
  for r1, r8 in zip(losses[1], losses[8]):
    for k in ("train_loss", "train_top1", "val_loss", "val_top1", "val_class_top5"):
      assert r1[k] == pytest.approx(r8[k], rel=1e-4, abs=1e-5), k


def _wait_for_checkpoint(workdir, proc, timeout=240):
  latest = os.path.join(workdir, "checkpoints", "latest")
  t0 = time.time()
  while time.time() - t0 < timeout:
    if os.path.isdir(latest) and any(d.isdigit() for d in os.listdir(latest)):
      return
    if proc.poll() is not None:
      raise AssertionError(f"training ended before its first checkpoint: {proc.stderr.read()[-2000:]}")
    time.sleep(0.02)
  raise AssertionError("no checkpoint appeared")


RESUME_RUN = dict(epochs=8, evaluate_test=False)


@pytest.fixture(scope="module")
def uninterrupted(tiny_data, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("full")
  args, env = _cli(tiny_data, workdir, **RESUME_RUN)
  assert subprocess.run(args, env=env, capture_output=True, timeout=300).returncode == 0
  return _rows(workdir)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_killed_run_resumes_exactly(tiny_data, tmp_path, sig, uninterrupted):
  """A run killed after its first checkpoint (SIGKILL: no warning; SIGTERM: saves first) and restarted
  with the same command ends with exactly the metrics of an uninterrupted run."""
  overrides = RESUME_RUN
  args, env = _cli(tiny_data, tmp_path / "killed", **overrides)
  proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  _wait_for_checkpoint(str(tmp_path / "killed"), proc)
  proc.send_signal(sig)
  out, err = proc.communicate(timeout=120)
  if sig == signal.SIGKILL:
    assert proc.returncode == -signal.SIGKILL
  else:
    assert proc.returncode == 128 + sig, err[-2000:]
    assert f"{signal.Signals(sig).name}: saved a checkpoint at step" in err and "rerun the same command" in err
    assert "Traceback" not in err
  assert len(_rows(tmp_path / "killed")) < 8
  done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  assert "resuming from step" in done.stderr
  assert _rows(tmp_path / "killed") == uninterrupted


def test_cli_rejects_unknown_field_and_bad_data(tiny_data, tmp_path):
  args, env = _cli(tiny_data, tmp_path / "x", epochs=1)
  bad = subprocess.run(args + ["--config.hiden_dim=3"], env=env, capture_output=True, text=True, timeout=120)
  assert bad.returncode != 0 and "hiden_dim" in bad.stderr
  args, env = _cli({**tiny_data, "data_dir": str(tmp_path / "nowhere")}, tmp_path / "y", epochs=1)
  bad = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
  assert bad.returncode == 1
  assert bad.stderr.strip().splitlines()[-1].startswith("error: ") and "nowhere" in bad.stderr
  assert "Traceback" not in bad.stderr
  assert not os.path.exists(tmp_path / "y")  # nothing half-written


def test_stop_mid_epoch_resumes_exactly(tiny_data, tmp_path, monkeypatch):
  """A stop request in the middle of an epoch (what SIGTERM sets) saves the step and the running epoch
  sums; the resumed run equals an uninterrupted one."""
  cfg = tiny_config(tiny_data, epochs=3, evaluate_test=False)
  train.train_and_evaluate(cfg, str(tmp_path / "full"))

  class StopAfter(train.StopFlag):  # pylint: disable=protected-access
    checks = 0

    @property
    def requested(self):
      StopAfter.checks += 1
      # The loop asks once per step and once more at the end of an epoch: the 7th question comes after
      # the first step of epoch 2 (5 steps per epoch), i.e. mid-epoch at step 6.
      return StopAfter.checks >= 7

    @requested.setter
    def requested(self, value):
      pass

  monkeypatch.setattr(train, "StopFlag", StopAfter)
  result = train.train_and_evaluate(cfg, str(tmp_path / "stopped"))
  assert result["status"] == "interrupted"
  assert Checkpoints(str(tmp_path / "stopped")).latest_step() == 6
  assert len(_rows(tmp_path / "stopped")) == 1
  monkeypatch.undo()
  assert train.train_and_evaluate(cfg, str(tmp_path / "stopped"))["status"] == "done"
  assert _rows(tmp_path / "stopped") == _rows(tmp_path / "full")


def test_an_outlier_gloss_that_is_not_a_class_is_one_config_error(tiny_data):
  from asl_jax.training import setup as setup_lib  # pylint: disable=import-outside-toplevel
  with pytest.raises(ConfigError, match="config.outlier_gloss='no such sign': no such class in "):
    setup_lib.prepare(tiny_config(tiny_data, outlier_gloss="no such sign"))
  glosses = setup_lib.prepare(tiny_config(tiny_data)).packed.split.glosses
  assert setup_lib.prepare(tiny_config(tiny_data, outlier_gloss=glosses[3])).outlier == 3
