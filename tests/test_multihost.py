"""Multi-host data parallelism for real: two processes on localhost (jax.distributed, CPU collectives)."""

import json
import os
import socket
import subprocess
import sys

import pytest

from conftest import REPO


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _cmd(data, workdir, *extra):
  return [sys.executable, os.path.join(REPO, "scripts", "train.py"), f"--config={REPO}/configs/default.py",
          f"--workdir={workdir}", f"--config.data_dir={data['data_dir']}", f"--config.subset={data['subset']}",
          "--config.hidden_dim=32", "--config.dropout=0.1", "--config.num_frames=12", "--config.max_frames=32",
          "--config.batch_size=8", "--config.eval_batch_size=16", "--config.epochs=2", "--config.warmup_epochs=1",
          "--config.lr=0.003", "--config.progress_bar=False", "--config.evaluate_test=False", *extra]


def _rows(workdir):
  rows = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  return [{k: v for k, v in r.items() if not k.endswith("_time_s")} for r in rows]


def test_two_processes_match_one(tiny_data, tmp_path):
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
  single = subprocess.run(_cmd(tiny_data, tmp_path / "one"), env=env, capture_output=True, text=True, timeout=300)
  assert single.returncode == 0, single.stderr[-2000:]
  port = _free_port()
  procs = [subprocess.Popen(_cmd(tiny_data, tmp_path / "two", "--config.distributed=True",
                                 f"--config.coordinator_address=localhost:{port}", "--config.num_processes=2",
                                 f"--config.process_id={i}"), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for i in range(2)]
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  assert "2 device(s)" in outs[0][1]  # the global mesh spans both processes (progress is on stderr)
  assert "epoch 1: " in outs[0][1] and "epoch 1: " not in outs[1][1]  # one process reports
  # Process 1 prints nothing of its own (progress, table and next steps are process 0's); the collective
  # library may announce its connection.
  assert not [line for line in outs[1][0].splitlines() if line.strip() and not line.startswith("[Gloo]")]
  one, two = _rows(tmp_path / "one"), _rows(tmp_path / "two")
  assert len(one) == len(two) == 2
  for a, b in zip(one, two):
    for k in ("train_loss", "train_top1", "val_loss", "val_top1"):
      assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-5), k
