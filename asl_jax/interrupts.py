"""Ctrl-C and SIGTERM while a command starts up: an immediate, clean exit.

During start-up a command's main thread spends seconds inside C++ (Orbax restoring a checkpoint, XLA
compiling the forward pass). Python runs a signal handler only between bytecodes of the main thread, so a
Ctrl-C there was delayed until the call returned, or lost when the call swallowed the KeyboardInterrupt; and a
KeyboardInterrupt raised while Orbax's and XLA's threads still ran tore the interpreter down under them (a
segmentation fault). `quick_exit()` instead lets the signal wake a watcher thread, which prints `interrupted`
and ends the process at once with 128 + the signal number, without the interpreter's shutdown. Nothing is
half-written by that: every file asl_jax writes appears by an atomic rename. `ready()` ends it where a command
starts the work a signal should end gracefully (asl-live finishing the sign in progress): from there the signal
is a KeyboardInterrupt again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_active: dict = {}


def _watch(read_fd: int) -> None:
  while True:
    try:
      data = os.read(read_fd, 1)
    except OSError:
      return
    if not data:  # ready() closed the pipe's other end
      os.close(read_fd)
      return
    signum = data[0]
    if signum in [int(s) for s in SIGNALS] and _active:
      try:
        print("interrupted", file=sys.stderr, flush=True)
      finally:
        os._exit(128 + signum)  # pylint: disable=protected-access


def begin() -> None:
  """Starts quick_exit's handling until ready() (main thread only; a no-op when it is already on). Entry points
  call it before their first slow import, so a Ctrl-C in the first second is not a KeyboardInterrupt raised
  inside an import (a traceback)."""
  if threading.current_thread() is not threading.main_thread() or _active:
    return
  read_fd, write_fd = os.pipe()
  os.set_blocking(write_fd, False)
  previous = {s: signal.signal(s, lambda *_: None) for s in SIGNALS}
  _active.update(previous=previous, wakeup=signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False),
                 fds=(read_fd, write_fd))
  threading.Thread(target=_watch, args=(read_fd,), name="asl_jax_interrupts", daemon=True).start()


@contextlib.contextmanager
def quick_exit():
  """Within the block (main thread only), SIGINT / SIGTERM exit the process at once (see the module doc)."""
  begin()
  try:
    yield
  finally:
    ready()


def ready() -> None:
  """Ends quick_exit's handling: from here SIGINT is a KeyboardInterrupt (and SIGTERM what it was)."""
  if not _active:
    return
  state = dict(_active)
  _active.clear()
  signal.set_wakeup_fd(state["wakeup"])
  for s, handler in state["previous"].items():
    signal.signal(s, handler)
  with contextlib.suppress(OSError):
    os.close(state["fds"][1])  # the watcher reads the end of the pipe and closes its own end
