"""Which frames of a video to use, and reading them (OpenCV, sequential decoding, BGR -> RGB)."""

from __future__ import annotations

import numpy as np


def frame_indices(total: int, start: int = 1, end: int = -1, num_frames: int = 0) -> np.ndarray:
  """0-based indices of the frames of the 1-based inclusive segment [start, end] of a `total`-frame video.

  end = -1 (or past the end) means to the last frame; num_frames > 0 picks that many evenly spaced frames
  of longer segments (all frames of shorter ones). WLASL's annotated end frames can exceed the decoded
  frame count: they are clipped, never wrapped.
  """
  if total <= 0:
    return np.zeros(0, np.int64)
  first = max(start, 1) - 1
  last = total - 1 if end == -1 or end > total else end - 1
  if first > last:
    return np.zeros(0, np.int64)
  idx = np.arange(first, last + 1)
  if num_frames and len(idx) > num_frames:
    idx = idx[np.round(np.linspace(0, len(idx) - 1, num_frames)).astype(np.int64)]
  return idx


def count_frames(path: str) -> int:
  import cv2  # pylint: disable=import-outside-toplevel
  cap = cv2.VideoCapture(path)
  if not cap.isOpened():
    raise ValueError(f"{path}: cannot open video")
  n = 0
  while cap.grab():  # the container's frame count is often wrong; decode to count
    n += 1
  cap.release()
  return n


def video_info(path: str) -> tuple[float, int, int]:
  """(fps, width, height) of a video, from its container (fps 0 when it does not say)."""
  import cv2  # pylint: disable=import-outside-toplevel
  cap = cv2.VideoCapture(path)
  try:
    return (float(cap.get(cv2.CAP_PROP_FPS) or 0.0), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
  finally:
    cap.release()


def read_frames(path: str, start: int = 1, end: int = -1, num_frames: int = 0):
  """Yields the selected frames as RGB uint8 (H, W, 3), in order."""
  import cv2  # pylint: disable=import-outside-toplevel
  wanted = frame_indices(count_frames(path), start, end, num_frames)
  cap = cv2.VideoCapture(path)
  try:
    i, k = 0, 0
    while k < len(wanted):
      ok = cap.grab()
      if not ok:
        break
      if i == wanted[k]:
        ok, bgr = cap.retrieve()
        repeats = int(np.sum(wanted[k:] == i))
        k += repeats
        if ok:
          rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
          for _ in range(repeats):
            yield rgb
      i += 1
  finally:
    cap.release()


def letterbox(rgb: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
  """An (H, W, 3) frame scaled to fit (width, height) with its aspect ratio kept, even-sized, centred on
  black: how a camera-shaped picture is made from a video of another shape (the browser tests' fake camera,
  benchmarks/web_vs_live.py)."""
  import cv2  # pylint: disable=import-outside-toplevel
  h, w = rgb.shape[:2]
  s = min(width / w, height / h)
  nw, nh = int(w * s) // 2 * 2, int(h * s) // 2 * 2
  out = np.zeros((height, width, 3), np.uint8)
  y, x = (height - nh) // 2, (width - nw) // 2
  out[y:y + nh, x:x + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
  return out
