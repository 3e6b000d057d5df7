"""Continuous recognition: landmark frames in, recognised signs out.

`Recognizer.push(frame)` keeps the raw frames in a ring buffer, runs the online segmenter
(live/segmenter.py) and, for every sign the segmenter completes, classifies the sign's frames with the
same preparation and forward pass as `predict` (predict.Predictor: one jitted function of a fixed-size
batch, compiled once at start-up, so no sign recompiles). Several runs (an ensemble) average their
probabilities.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from asl_jax.data import layouts
from asl_jax.errors import DataError
from asl_jax.live import segmenter as seg_lib
from asl_jax.serving import predict as predict_lib

GUESS_BELOW = 0.3  # top-1 probability under which a sign is flagged as a guess (the seed's display threshold)


def load_predictors(workdirs: Sequence[str], checkpoint: str = "best") -> list[predict_lib.Predictor]:
  """The runs of an ensemble, restored once, each with a forward pass of one clip."""
  return [predict_lib.Predictor(w, checkpoint, batch_size=1) for w in workdirs]


class Recognizer:
  """Segments a landmark stream and classifies each sign. Frames are (D,) rows in `layout` (default: the
  first run's; any layout works with any run, through the canonical points); results are dicts, see
  `_result`."""

  def __init__(self, predictors: Sequence[predict_lib.Predictor], fps: float,
               config: seg_lib.SegmenterConfig = seg_lib.SegmenterConfig(), layout: str | None = None,
               top_k: int = 5, frame_step: int = 1, unknown_threshold: float | None = None):
    self.predictors = list(predictors)
    # A sign whose top-1 probability is below this is unknown (default: the first run's, fitted on val).
    self.unknown_threshold = self.predictors[0].unknown_threshold if unknown_threshold is None else (
        unknown_threshold)
    workdirs = [p.run.workdir for p in self.predictors]
    first = self.predictors[0]
    for w, p in zip(workdirs[1:], self.predictors[1:]):
      if p.glosses != first.glosses:
        raise DataError(f"{w}: cannot be combined with {workdirs[0]}: the runs have different classes")
    for w, p in zip(workdirs, self.predictors):
      if p.run.visual_dim:
        raise DataError(f"{w}: live recognition uses landmarks only, and this run also needs visual features")
    self.layout = layout or first.run.layout
    self.dim = layouts.LAYOUT_DIMS[self.layout]
    # fps: the rate of the frames pushed; with frame_step N they are every N-th frame of the source, and
    # results count the source's frames.
    self.fps, self.top_k, self.frame_step = float(fps), top_k, max(1, int(frame_step))
    self.segmenter = seg_lib.Segmenter(config, fps)
    # Room for the longest sign plus what the segmenter may still look at after it ends.
    self.capacity = self.segmenter.max_len + self.segmenter.gap + 2 * self.segmenter.window + 8
    self._ring = np.zeros((self.capacity, self.dim), np.float32)
    self._arrived = np.zeros(self.capacity, np.float64)
    self.n = 0  # frames pushed
    self._origin = 0  # the stream's frame number of the segmenter's frame 0 (it restarts on reset)
    self.warm_up()

  @property
  def glosses(self) -> tuple[str, ...]:
    return self.predictors[0].glosses

  def warm_up(self) -> None:
    """Compiles the forward pass now (a dummy sign), so the first real sign is not slowed by it."""
    self.classify(np.zeros((self.segmenter.min_len, self.dim), np.float32))

  def classify(self, raw: np.ndarray) -> tuple[np.ndarray, tuple]:
    """(C,) class probabilities of one sign's raw frames (t, D), averaged over the runs, and the first run's
    prepared clip (for its signal warning)."""
    clips = [p.load_clip(raw, layout=self.layout) for p in self.predictors]
    probs = [p.predict_clips([c])[0] for p, c in zip(self.predictors, clips)]
    return np.mean(probs, 0), clips[0]

  def push(self, frame: np.ndarray, arrived: float | None = None) -> list[dict]:
    """One frame (D,) -> the signs it completes (usually none). `arrived`: when the frame was captured
    (time.perf_counter(); default now), for the latency."""
    frame = np.asarray(frame, np.float32).reshape(-1)
    if frame.shape[0] != self.dim:
      raise DataError(f"frame {self.n}: {frame.shape[0]} values, expected {self.dim} ({self.layout})")
    frame = np.where(np.isfinite(frame), frame, 0.0)  # a non-finite value is an undetected point
    slot = self.n % self.capacity
    self._ring[slot] = frame
    self._arrived[slot] = time.perf_counter() if arrived is None else arrived
    hands, body, wrists = seg_lib.frame_signals(frame[None], self.layout)
    self.n += 1
    return [self._result(s, e) for s, e in self.segmenter.push(hands[0], body[0], wrists[0])]

  def finish(self) -> list[dict]:
    """The sign still open at the end of the stream (or now: the display's space key), if long enough."""
    out = [self._result(s, e) for s, e in self.segmenter.flush()]
    self._origin = self.n
    return out

  def reset(self) -> None:
    """Forgets the open sign (the display's r key); frame numbers go on."""
    self.segmenter.reset()
    self._origin = self.n

  def frames(self, start: int, end: int) -> np.ndarray:
    if self.n - start > self.capacity:
      raise DataError(f"sign {start}-{end}: its first frames left the buffer")
    return self._ring[np.arange(start, end + 1) % self.capacity]

  def _result(self, start: int, end: int) -> dict:
    start, end = start + self._origin, end + self._origin
    raw = self.frames(start, end)
    probs, clip = self.classify(raw)
    top = self.predictors[0].top_k(probs[None], self.top_k)[0]
    step, source_fps = self.frame_step, self.fps * self.frame_step
    first, last = start * step, end * step + step - 1
    row = {"start_frame": first, "end_frame": last, "start_s": round(first / source_fps, 3),
           "end_s": round((last + 1) / source_fps, 3), "top_k": top,
           "unknown": predict_lib.is_unknown(top, self.unknown_threshold)}
    warning = predict_lib.signal_warning(clip)
    if warning is None and self.unknown_threshold is None and top[0]["prob"] < GUESS_BELOW:
      warning = f"low confidence ({top[0]['prob']:.2f} < {GUESS_BELOW}): the prediction is a guess"
    if warning:
      row["warning"] = warning
    # What a signer waits, from the sign's last frame to this line, with frames arriving at the stream's
    # rate: the frames the segmenter waited for after it, plus the time since the frame that ended it.
    now = self.n - 1
    row["latency_s"] = round((now - end) / self.fps + time.perf_counter() - self._arrived[now % self.capacity], 4)
    return row
