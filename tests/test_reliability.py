"""What asl_jax guarantees when inputs are bad, jobs are killed or disks fill up.

Read this file as the list of guarantees; each is proven by the test named beside it (here or in the
module's own test file).

Bad inputs: one clear message naming the file or field, exit status 1 from the CLI, no partial outputs
  - missing data dir / split file, malformed json, unknown subset, bad class ids, a class with no training
    clips, truncated / non-npy / object / wrong-ndim / zero-frame / NaN / mixed-dimension files, a visual
    file missing beside its landmarks:        test_cli_bad_input (below), test_splits.py, test_features.py,
                                               test_packed.py
  - unknown config fields:                     test_train.py::test_cli_rejects_unknown_field_and_bad_data
  - a workdir whose saved config conflicts:    test_train.py::test_resume_conflict_is_refused
  - NaN values can instead be dropped with a report (on_bad_file=skip): test_packed.py::test_nan_file_error_and_skip
Faults
  - SIGKILL during an epoch -> the restarted run ends bit-identical:  test_train.py::test_killed_run_resumes_exactly
  - SIGTERM -> checkpoint, clean exit, exact resume (also mid-epoch): same test, test_stop_mid_epoch_resumes_exactly
  - killed during a checkpoint write -> the previous one restores:    test_interrupted_checkpoint_write
  - killed at any point of the end-of-epoch sequence (during / between the latest and best saves, before
    metrics.jsonl, during the test evaluation) -> a rerun ends exactly as an uninterrupted run:
                                                                       test_killed_anywhere_in_the_save_sequence
  - a lost latest/<step> folder (best newer than latest) -> resumes:   test_lost_latest_checkpoint_resumes
  - two trainings on one workdir -> the second exits at once naming the holder; a stale lock never blocks:
                                                                       test_workdir_lock
  - SIGINT (Ctrl-C) like SIGTERM, exit 130 / 143, no traceback:       test_train.py::test_killed_run_resumes_exactly
  - disk full during a save -> clear error, previous checkpoint intact: test_disk_full_during_save
  - NaN/Inf loss -> stops with a message, no bad checkpoint:          test_train.py::test_nan_loss_stops_with_message_and_no_checkpoint
Determinism
  - same config and seed -> identical metrics.jsonl; another seed differs: test_train.py::test_determinism_and_seed
  - 1 or 8 devices -> the same losses:                                 test_train.py::test_eight_devices_match_one
Load
  - evaluation streams host data to the devices in chunks, same results as on device: test_streamed_evaluation
  - the packed cache is memory-mapped, not copied:                     test_packed.py::test_cache_hit_is_memory_mapped_and_invalidated
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from asl_jax.data import input_pipeline
from asl_jax.errors import CheckpointError
from asl_jax.evaluation import evaluator as evaluation
from asl_jax.runs import run_dir
from asl_jax.runs.checkpoints import Checkpoints
from asl_jax.sharding import DataParallel
from asl_jax.training import setup as run_lib, train
from conftest import REPO, tiny_config


def _train_cmd(data_dir, subset, workdir, *extra):
  return [sys.executable, os.path.join(REPO, "scripts", "train.py"), f"--config={REPO}/configs/default.py",
          f"--workdir={workdir}", f"--config.data_dir={data_dir}", f"--config.subset={subset}",
          "--config.hidden_dim=16", "--config.epochs=1", "--config.warmup_epochs=0", "--config.batch_size=8",
          "--config.progress_bar=False",
          *extra]


def _break_first_clip(d, how):
  lm = os.path.join(d, "landmarks")
  path = os.path.join(lm, sorted(f for f in os.listdir(lm) if f.endswith("_landmarks.npy"))[0])
  if how == "truncated":
    data = open(path, "rb").read()
    open(path, "wb").write(data[:len(data) // 2])
  elif how == "not_npy":
    open(path, "w").write("this is not an array")
  elif how == "object":
    np.save(path, np.array([{"x": 1}], dtype=object), allow_pickle=True)
  elif how == "ndim":
    np.save(path, np.zeros((4, 54, 3), np.float32))
  elif how == "zero_frames":
    np.save(path, np.zeros((0, 162), np.float32))
  elif how == "nan":
    a = np.load(path)
    a[0, 0] = np.nan
    np.save(path, a)
  elif how == "mixed_dims":
    np.save(path, np.zeros((10, 170), np.float32))
  return os.path.basename(path)


def _edit_split(d, subset, how):
  path = os.path.join(d, subset)
  split = json.load(open(path))
  first = sorted(split)[0]
  if how == "malformed_json":
    open(path, "w").write(json.dumps(split)[:-10])
    return subset
  if how == "unknown_subset":
    split[first]["subset"] = "validation"
  elif how == "negative_class":
    split[first]["action"][0] = -3
  elif how == "class_not_in_list":
    split[first]["action"][0] = 5000
  elif how == "class_without_training":
    for v in split.values():
      if v["action"][0] == 0 and v["subset"] == "train":
        v["subset"] = "test"
  json.dump(split, open(path, "w"))
  return subset


CASES = {
    "truncated": ("npy", "truncated"), "not_npy": ("npy", "not a readable .npy"),
    "object": ("npy", "Python objects"), "ndim": ("npy", "expected 2-D"), "zero_frames": ("npy", "zero frames"),
    "nan": ("npy", "NaN/Inf"), "mixed_dims": ("npy", "have the wrong shape"),  # metadata says 162
    "malformed_json": ("split", "not valid JSON"), "unknown_subset": ("split", "unknown subset 'validation'"),
    "negative_class": ("split", "negative class id"), "class_not_in_list": ("split", "not in the class list"),
    "class_without_training": ("split", "have no clip in the training subsets"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cli_bad_input(tiny_data, tmp_path, case):
  d = str(tmp_path / "data")
  shutil.copytree(tiny_data["data_dir"], d)
  kind, expected = CASES[case]
  named = _break_first_clip(d, case) if kind == "npy" else _edit_split(d, tiny_data["subset"], case)
  workdir = tmp_path / "run"
  out = subprocess.run(_train_cmd(d, tiny_data["subset"], workdir, "--config.cache_dir=none"), capture_output=True,
                       text=True, timeout=120)
  assert out.returncode == 1, out.stderr[-1500:]
  err = out.stderr.strip()
  assert "Traceback" not in err
  # Progress lines ("loading the data: ...") may come first; then the one error (its file listing below it).
  assert sum(line.startswith("error: ") for line in err.splitlines()) == 1, err[-1500:]
  error = err[err.index("error: "):]
  assert expected in error and named in error
  assert not workdir.exists()  # nothing half-written


def test_missing_data_dir_and_split_file(tmp_path):
  for data_dir, subset, expected in ((tmp_path / "none", "nslt_100.json", "data_dir does not exist"),
                                     (tmp_path, "nslt_100.json", "split file not found")):
    out = subprocess.run(_train_cmd(data_dir, subset, tmp_path / "run"), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 1 and expected in out.stderr and "Traceback" not in out.stderr


class _StopAtFirstChance(train.StopFlag):  # pylint: disable=protected-access
  """A stop request that is always pending: the run saves and returns at the end of its first step."""

  @property
  def requested(self):
    return True

  @requested.setter
  def requested(self, value):
    pass


def _rows(workdir):
  rows = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  return [{k: v for k, v in r.items() if not k.endswith("_time_s")} for r in rows]


def test_interrupted_checkpoint_write(tiny_data, tmp_path, monkeypatch):
  """Orbax writes into a temporary directory and renames it when complete: what a kill mid-save leaves
  behind is ignored, the previous checkpoint restores and training resumes from it exactly."""
  cfg = tiny_config(tiny_data, epochs=3, evaluate_test=False)
  train.train_and_evaluate(cfg, str(tmp_path / "full"))
  workdir = str(tmp_path / "run")
  with monkeypatch.context() as m:
    m.setattr(train, "StopFlag", _StopAtFirstChance)
    assert train.train_and_evaluate(cfg, workdir)["status"] == "interrupted"
  good = Checkpoints(workdir).latest_step()
  assert good == 1
  partial = os.path.join(workdir, "checkpoints", "latest", f"{good + 5}.orbax-checkpoint-tmp")
  os.makedirs(os.path.join(partial, "state"))
  with open(os.path.join(partial, "state", "garbage"), "wb") as f:
    f.write(b"\0" * 100)
  assert Checkpoints(workdir).latest_step() == good
  assert train.train_and_evaluate(cfg, workdir)["status"] == "done"
  assert _rows(workdir) == _rows(tmp_path / "full")


def test_disk_full_during_save(tiny_data, tmp_path, monkeypatch):
  mount = tmp_path / "small_disk"
  mount.mkdir()
  if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16M", "tmpfs", str(mount)], capture_output=True).returncode:
    pytest.skip("cannot mount a tmpfs here (needs root)")
  try:
    workdir = str(mount / "run")
    cfg = tiny_config(tiny_data, epochs=3, evaluate_test=False)
    with monkeypatch.context() as m:
      m.setattr(train, "StopFlag", _StopAtFirstChance)
      train.train_and_evaluate(cfg, workdir)
    good = Checkpoints(workdir).latest_step()
    filler = mount / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True)  # fills the disk
    with pytest.raises((CheckpointError, OSError)) as e:
      train.train_and_evaluate(cfg, workdir)
    assert "No space left" in str(e.value) or getattr(e.value, "errno", 0) == 28, str(e.value)
    filler.unlink()
    assert Checkpoints(workdir).latest_step() == good  # the previous checkpoint is intact and restores
    assert train.train_and_evaluate(cfg, workdir)["status"] == "done"
  finally:
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_streamed_evaluation(tiny_data, tmp_path):
  """Host (memory-mapped) data is evaluated chunk by chunk with the same result as device data."""
  cfg = tiny_config(tiny_data, epochs=1, evaluate_test=False)
  setup = run_lib.prepare(cfg)
  parallel = DataParallel()
  state = run_lib.init_state(cfg, setup, parallel)
  idx = np.arange(len(setup.packed.labels))
  host = input_pipeline.select(setup.packed, idx)
  ev = evaluation.Evaluator(setup.model, cfg.num_frames, parallel, batch_size=4)
  on_device = ev.predict(state.params, parallel.replicate(host))
  streamed = ev.predict(state.params, host, chunk_batches=2)  # 8 clips per chunk
  np.testing.assert_array_equal(on_device[0], streamed[0])
  assert on_device[1] == pytest.approx(streamed[1], rel=1e-6)
  # A split padded to a larger clip count (val and test share one compiled step so) evaluates as itself.
  part = idx[3:10]
  labels = setup.packed.labels[part]
  alone = ev.evaluate(state.params, parallel.replicate(input_pipeline.select(setup.packed, part)), labels,
                      setup.packed.num_classes)
  padded_idx = input_pipeline.padded_indices(part, 13)
  assert len(padded_idx) == 13 and (padded_idx[7:] == part[0]).all()
  padded = ev.evaluate(state.params, parallel.replicate(input_pipeline.select(setup.packed, padded_idx)), labels,
                       setup.packed.num_classes)
  np.testing.assert_array_equal(alone["top_k"], padded["top_k"])
  assert padded["loss"] == pytest.approx(alone["loss"], rel=1e-6) and len(padded["top_k"]) == 7


class _Killed(BaseException):
  """Stands for a kill -9 at a point of the save sequence: nothing after it runs (BaseException, so no
  handler in asl_jax catches it)."""


def _final_state(workdir):
  report = json.load(open(os.path.join(workdir, "eval_test", "report.json")))
  return _rows(workdir), report["per_instance"], report["checkpoint_step"]


@pytest.fixture(scope="module")
def reference_run(tiny_data, tmp_path_factory):
  cfg = tiny_config(tiny_data, epochs=4, cache_dir="none")
  workdir = str(tmp_path_factory.mktemp("reference") / "run")
  train.train_and_evaluate(cfg, workdir)
  return cfg, _final_state(workdir)


@pytest.mark.parametrize("point,epoch,every", [
    ("latest_save", 1, 1), ("between_saves", 1, 1), ("best_save", 1, 1), ("after_saves", 1, 1),
    ("after_saves", 3, 1), ("test_evaluation", 3, 1),
    # latest every 3 epochs (epochs 3 and 4), the best weights written just before it: killed in the first
    # best save (no latest yet), in the best save of epoch 3 or later, between best and latest of the
    # last epoch, after the last save sequence
    ("best_save", 0, 3), ("best_save", 2, 3), ("between_saves", 1, 3), ("after_saves", 1, 3)])
def test_killed_anywhere_in_the_save_sequence(reference_run, tmp_path, monkeypatch, point, epoch, every):
  """Fault injection at each point of the end-of-epoch sequence (latest save, best save, metrics row) and
  during the final test evaluation, with latest saved every epoch or every 3; the rerun of the same call
  ends with the reference run's metrics."""
  cfg, reference = reference_run
  cfg = cfg.copy_and_resolve_references()
  cfg.checkpoint_every = every
  workdir = str(tmp_path / "run")
  steps = len(reference[0]) and reference[0][0]["step"]  # steps per epoch
  real_save = Checkpoints.save

  def save(self, kind, step, state, info):
    if point == f"{kind}_save" and step >= steps * (epoch + 1):  # the first such save at or after `epoch`
      partial = os.path.join(self.workdir, "checkpoints", kind, f"{step}.orbax-checkpoint-tmp-1234")
      os.makedirs(os.path.join(partial, "state"), exist_ok=True)  # what a kill mid-write leaves
      raise _Killed(point)
    real_save(self, kind, step, state, info)

  calls = {"n": 0}

  def fault(name):
    if name == point:
      calls["n"] += 1
      if name == "test_evaluation" or calls["n"] == epoch + 1:
        raise _Killed(point)

  with monkeypatch.context() as m:
    m.setattr(Checkpoints, "save", save)
    m.setattr(run_dir, "crash_point", fault)
    with pytest.raises(_Killed):
      train.train_and_evaluate(cfg, workdir)
  assert train.train_and_evaluate(cfg, workdir)["status"] == "done"
  assert _final_state(workdir) == reference


