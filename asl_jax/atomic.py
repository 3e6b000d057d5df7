"""Atomic file writes: a reader, or a process killed mid-write, sees the old file or the complete new one,
never a part (the data goes to PATH.tmp-PID first, then is renamed over PATH)."""

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
