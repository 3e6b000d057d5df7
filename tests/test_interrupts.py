"""Ctrl-C at any moment of a command's start-up (asl_jax/interrupts.py): exit 130 with one `interrupted`
line, never a segfault, a traceback or a signal that is lost (the command running on to exit 0)."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO

DELAYS = (0.15, 0.3, 1.0, 2.0, 3.0, 4.5)


def _interrupt_at(args, delay: float):
  """Starts scripts/ARGS[0] in a child whose SIGINT has its default disposition, sends SIGINT after `delay`
  seconds; returns (returncode, stderr, whether the signal was sent while it ran)."""
  p = subprocess.Popen([sys.executable, os.path.join(REPO, "scripts", args[0]), *args[1:]], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  time.sleep(delay)
  sent = p.poll() is None
  if sent:
    p.send_signal(signal.SIGINT)
  out, err = p.communicate(timeout=120)
  return p.returncode, err, sent


@pytest.mark.parametrize("command", ["predict", "live"])
def test_ctrl_c_during_start_up_exits_130(command, tmp_path):
  clip = np.zeros((40, 162), np.float32)
  clip[:, 126:] = np.random.default_rng(0).uniform(0.3, 0.7, (40, 36))
  clip[10:30, 63:126] = np.random.default_rng(1).uniform(0.3, 0.7, (20, 63))
  np.save(tmp_path / "clip.npy", clip)
  args = {"predict": ["predict.py", f"--landmarks={tmp_path / 'clip.npy'}"],
          "live": ["live.py", f"--landmarks={tmp_path / 'clip.npy'}", "--fps=25"]}[command]
  seen = []
  for delay in DELAYS:
    rc, err, sent = _interrupt_at(args, delay)
    assert "Fatal Python error" not in err and "Traceback" not in err, err[-2000:]
    if sent and rc == -signal.SIGINT:
      continue  # it had finished and was shutting down, where Python restores SIGINT's default (a shell shows 130)
    if sent:
      assert rc == 130, f"SIGINT at {delay} s: exit {rc}\n{err[-2000:]}"
      assert err.strip().splitlines()[-1] == "interrupted" or command == "live", err[-500:]
      seen.append(delay)
    else:
      assert rc == 0, err[-2000:]
  assert seen, "the command finished before any signal: lower the delays"