def test_old_behaviour_and_sparse_validation(reference_run, tmp_path):
  """Synchronous saves of the whole state (the behaviour before background saves) and another eval batch
  give the reference run's metrics and test report exactly; validating every 2nd epoch leaves training
  unchanged, validates epochs 2 and 4 with the reference's values, and picks the best among them."""
  cfg, reference = reference_run
  old = cfg.copy_and_resolve_references()
  old.async_checkpoints, old.best_checkpoint, old.eval_batch_size = False, "state", 4
  train.train_and_evaluate(old, str(tmp_path / "old"))
  rows, per_instance, step = _final_state(str(tmp_path / "old"))
  assert (per_instance, step) == reference[1:]
  for r, ref in zip(rows, reference[0], strict=True):  # the loss sums its batches in another order
    assert r["val_loss"] == pytest.approx(ref["val_loss"], rel=1e-6)
    assert {**r, "val_loss": 0} == {**ref, "val_loss": 0}
  sparse = cfg.copy_and_resolve_references()
  sparse.eval_every, sparse.checkpoint_every = 2, 3
  result = train.train_and_evaluate(sparse, str(tmp_path / "sparse"))
  rows = _rows(str(tmp_path / "sparse"))
  assert [("val_top1" in r) for r in rows] == [False, True, False, True]
  for r, ref in zip(rows, reference[0]):
    assert {k: v for k, v in r.items() if not k.startswith("val_")} == {
        k: v for k, v in ref.items() if not k.startswith("val_")}
    assert "val_top1" not in r or r == ref
  best = max((2, 4), key=lambda e: (rows[e - 1]["val_top1"], -e))  # the first of equals, as _better keeps
  assert result["best_epoch"] == best
  steps = rows[0]["step"]
  assert Checkpoints(str(tmp_path / "sparse")).latest_step("best") == best * steps
  assert Checkpoints(str(tmp_path / "sparse")).all_steps("latest") == [3 * steps, 4 * steps]


