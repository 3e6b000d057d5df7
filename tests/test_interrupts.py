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

DELAYS = (0.0, 0.3, 1.0, 2.0, 3.0, 4.5)  # seconds after the command's entry point took the signals


def _handles_sigterm(pid: int) -> bool:
  """Whether the process catches SIGTERM (its SigCgt mask in /proc): interrupts.begin() has run. Python
  itself does not catch SIGTERM, and a signal before the entry point runs (during the interpreter's own
  start-up, tens of milliseconds) is Python's to handle, not asl_jax's."""
  try:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
      mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
  except (OSError, StopIteration):
    return False
  return bool(mask & (1 << (signal.SIGTERM - 1)))


def _interrupt_at(args, delay: float | None):
  """Starts scripts/ARGS[0] in a child whose SIGINT has its default disposition, sends SIGINT `delay` seconds
  after its entry point started handling signals (None: never); returns (returncode, stderr, whether the signal
  was sent while it ran, the seconds from then to its exit)."""
  p = subprocess.Popen([sys.executable, os.path.join(REPO, "scripts", args[0]), *args[1:]], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  deadline = time.monotonic() + 60
  while not _handles_sigterm(p.pid) and p.poll() is None and time.monotonic() < deadline:
    time.sleep(0.002)
  t0 = time.monotonic()
  sent = False
  if delay is not None:
    time.sleep(delay)
    sent = p.poll() is None
    if sent:
      p.send_signal(signal.SIGINT)
  out, err = p.communicate(timeout=120)
  return p.returncode, err, sent, time.monotonic() - t0


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the signal mask from /proc (Linux)")
@pytest.mark.parametrize("command", ["predict", "live"])
def test_ctrl_c_during_start_up_exits_130(command, tmp_path):
  clip = np.zeros((40, 162), np.float32)
  clip[:, 126:] = np.random.default_rng(0).uniform(0.3, 0.7, (40, 36))
  clip[10:30, 63:126] = np.random.default_rng(1).uniform(0.3, 0.7, (20, 63))
  np.save(tmp_path / "clip.npy", clip)
  args = {"predict": ["predict.py", f"--landmarks={tmp_path / 'clip.npy'}"],
          "live": ["live.py", f"--landmarks={tmp_path / 'clip.npy'}", "--fps=25"]}[command]
  rc, err, _, took = _interrupt_at(args, None)
  assert rc == 0, err[-2000:]
  # Signals in the first 60 % of an uninterrupted run: later ones can land after the command's work is done,
  # while it exits with its result given (a fast machine finishes predict in about 2 s).
  seen = []
  for delay in [d for d in DELAYS if d < 0.6 * took]:
    rc, err, sent, _ = _interrupt_at(args, delay)
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


@pytest.mark.parametrize("script", ["predict.py", "evaluate.py", "export.py", "live.py", "enroll.py"])
def test_scripts_take_the_signals_before_their_first_slow_import(script):
  """A Ctrl-C in the first tenths of a second lands in an import: each script calls interrupts.begin() before
  it imports asl_jax.cli (absl, then the command's modules), and the console entry points (asl-predict, ...)
  call it first thing when run as programs."""
  import ast  # pylint: disable=import-outside-toplevel
  import inspect  # pylint: disable=import-outside-toplevel
  from asl_jax import cli  # pylint: disable=import-outside-toplevel
  tree = ast.parse(open(os.path.join(REPO, "scripts", script), encoding="utf-8").read())
  found = [(n.lineno, "begin" if isinstance(n, ast.Call) else "cli") for n in ast.walk(tree)
           if (isinstance(n, ast.Call) and ast.unparse(n.func) == "interrupts.begin") or
           (isinstance(n, ast.ImportFrom) and n.module == "asl_jax.cli")]
  order = [what for _, what in sorted(found)]
  assert order == ["begin", "cli"], order
  main = getattr(cli, {"predict.py": "predict_main", "evaluate.py": "evaluate_main", "export.py": "export_main",
                       "live.py": "live_main", "enroll.py": "enroll_main"}[script])
  body = inspect.getsource(main).split("\n")[1:3]
  assert body[0].strip() == "if argv is None:  # run as a program: Ctrl-C exits 130 from here on (asl_jax/interrupts.py)"
  assert body[1].strip() == "interrupts.begin()", body
