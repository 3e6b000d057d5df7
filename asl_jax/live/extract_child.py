"""The extraction child of `asl-live`: reads a camera or a video, runs MediaPipe Holistic on every
`frame_step`-th frame with the extraction's per-frame function (extract/holistic.HolisticExtractor.frame),
and streams each frame's landmarks to its parent through stdout. It runs in the extraction environment
(mediapipe needs numpy < 2), so capture plus extraction and the model use one core each.

Messages on stdout, each one type byte then a payload: b"H" + 4-byte length + JSON header ({fps, dim,
width, height, frames}), b"F" + dim float32 values (one frame), b"K" + 1 byte (a key pressed in the
display: r or space), b"X" + 4-byte length + UTF-8 text (an error: the source failed), b"E" (the end).
With --display the parent writes one JSON line per frame to stdin ({"state", "glosses", "frame"}), drawn over
the mirrored preview with the skeleton. Imports no JAX.

  python -m asl_jax.live.extract_child --source=VIDEO_OR_CAMERA_INDEX [--layout=seed162] [--frame_step=1]
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import threading

import numpy as np

TRUNCATED_BELOW = 0.9  # a file that ends before this share of its announced frames failed mid-way


def _send(out, kind: bytes, payload: bytes = b"", sized: bool = False) -> None:
  out.write(kind + (struct.pack("<I", len(payload)) if sized else b"") + payload)
  out.flush()


def _open(source: str):
  import cv2  # pylint: disable=import-outside-toplevel
  camera = source.isdigit()
  cap = cv2.VideoCapture(int(source)) if camera else cv2.VideoCapture(source)
  if not cap.isOpened():
    what = f"camera {source}: cannot be opened (no camera at this index, or no permission)" if camera else (
        f"{source}: cannot be opened as a video (missing, unreadable, or a format OpenCV cannot decode)")
    raise RuntimeError(what)
  return cap, camera


class _Status:
  """The parent's latest display line, read on a thread so the capture never waits for it."""

  def __init__(self):
    self.value = {}
    threading.Thread(target=self._read, daemon=True).start()

  def _read(self):
    for line in sys.stdin:
      try:
        self.value = json.loads(line)
      except ValueError:
        pass


# Canonical point indices (asl_jax/data/layouts.py): hand chains from the wrist, per hand; the arms.
_FINGERS = ((0, 1, 2, 3, 4), (0, 5, 6, 7, 8), (5, 9, 10, 11, 12), (9, 13, 14, 15, 16), (13, 17, 18, 19, 20), (0, 17))
_ARMS = ((42, 43), (42, 44), (44, 46), (43, 45), (45, 47))


def _draw(frame_bgr, landmarks: np.ndarray, layout: str, status: dict, mirror: bool):
  """The frame with the skeleton, the segmenter's state and the recent glosses (newest at the bottom)."""
  import cv2  # pylint: disable=import-outside-toplevel
  from asl_jax.data import layouts  # pylint: disable=import-outside-toplevel
  h, w = frame_bgr.shape[:2]
  img = frame_bgr.copy()
  points, present = layouts.to_canonical(landmarks[None], layout)
  px = lambda i: (int(points[0, i, 0] * w), int(points[0, i, 1] * h))  # noqa: E731
  lines = [(a, b, (255, 160, 0)) for a, b in _ARMS if present[0, 2]]
  for hand, colour in ((0, (0, 220, 0)), (1, (0, 220, 255))):
    if present[0, hand]:
      lines += [(21 * hand + a, 21 * hand + b, colour) for chain in _FINGERS for a, b in zip(chain, chain[1:])]
  for a, b, colour in lines:
    cv2.line(img, px(a), px(b), colour, 2)
  if mirror:  # a webcam is shown as a mirror; the landmarks came from the unmirrored frame
    img = cv2.flip(img, 1)
  state = status.get("state", "")
  font = cv2.FONT_HERSHEY_SIMPLEX
  cv2.putText(img, state, (10, 28), font, 0.8, (0, 0, 0), 5)
  cv2.putText(img, state, (10, 28), font, 0.8, (0, 0, 255) if state == "signing" else (200, 200, 200), 2)
  for i, g in enumerate(reversed(status.get("glosses", [])[-5:])):
    y = h - 15 - 32 * i
    cv2.putText(img, g, (10, y), font, 0.9, (0, 0, 0), 5)  # outlined, readable on any background
    cv2.putText(img, g, (10, y), font, 0.9, (255, 255, 255) if i == 0 else (190, 190, 190), 2)
  return img


def run(source: str, layout: str, frame_step: int, display: bool, out) -> int:
  import cv2  # pylint: disable=import-outside-toplevel
  from asl_jax.extract.holistic import LAYOUT_DIMS, HolisticExtractor  # pylint: disable=import-outside-toplevel
  try:
    cap, camera = _open(source)
  except RuntimeError as e:
    _send(out, b"X", str(e).encode(), sized=True)
    return 1
  fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
  fps = fps if 1 <= fps <= 240 else 25.0
  announced = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
  header = {"fps": fps / frame_step, "source_fps": fps, "frame_step": frame_step, "dim": LAYOUT_DIMS[layout],
            "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            "frames": announced if not camera else 0, "camera": camera}
  _send(out, b"H", json.dumps(header).encode(), sized=True)
  status = _Status() if display else None
  read = 0
  with HolisticExtractor(layout) as ex:
    while True:
      ok, bgr = cap.read()
      if not ok:
        break
      read += 1
      if (read - 1) % frame_step:
        continue
      row = ex.frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
      _send(out, b"F", row.astype("<f4").tobytes())
      if display:
        try:
          cv2.imshow("asl-live (q: quit, r: reset, space: predict)", _draw(bgr, row, layout, status.value, camera))
          key = cv2.waitKey(1) & 0xFF
        except cv2.error:
          _send(out, b"X", b"--display needs OpenCV with a GUI (opencv-python, not opencv-python-headless) and a "
                b"screen", sized=True)
          return 1
        if key in (ord("q"), 27):
          break
        if key in (ord("r"), ord(" ")):
          _send(out, b"K", bytes([key]))
  cap.release()
  if camera and read == 0:
    _send(out, b"X", f"camera {source}: opened but gave no frame".encode(), sized=True)
    return 1
  if not camera and read == 0:
    _send(out, b"X", f"{source}: no frame could be decoded".encode(), sized=True)
    return 1
  if not camera and announced and read < TRUNCATED_BELOW * announced:
    _send(out, b"X", f"{source}: the video stopped at frame {read} of {announced} (truncated or corrupt)".encode(),
          sized=True)
    return 1
  _send(out, b"E")
  return 0


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--source", required=True)
  parser.add_argument("--layout", default="seed162")
  parser.add_argument("--frame_step", type=int, default=1)
  parser.add_argument("--display", action="store_true")
  args = parser.parse_args(argv)
  return run(args.source, args.layout, max(1, args.frame_step), args.display, sys.stdout.buffer)


if __name__ == "__main__":
  sys.exit(main())