def _stop_at_check(n: int):
  """A stop flag (train.StopFlag) that reports a stop request at its n-th check, as a SIGTERM arriving then
  would. The loop asks once per step, then once at the epoch's end."""

  class StopAtCheck(train.StopFlag):  # pylint: disable=protected-access
    checks = 0

    @property
    def requested(self):
      StopAtCheck.checks += 1
      return StopAtCheck.checks == n

    @requested.setter
    def requested(self, value):
      pass

  return StopAtCheck


def test_background_validation_and_a_stop_while_it_runs(reference_run, tmp_path, monkeypatch):
  """Epochs that save nothing (latest every 4th epoch) validate on a worker thread while the next epoch
  trains; rows, best epoch and test report equal the reference run's (validated in line). A stop request
  in epoch 2, while epoch 1's pass may still run, saves epoch 1's row and best first; the resumed run ends
  as the reference. With background_validation=False every pass runs in line, with the same results."""
  cfg, reference = reference_run
  steps = reference[0][0]["step"]
  cfg = cfg.copy_and_resolve_references()
  cfg.checkpoint_every = 4
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(cfg, workdir)
  raw = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  assert ["val_background_time_s" in r for r in raw] == [True, True, True, False]  # the last always in line
  assert _final_state(workdir) == reference

  stop_in_epoch_two = _stop_at_check(steps + 2)  # after epoch 2's first step
  stopped = str(tmp_path / "stopped")
  with monkeypatch.context() as m:
    m.setattr(train, "StopFlag", stop_in_epoch_two)
    assert train.train_and_evaluate(cfg, stopped)["status"] == "interrupted"
  assert Checkpoints(stopped).all_steps("latest") == [steps + 1]
  assert Checkpoints(stopped).all_steps("best") == [steps]
  assert _rows(stopped) == reference[0][:1]
  assert train.train_and_evaluate(cfg, stopped)["status"] == "done"
  assert _final_state(stopped) == reference
  cfg.background_validation = False
  inline = str(tmp_path / "inline")
  train.train_and_evaluate(cfg, inline)
  assert not any("val_background_time_s" in json.loads(l) for l in open(os.path.join(inline, "metrics.jsonl")))
  assert _final_state(inline) == reference


