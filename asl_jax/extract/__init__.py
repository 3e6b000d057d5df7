"""Feature extraction from video: MediaPipe Holistic landmarks and SigLIP visual features (the optional
`extract` / `visual` extras, installed in their own environment by `make extract-env`)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import tempfile

import numpy as np

from asl_jax.errors import DataError

# The extraction environment's python, for callers running where mediapipe cannot be installed (the core
# environment: mediapipe 0.10.21 needs numpy < 2). Default: the repository's .venv-extract.
EXTRACT_PYTHON_ENV = "ASL_JAX_EXTRACT_PYTHON"
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_SUBPROCESS_CODE = ("import sys, numpy as np; from asl_jax.extract.holistic import extract_video; "
                    "np.save(sys.argv[3], extract_video(sys.argv[1], sys.argv[2]))")


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
  if not os.path.exists(path):
    raise DataError(f"{path}: video not found")
  if importlib.util.find_spec("mediapipe") is not None and importlib.util.find_spec("cv2") is not None:
    from asl_jax.extract import holistic  # pylint: disable=import-outside-toplevel
    return holistic.extract_video(path, layout)
  python = extract_python()
  if python is None:
    raise DataError(f"{path}: reading videos needs mediapipe, which this environment lacks; run `make "
                    f"extract-env` (or set {EXTRACT_PYTHON_ENV} to a python with the extract extra)")
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "landmarks.npy")
    proc = subprocess.run([python, "-c", _SUBPROCESS_CODE, os.path.abspath(path), layout, out],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not os.path.exists(out):
      tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
      raise DataError(f"{path}: landmark extraction in {python} failed: {tail}")
    return np.load(out)


__all__ = ["EXTRACT_PYTHON_ENV", "extract_python", "landmarks_from_video"]
