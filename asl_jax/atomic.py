"""Atomic file writes: a reader, or a process killed mid-write, sees the old file or the complete new one,
never a part (the data goes to PATH.tmp-PID first, then is renamed over PATH). And the lock files that keep a
second process from writing the same files (`lock_pid_file`)."""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w"):
  """`open(path, mode)` for writing whose content appears at `path` only when the block completes."""
  tmp = f"{path}.tmp-{os.getpid()}"
  try:
    with open(tmp, mode, encoding=None if "b" in mode else "utf-8") as f:
      yield f
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


class LockHeld(Exception):
  """Another live process holds the lock; `holder` is the PID it wrote (or "unknown")."""

  def __init__(self, holder: str):
    super().__init__(holder)
    self.holder = holder


def lock_pid_file(path: str) -> int:
  """An exclusive OS lock (flock) on `path`, created if needed, with this process's PID written in it; returns
  the open descriptor (closing it releases the lock; the kernel releases it when the process dies, so a stale
  file from a killed process never blocks). Raises LockHeld when another process holds it."""
  import fcntl  # pylint: disable=import-outside-toplevel
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError:
    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
    os.close(fd)
    raise LockHeld(holder) from None
  os.ftruncate(fd, 0)
  os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
  return fd


def write_json(path: str, obj: Any, indent: int | None = 2) -> None:
  with atomic_open(path) as f:
    json.dump(obj, f, indent=indent, default=str)


def write_bytes(path: str, data: bytes) -> None:
  with atomic_open(path, "wb") as f:
    f.write(data)


def save_npy(path: str, arr: np.ndarray) -> None:
  with atomic_open(path, "wb") as f:
    np.save(f, arr)


def save_npz(path: str, **arrays: np.ndarray) -> None:
  with atomic_open(path, "wb") as f:
    np.savez(f, **arrays)