def test_stop_at_an_epoch_end_between_checkpoints_saves(reference_run, tmp_path, monkeypatch):
  """With latest saved at most once a day (checkpoint_min_interval_s), a stop request (SIGTERM / Ctrl-C) at
  the end of epoch 1 still saves it at once; the resumed run ends as the reference."""
  cfg, reference = reference_run
  cfg = cfg.copy_and_resolve_references()
  cfg.checkpoint_min_interval_s = 86400.0
  steps = reference[0][0]["step"]

  stop_at_first_epoch_end = _stop_at_check(steps + 1)
  workdir = str(tmp_path / "run")
  with monkeypatch.context() as m:
    m.setattr(train, "StopFlag", stop_at_first_epoch_end)
    assert train.train_and_evaluate(cfg, workdir)["status"] == "interrupted"
  assert Checkpoints(workdir).all_steps("latest") == [steps]
  assert train.train_and_evaluate(cfg, workdir)["status"] == "done"
  assert _final_state(workdir) == reference


def test_lost_latest_checkpoint_resumes(reference_run, tmp_path):
  """The reproduction of the report: a finished run loses its last latest/<step> (and the metrics row of
  that epoch); rerunning the same command resumes from the older latest (a best newer than it is removed
  and written again by the repeated epochs) and ends as before."""
  cfg, reference = reference_run
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(cfg, workdir)
  ckpt = Checkpoints(workdir)
  last = ckpt.latest_step()
  ckpt.close()
  shutil.rmtree(os.path.join(workdir, "checkpoints", "latest", str(last)))
  rows = open(os.path.join(workdir, "metrics.jsonl")).readlines()
  open(os.path.join(workdir, "metrics.jsonl"), "w").writelines(rows[:-1])
  assert train.train_and_evaluate(cfg, workdir)["status"] == "done"
  assert _final_state(workdir) == reference


