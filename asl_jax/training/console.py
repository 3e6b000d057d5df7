"""Training and its user: what it says (on stderr; stdout holds the results alone), the epoch's progress
bar on a terminal, and the stop signals it honours (Ctrl-C, SIGTERM)."""

from __future__ import annotations

import os
import signal
import sys

import jax

from asl_jax import allocator
from asl_jax.runs.run_dir import RunDir
from asl_jax.sharding import DataParallel
from asl_jax.training.setup import Setup


def say(is_main: bool, message: str) -> None:
  """A progress line (main process only). Once a progress bar has been shown, through tqdm.write, so a line
  logged mid-epoch (a background validation's row) goes above the bar instead of through it."""
  if not is_main:
    return
  if "tqdm" in sys.modules:
    from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel  (already imported)
    tqdm.write(message, file=sys.stderr)
    sys.stderr.flush()
  else:
    print(message, file=sys.stderr, flush=True)


def progress_bar(enabled: bool, total: int, initial: int, desc: str):
  """The epoch's progress bar, on a terminal only: in a log file a bar is `\\r` fragments, and the epoch rows
  already say everything."""
  if not (enabled and sys.stderr.isatty()):
    return None
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
  return tqdm(total=total, initial=initial, desc=desc, leave=False, dynamic_ncols=True)


class StopFlag:
  """Set by SIGTERM or SIGINT (Ctrl-C); the loop checkpoints at the next step boundary and returns.
  `signum` is the signal received (the CLI exits with 128 + signum)."""

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.requested = False
    self.signum = None
    self._previous = {}

  def __enter__(self):
    for sig in self.SIGNALS:
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread: no handler
        pass
    return self

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    if self.requested:  # a second Ctrl-C / SIGTERM: leave now, without saving
      print(f"{signal.Signals(signum).name} again: exiting without saving", file=sys.stderr, flush=True)
      raise SystemExit(128 + signum)
    self.requested = True
    self.signum = signum

  def __exit__(self, *exc):
    for sig, previous in self._previous.items():
      signal.signal(sig, previous)


def describe_run(config, setup: Setup, parallel: DataParallel, n_params: int, is_main: bool) -> None:
  packed, model = setup.packed, setup.model
  streams = ("landmarks+visual (" + config.fusion_type + " fusion)" if model.use_visual and model.use_landmarks
             else "visual only" if model.use_visual else "landmarks only")
  say(is_main, f"data: {packed.report['packed']} clips with features from {packed.split.path} "
      f"({len(packed.report['missing_features'])} without features, {len(packed.report['skipped'])} skipped)")
  say(is_main, f"model: {config.encoder} encoder, {streams}, {packed.num_classes} classes, "
      f"{n_params / 1e6:.2f} M parameters; {parallel.num_devices} device(s), {setup.steps_per_epoch} steps/epoch")
  note = allocator.advice() if jax.default_backend() == "cpu" else None
  if note:
    say(is_main, f"note: {note}")


def announce(config, run: RunDir, setup: Setup, start_step: int, info: dict, is_main: bool):
  """Says whether the run starts, resumes or is finished (and the warmup notice); returns the finished
  run's test report when it is already there for its best checkpoint, else None."""
  steps = setup.steps_per_epoch
  finished = start_step >= config.epochs * steps
  saved_report = run.test_report(info.get("best_step")) if finished else None
  if finished:
    where = f"; its test report: {os.path.abspath(run.report_path('test'))}" if saved_report else ""
    say(is_main, f"this run is finished ({config.epochs} epochs, best epoch {info['best_epoch']}){where}")
  elif start_step:
    say(is_main, f"resuming from step {start_step} (epoch {start_step // steps + 1} of {config.epochs})")
  if config.warmup_epochs > config.epochs and not finished:
    span = "the one epoch" if config.epochs == 1 else f"all {config.epochs} epochs"
    say(is_main, f"note: warmup_epochs={config.warmup_epochs} is more than epochs={config.epochs}: the learning "
        f"rate warms up over {span}")
  return saved_report
