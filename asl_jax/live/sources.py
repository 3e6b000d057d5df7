"""Where `asl-live` gets landmark frames: a landmark file, or a camera / video through the extraction child.

Each source is an iterator of (frame (D,) float32, arrival time) with `fps` and `layout`; a source that
fails raises DataError with one line naming it. The camera and video sources start
`python -m asl_jax.live.extract_child` in the extraction environment (this one when it has mediapipe,
else `.venv-extract` or $ASL_JAX_EXTRACT_PYTHON) and read its frames from a pipe while this process runs the
model, so both use a core each.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import os
import struct
import subprocess
import sys
import threading
import time

import numpy as np

from asl_jax import extract as extract_lib
from asl_jax.data import features as features_lib, formats, layouts
from asl_jax.errors import DataError

EXTRACT_LAYOUTS = ("seed162", "holistic543")  # what the extraction writes


class LandmarkSource:
  """A continuous landmark sequence (T, D) from a .npy file (or an array), frame by frame, as fast as the
  consumer takes them (`realtime=True`: paced at `fps`)."""

  frame_step, display, keys = 1, False, ()  # every frame is one; no display, no key presses

  def __init__(self, path_or_array, fps: float, layout: str = "auto", realtime: bool = False):
    name = path_or_array if isinstance(path_or_array, str) else "landmarks"
    if isinstance(path_or_array, str):
      if path_or_array.lower().endswith(formats.POSE_SUFFIX):  # a .pose file records its own rate
        raw, recorded = formats.read_pose_with_fps(path_or_array)
        fps = recorded or fps
      else:
        raw = features_lib.read_array(path_or_array)
    else:
      raw = np.asarray(path_or_array)
    if raw.ndim != 2:
      raise DataError(f"{name}: shape {raw.shape}: expected 2-D (frames, values per frame)")
    self.layout = layouts.layout_for_dim(raw.shape[1], name) if layout == "auto" else layout
    raw = features_lib.validate_array(raw, layouts.LAYOUT_DIMS[self.layout], name)
    self.name, self.raw, self.fps, self.realtime = name, raw, float(fps), realtime

  def __iter__(self):
    t0 = time.perf_counter()
    for i, row in enumerate(self.raw):
      if self.realtime:
        time.sleep(max(0.0, t0 + i / self.fps - time.perf_counter()))
      yield row, time.perf_counter()

  def close(self) -> None:
    pass


def _extraction_python() -> str:
  if importlib.util.find_spec("mediapipe") is not None and importlib.util.find_spec("cv2") is not None:
    return sys.executable
  python = extract_lib.extract_python()
  if python is None:
    raise DataError("reading a camera or a video needs mediapipe, which this environment lacks: run `make "
                    f"extract-env` (or set {extract_lib.EXTRACT_PYTHON_ENV} to a python with the extract extra)")
  return python


class ExtractionSource:
  """Landmarks of a camera (`source` = its index) or a video file / stream URL, from the extraction child.
  `keys` collects the display's key presses (r, space) for the caller."""

  def __init__(self, source: str, layout: str = "seed162", frame_step: int = 1, display: bool = False):
    if layout not in EXTRACT_LAYOUTS:
      raise DataError(f"the model reads {layout} landmarks, which the extraction does not write "
                      f"({', '.join(EXTRACT_LAYOUTS)}): use --landmarks with a file in that layout")
    self.camera = source.isdigit()
    self.name = f"camera {source}" if self.camera else source
    if not self.camera and "://" not in source and not os.path.exists(source):
      raise DataError(f"{source}: video not found")
    if display and sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                           or os.environ.get("WAYLAND_DISPLAY")):
      raise DataError("--display needs a screen, and DISPLAY is not set (run without --display, or under xvfb-run)")
    self.layout, self.display = layout, display
    self.keys: collections.deque = collections.deque()
    python = _extraction_python()
    env = dict(os.environ)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")  # the child imports this checkout
    cmd = [python, "-m", "asl_jax.live.extract_child", f"--source={source}", f"--layout={layout}",
           f"--frame_step={max(1, frame_step)}"] + (["--display"] if display else [])
    self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if display else subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    self._stderr: collections.deque = collections.deque(maxlen=20)
    threading.Thread(target=self._drain_stderr, daemon=True).start()
    self._header = None  # read when first needed: the caller restores and compiles its model meanwhile

  @property
  def header(self) -> dict:
    """The child's first message (fps, frame size, ...), once it has opened the source."""
    if self._header is None:
      kind = self._read(1)
      if kind == b"X":
        raise DataError(self._text())
      if kind != b"H":
        raise DataError(self._died("before it started"))
      self._header = json.loads(self._text())
    return self._header

  @property
  def fps(self) -> float:
    return float(self.header["fps"])

  @property
  def dim(self) -> int:
    return int(self.header["dim"])

  @property
  def frame_step(self) -> int:
    return int(self.header["frame_step"])

  def _drain_stderr(self):
    for line in self.proc.stderr:
      self._stderr.append(line.decode("utf-8", "replace").rstrip())

  def _read(self, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
      chunk = self.proc.stdout.read(n - len(buf))
      if not chunk:
        return buf
      buf += chunk
    return buf

  def _text(self) -> str:
    size = self._read(4)
    if len(size) < 4:
      raise DataError(self._died("mid-message"))
    return self._read(struct.unpack("<I", size)[0]).decode("utf-8", "replace")

  def _died(self, when: str) -> str:
    try:
      code = self.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
      code = None
    time.sleep(0.05)  # let the stderr thread take the last lines
    lines = [line for line in self._stderr if line.strip()]
    tail = lines[-1] if lines else "no output"
    return f"{self.name}: the extraction process died {when} (exit status {code}): {tail}"

  def __iter__(self):
    width = 4 * self.dim
    while True:
      kind = self._read(1)
      if kind == b"F":
        data = self._read(width)
        if len(data) < width:
          raise DataError(self._died("mid-frame"))
        yield np.frombuffer(data, "<f4").astype(np.float32), time.perf_counter()
      elif kind == b"K":
        self.keys.append(self._read(1))
      elif kind == b"X":
        raise DataError(self._text())
      elif kind == b"E":
        return
      else:
        raise DataError(self._died(f"after {self.name} started"))

  def show(self, status: dict) -> None:
    """Sends the display its next status line (state, recent glosses)."""
    if self.display and self.proc.poll() is None:
      try:
        self.proc.stdin.write((json.dumps(status) + "\n").encode())
        self.proc.stdin.flush()
      except (BrokenPipeError, OSError):
        pass

  def close(self) -> None:
    if self.proc.poll() is None:
      self.proc.terminate()
      try:
        self.proc.wait(timeout=5)
      except subprocess.TimeoutExpired:
        self.proc.kill()
