"""Helpers shared by the benchmarks: machine facts and result files."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics

from asl_jax import allocator

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def machine() -> dict:
  import jax  # pylint: disable=import-outside-toplevel
  info = {"date": datetime.date.today().isoformat(), "python": platform.python_version(),
          "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "jax": jax.__version__,
          "backend": jax.default_backend(), "devices": [d.device_kind for d in jax.devices()],
          "allocator": os.path.basename(allocator.loaded() or "system")}
  try:
    import torch  # pylint: disable=import-outside-toplevel
    info["torch"] = torch.__version__
  except ImportError:
    pass
  return info


def median(xs):
  return statistics.median(xs)


def save(name: str, payload: dict) -> str:
  os.makedirs(RESULTS, exist_ok=True)
  path = os.path.join(RESULTS, name + ".json")
  with open(path, "w", encoding="utf-8") as f:
    json.dump(payload, f, indent=1)
  return path


def report(name: str, payload: dict) -> str:
  """Prints the scalar results (one per line) and saves the JSON; returns its path."""
  for k, v in payload.items():
    if k != "machine":
      print(f"{k:28s} {v}")
  path = save(name, payload)
  print("wrote", path)
  return path