def test_workdir_lock(tiny_data, tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir()
  with run_dir.WorkdirLock(str(workdir)):  # another training process holds the workdir
    out = subprocess.run(_train_cmd(tiny_data["data_dir"], tiny_data["subset"], workdir, "--config.epochs=1"),
                         capture_output=True, text=True, timeout=120)
  assert out.returncode == 1 and "Traceback" not in out.stderr
  err = out.stderr.strip().splitlines()[-1]
  assert err.startswith("error: ") and str(workdir) in err and f"PID {os.getpid()}" in err
  assert not (workdir / "metrics.jsonl").exists()
  # A lock file left by a killed process (no one holds the flock) does not block.
  (workdir / ".lock").write_text("999999\n")
  out = subprocess.run(_train_cmd(tiny_data["data_dir"], tiny_data["subset"], workdir, "--config.epochs=1"),
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-1500:]


def test_workdir_that_is_a_file(tiny_data, tmp_path):
  path = tmp_path / "run"
  path.write_text("not a directory")
  out = subprocess.run(_train_cmd(tiny_data["data_dir"], tiny_data["subset"], path, "--config.epochs=1"),
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 1 and "is an existing file, not a directory" in out.stderr


@pytest.fixture(scope="module")
def landmark_run(tiny_data, tmp_path_factory):
  """A tiny landmarks-only run trained through the CLI, on a copy of the data (tests move and edit it)."""
  root = tmp_path_factory.mktemp("lmrun")
  d = str(root / "data")
  shutil.copytree(tiny_data["data_dir"], d)
  workdir = root / "run"
  out = subprocess.run(_train_cmd(d, tiny_data["subset"], workdir, "--config.cache_dir=none"),
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-1500:]
  return {"workdir": str(workdir), "data_dir": d, "subset": tiny_data["subset"]}


def _cli(script, *args, cwd=None):
  return subprocess.run([sys.executable, os.path.join(REPO, "scripts", script), *args], capture_output=True,
                        text=True, timeout=300, cwd=cwd)


def test_predict_warns_on_clips_without_signal(landmark_run, tmp_path):
  zeros = tmp_path / "zeros_landmarks.npy"
  np.save(zeros, np.zeros((20, 162), np.float32))
  no_hands = np.load(os.path.join(landmark_run["data_dir"], "landmarks", "00001_landmarks.npy"))
  no_hands[:, :126] = 0  # the pose only
  np.save(tmp_path / "nohands_landmarks.npy", no_hands)
  good = os.path.join(landmark_run["data_dir"], "landmarks", "00002_landmarks.npy")
  out = _cli("predict.py", f"--workdir={landmark_run['workdir']}", str(zeros), str(tmp_path / "nohands_landmarks.npy"),
             good)
  assert out.returncode == 0, out.stderr[-1500:]
  rows = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
  assert "all zeros" in rows[0]["warning"] and "no hands detected" in rows[1]["warning"]
  assert "warning" not in rows[2]
  assert f"warning: {zeros}: no landmarks detected" in out.stderr


def test_evaluate_counts_clips_without_hands_and_accepts_moved_data(landmark_run, tmp_path):
  saved = json.load(open(os.path.join(landmark_run["workdir"], "config.json")))
  assert os.path.isabs(saved["data_dir"])  # evaluate works from any directory
  moved = str(tmp_path / "moved")
  shutil.copytree(landmark_run["data_dir"], moved)
  split = json.load(open(os.path.join(moved, landmark_run["subset"])))
  test_id = next(v for v, e in split.items() if e["subset"] == "test")
  clip = np.load(os.path.join(moved, "landmarks", f"{test_id}_landmarks.npy"))
  clip[:, :126] = 0
  np.save(os.path.join(moved, "landmarks", f"{test_id}_landmarks.npy"), clip)
  out = _cli("evaluate.py", f"--workdir={landmark_run['workdir']}", f"--data_dir={moved}",
             f"--landmarks_dir={moved}/landmarks", f"--out_dir={tmp_path / 'eval'}", cwd=str(tmp_path))
  assert out.returncode == 0, out.stderr[-1500:]
  assert "1 clip(s) have no detected hand" in out.stdout
  report = json.load(open(tmp_path / "eval" / "report.json"))
  assert report["clips_without_hands"] == 1
  out = _cli("evaluate.py", f"--workdir={landmark_run['workdir']}", f"--gemma_features_dir={moved}")
  assert out.returncode == 1 and "trained without visual features" in out.stderr


def test_class_list_problems(tiny_data, tmp_path):
  d = tmp_path / "data"
  shutil.copytree(tiny_data["data_dir"], d)
  names = (d / "wlasl_class_list.txt").read_bytes()
  (d / "wlasl_class_list.txt").write_bytes(names.replace(b"sign0003", b"sign\xff03"))
  out = subprocess.run(_train_cmd(d, tiny_data["subset"], tmp_path / "run", "--config.cache_dir=none"),
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 1 and "Traceback" not in out.stderr
  assert f"{d / 'wlasl_class_list.txt'}: not UTF-8 text (byte 0xff on line 4)" in out.stderr
  from asl_jax.data import splits  # pylint: disable=import-outside-toplevel
  (d / "wlasl_class_list.txt").write_bytes(names.replace(b"sign0003", b"sign0002"))
  glosses = splits.read_class_names(str(d))
  assert glosses[2] == "sign0002 (class 2)" and glosses[3] == "sign0002 (class 3)" and glosses[1] == "sign0001"


def test_batch_larger_than_the_training_set_and_frames(tiny_data, tmp_path):
  out = subprocess.run(_train_cmd(tiny_data["data_dir"], tiny_data["subset"], tmp_path / "run",
                                  "--config.batch_size=4096", "--config.evaluate_test=False"),
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-1500:]
  saved = json.load(open(tmp_path / "run" / "config.json"))
  n_train = json.load(open(tmp_path / "run" / "data_report.json"))["packed"]["train"]
  assert saved["batch_size"] == n_train and f"batch_size=4096 is larger than the {n_train} training clips" in out.stderr
  out = subprocess.run(_train_cmd(tiny_data["data_dir"], tiny_data["subset"], tmp_path / "run2",
                                  "--config.max_frames=8", "--config.num_frames=16"),
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 1 and "config.max_frames=8 is below config.num_frames=16" in out.stderr


def test_stale_cache_temp_folders_are_removed(tiny_data, tmp_path):
  from asl_jax.data import packed  # pylint: disable=import-outside-toplevel
  cache = tmp_path / "cache"
  stale = cache / ".tmp-999999-abc"  # a writer that no longer exists
  old_style = cache / ".tmp-xyz"
  live = cache / f".tmp-{os.getpid()}-def"  # a writer still running
  for p in (stale, old_style, live):
    p.mkdir(parents=True)
    (p / "points.npy").write_bytes(b"\0" * 1000)
  spec = packed.DataSpec(data_dir=tiny_data["data_dir"], subset=tiny_data["subset"], cache_dir=str(cache))
  packed.load_packed(spec)
  assert not stale.exists() and not old_style.exists() and live.exists()
  assert [n for n in os.listdir(cache) if n.startswith("packed-")]
