"""Feature extraction from video: MediaPipe Holistic landmarks and SigLIP visual features (the optional
`extract` / `visual` extras, installed in their own environment by `make extract-env`)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import tempfile
import time

import numpy as np

from asl_jax.errors import DataError

# The extraction environment's python, for callers running where mediapipe cannot be installed (the core
# environment: mediapipe 0.10.21 needs numpy < 2). Default: the repository's .venv-extract.
EXTRACT_PYTHON_ENV = "ASL_JAX_EXTRACT_PYTHON"
MAX_EXTRACT_WORKERS = 4  # extraction processes at most for a list of videos (one a core below that)
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Extracts each video of a list of [i, path] (a JSON file) in turn, to OUT/i.npy, or OUT/i.err with the reason it
# has none: one process start and one MediaPipe start for all of them.
_SUBPROCESS_CODE = """
import json, os, sys
import numpy as np
from asl_jax.extract.holistic import extract_video
jobs, layout, out = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
for i, path in jobs:
  try:
    np.save(f"{out}/{i}.tmp.npy", extract_video(path, layout))
    os.replace(f"{out}/{i}.tmp.npy", f"{out}/{i}.npy")
  except Exception as e:  # one video's failure is its own line; the others go on
    with open(f"{out}/{i}.err.tmp", "w", encoding="utf-8") as f:
      f.write(f"{type(e).__name__}: {e}")
    os.replace(f"{out}/{i}.err.tmp", f"{out}/{i}.err")
"""


def extract_python() -> str | None:
  """The python of an environment with mediapipe, when this one has none."""
  explicit = os.environ.get(EXTRACT_PYTHON_ENV)
  if explicit:
    return explicit
  default = os.path.join(_REPO, ".venv-extract", "bin", "python")
  return default if os.path.exists(default) else None


def landmarks_from_video(path: str, layout: str = "seed162") -> np.ndarray:
  """(T, D) landmarks of every frame of a video in `layout`, with the extraction script's per-frame
  function: in this process when mediapipe is importable, else in the extraction environment."""
  result = landmarks_from_videos([path], layout)[0]
  if isinstance(result, DataError):
    raise result
  return result


def _failed(path: str, reason: str) -> DataError:
  """A video's extraction error, its reason ("Type: message") without the path it names again."""
  for named in (os.path.abspath(path), path):
    reason = reason.replace(f"{named}: ", "")
  return DataError(f"{path}: landmark extraction failed: {reason}")


def landmarks_from_videos(paths: list[str], layout: str = "seed162", progress=None) -> list:
  """Each video's (T, D) landmarks in `layout`, or the DataError saying why it has none, in order. Where this
  environment lacks mediapipe, one extraction process a core (up to MAX_EXTRACT_WORKERS) reads them (its start
  and MediaPipe's, a few seconds, are paid once a process, not once a video). `progress(n)` is called as the
  n-th video is done."""
  results: list = [None] * len(paths)
  todo = []
  for i, path in enumerate(paths):
    if not os.path.exists(path):
      results[i] = DataError(f"{path}: video not found")
    else:
      todo.append(i)
  done = len(paths) - len(todo)
  if done and progress:
    progress(done)
  if not todo:
    return results
  if importlib.util.find_spec("mediapipe") is not None and importlib.util.find_spec("cv2") is not None:
    from asl_jax.extract import holistic  # pylint: disable=import-outside-toplevel
    for i in todo:
      try:
        results[i] = holistic.extract_video(paths[i], layout)
      except (OSError, ValueError, RuntimeError) as e:
        results[i] = _failed(paths[i], f"{type(e).__name__}: {e}")
      done += 1
      if progress:
        progress(done)
    return results
  python = extract_python()
  if python is None:
    need = ("reading videos needs mediapipe, which this environment lacks; run `make extract-env` (or set "
            f"{EXTRACT_PYTHON_ENV} to a python with the extract extra)")
    for i in todo:
      results[i] = DataError(f"{paths[i]}: {need}")
    return results
  # MediaPipe keeps about one core busy: a process a core, each taking every n-th video.
  workers = max(1, min(len(todo), os.cpu_count() or 1, MAX_EXTRACT_WORKERS))
  with tempfile.TemporaryDirectory() as tmp:
    procs, logs = [], []
    for w in range(workers):
      jobs = os.path.join(tmp, f"jobs{w}.json")
      with open(jobs, "w", encoding="utf-8") as f:
        json.dump([[j, os.path.abspath(paths[i])] for j, i in enumerate(todo) if j % workers == w], f)
      logs.append(open(os.path.join(tmp, f"stderr{w}"), "w+", encoding="utf-8"))  # pylint: disable=consider-using-with
      procs.append(subprocess.Popen([python, "-c", _SUBPROCESS_CODE, jobs, layout, tmp],
                                    stdout=subprocess.DEVNULL, stderr=logs[-1], text=True))
    try:
      seen = 0
      while True:
        finished = all(p.poll() is not None for p in procs)
        count = sum(n.endswith((".npy", ".err")) and ".tmp" not in n for n in os.listdir(tmp))
        if count != seen and progress:
          progress(done + count)
        seen = count
        if finished:
          break
        time.sleep(0.1)
    finally:
      for p in procs:  # Ctrl-C: no extraction is left running
        if p.poll() is None:
          p.kill()
          p.wait()
      tails = []
      for log in logs:
        log.seek(0)
        tails.append((log.read().strip().splitlines() or ["no output"])[-1])
        log.close()
    for j, i in enumerate(todo):
      npy, why = os.path.join(tmp, f"{j}.npy"), os.path.join(tmp, f"{j}.err")
      if os.path.exists(npy):
        results[i] = np.load(npy)
      elif os.path.exists(why):
        with open(why, encoding="utf-8") as f:
          results[i] = _failed(paths[i], f.read())
      else:  # its process died before this video
        results[i] = DataError(f"{paths[i]}: landmark extraction in {python} failed: {tails[j % workers]}")
  return results


__all__ = ["EXTRACT_PYTHON_ENV", "extract_python", "landmarks_from_video", "landmarks_from_videos"]
