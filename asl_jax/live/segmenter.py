"""An online sign segmenter on landmarks alone: which frames of a continuous stream are one sign.

Causal, with a fixed look-ahead of `cut_window` frames (at most 0.5 s). Per frame it reads three signals
(`frame_signals`): whether a hand is detected, where the body is (shoulder midpoint and width, in image
coordinates) and how far each wrist moved. A sign is a run of frames with a hand, ended by

- a *rest*: `gap` frames in a row without a hand (a sign's end frame is its last frame with a hand);
- a *cut*: the body jumps between the `cut_window` frames before a frame and the `cut_window` frames from it
  on (median shoulder midpoint moved by more than `cut_body` shoulder widths, or the shoulder width changed
  by more than a factor exp(`cut_scale`)), or a wrist jumps by more than `cut_hand` shoulder widths from one
  frame to the next. A person does not teleport: cuts are where a recording was edited (a compilation of
  lexicon clips, a change of signer or camera). They never fire on a steady signer in front of a camera;
- `max_len`: a sign longer than that is split at its slowest frame (the least wrist motion, smoothed over
  3 frames) at least `min_len` frames from either end.

Signs shorter than `min_len` frames are dropped. Durations are in seconds and become frames at the
stream's fps. `Segmenter.push` takes one frame's signals and returns the signs that frame completed;
`segment` runs a whole array. tests/test_live_segmenter.py specifies it.

web/src/segmenter.js (the browser page's copy) mirrors this file line for line. The signals are float64,
each computed in a fixed order of IEEE operations (`_length`, `_mean_rows`), so both give the same bits and
the same signs; tests/test_web.py feeds the same streams to both.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from asl_jax.data import layouts
from asl_jax.errors import ConfigError

MAX_LOOKAHEAD_S = 0.5
DEFAULT_SCALE = 0.25  # shoulder width as a fraction of the image, before any pose was seen


def _setting(default: float, help_: str):
  return dataclasses.field(default=default, metadata={"help": help_})


MAX_SETTING_S = 60.0  # a duration flag above this is a typo


@dataclasses.dataclass(frozen=True)
class SegmenterConfig:
  """The segmenter's settings (asl-live flags of the same names; defaults chosen on val streams,
  docs/live.md)."""
  gap_s: float = _setting(0.32, "this long without a detected hand ends a sign (a rest), seconds")
  min_len_s: float = _setting(0.3, "shorter signs are dropped, seconds")
  max_len_s: float = _setting(6.0, "longer signs are split at their slowest frame, seconds")
  cut_window_s: float = _setting(0.16, "frames compared on each side of a cut, seconds (the look-ahead)")
  cut_body: float = _setting(0.12, "a body jump of this many shoulder widths is a cut")
  cut_scale: float = _setting(0.1, "a log change of the shoulder width above this is a cut")
  cut_hand: float = _setting(1.0, "a wrist jump between two frames of this many shoulder widths is a cut")

  def frames(self, fps: float) -> dict:
    """The durations in frames at `fps`."""
    f = lambda s: max(1, int(round(s * fps)))  # noqa: E731
    return {"gap": f(self.gap_s), "min_len": f(self.min_len_s), "max_len": f(self.max_len_s),
            "window": f(self.cut_window_s)}

  def check(self) -> None:
    """The checks that need no frame rate (asl-live makes them before it loads the model; a camera's or
    video's rate is known only once it is opened)."""
    for name in ("gap_s", "min_len_s", "max_len_s", "cut_window_s", "cut_body", "cut_scale", "cut_hand"):
      v = getattr(self, name)
      if not (v > 0 and math.isfinite(v)):
        raise ConfigError(f"--{name}={v}: must be a number > 0")
      if name.endswith("_s") and v > MAX_SETTING_S:  # the ring buffer is sized from them
        raise ConfigError(f"--{name}={v}: at most {MAX_SETTING_S:g} s (one sign, or one pause, is seconds long)")
    if self.cut_window_s > MAX_LOOKAHEAD_S:
      raise ConfigError(f"--cut_window_s={self.cut_window_s}: the look-ahead is at most {MAX_LOOKAHEAD_S} s")
    if not self.max_len_s > 2 * self.min_len_s:  # in frames below, at any rate
      raise ConfigError(f"--max_len_s={self.max_len_s}: must exceed twice --min_len_s={self.min_len_s}")

  def validate(self, fps: float) -> None:
    if not fps > 0 or not math.isfinite(fps):
      raise ConfigError(f"--fps={fps}: must be a positive number of frames per second")
    self.check()
    fr = self.frames(fps)
    if fr["max_len"] < 2 * fr["min_len"] + 1:
      raise ConfigError(f"--max_len_s={self.max_len_s}: must exceed twice --min_len_s={self.min_len_s}")


def _length(dx, dy):
  """sqrt(dx^2 + dy^2), elementwise, in this order (not np.linalg.norm, whose dot may fuse): what
  web/src/segmenter.js computes with the same IEEE operations, so both give the same bits."""
  return np.sqrt(dx * dx + dy * dy)


def _mean_rows(rows: np.ndarray) -> list[float]:
  """The mean of a few rows, summed first to last from zero, then divided (the order web/src/segmenter.js uses)."""
  total = [0.0] * rows.shape[1]
  for row in rows:
    total = [a + float(b) for a, b in zip(total, row)]
  return [a / len(rows) for a in total]


def frame_signals(raw: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(T, D) raw landmarks -> hands (T,) bool, body (T, 3) shoulder midpoint x, y and width (NaN where no
  pose), wrists (T, 2, 2) left and right wrist x, y (NaN where that hand is missing); float64, computed
  from the float32 landmarks."""
  points, present = layouts.to_canonical(np.asarray(raw, np.float32), layout)
  points = points.astype(np.float64)
  hands = present[:, 0] | present[:, 1]
  ls, rs = points[:, 42, :2], points[:, 43, :2]
  width = _length(ls[:, 0] - rs[:, 0], ls[:, 1] - rs[:, 1])
  ok = present[:, 2] & (width > 1e-4)
  body = np.where(ok[:, None], np.concatenate([(ls + rs) / 2, width[:, None]], -1), np.nan)
  wrists = np.stack([points[:, 0, :2], points[:, 21, :2]], 1)
  wrists = np.where(present[:, :2, None], wrists, np.nan)
  return hands, body, wrists


class Segmenter:
  """The streaming state machine. Frame numbers count from 0 at the first `push`; signs are (start, end)
  inclusive frame numbers, returned by the `push` that decides them (`cut_window` frames after the frame
  that ends them by a cut, `gap` after their last hand frame for a rest) and by `flush` at the end."""

  def __init__(self, config: SegmenterConfig = SegmenterConfig(), fps: float = 25.0):
    config.validate(fps)
    self.config = config
    fr = config.frames(fps)
    self.gap, self.min_len, self.max_len, self.window = fr["gap"], fr["min_len"], fr["max_len"], fr["window"]
    self.reset()

  def reset(self) -> None:
    self.n = 0  # frames pushed
    self._hands: list[bool] = []
    self._body: list[np.ndarray] = []
    self._speed: list[float] = []
    self._wrists = np.full((2, 2), np.nan)
    self._scale = DEFAULT_SCALE
    self.start = None  # first frame of the open sign
    self.last_hand = None  # its last frame with a hand
    self._cut_until = -1  # no second cut before this frame

  @property
  def lookahead(self) -> int:
    return self.window

  @property
  def active(self) -> bool:
    return self.start is not None

  def push(self, hand: bool, body, wrists) -> list[tuple[int, int]]:
    """One frame's signals (as `frame_signals` gives them, for one frame) -> the signs it completes."""
    body = np.asarray(body, np.float64)
    wrists = np.asarray(wrists, np.float64)
    if np.isfinite(body[2]):
      self._scale = float(body[2])
    # Wrist motion between this frame and the previous one, per hand present in both (shoulder widths).
    d = wrists - self._wrists
    moved = _length(d[:, 0], d[:, 1]) / self._scale
    moved = moved[np.isfinite(moved)]
    self._speed.append(float(moved.max()) if moved.size else 0.0)
    jump = bool(moved.size and moved.max() > self.config.cut_hand)
    self._wrists = wrists
    self._hands.append(bool(hand))
    self._body.append(body)
    self.n += 1
    out = []
    if jump:
      out += self._cut(self.n - 1)
    # A body cut before frame c: its step is over the threshold and the largest of c - 1, c, c + 1 (c + 1's
    # window ends at the newest frame, so the look-ahead is `window` frames).
    c = self.n - 1 - self.window
    if c > self._cut_until:
      step = self._body_step(c)
      if step > 1 and step >= self._body_step(c - 1) and step > self._body_step(c + 1):
        out += self._cut(c)
    out += self._advance(self.n - 1)
    return out

  def flush(self) -> list[tuple[int, int]]:
    """The sign still open at the end of the stream, if long enough; the segmenter is then reset."""
    out = self._close(self.last_hand) if self.active else []
    self.reset()
    return out

  # -- internals -------------------------------------------------------------------------------------

  def _body_step(self, c: int) -> float:
    """How far the body moved between the `window` frames before c and those from c on: the larger of the
    midpoint's move (shoulder widths) over cut_body and the log width change over cut_scale (> 1: a cut).
    Means, not medians: their step is sharpest at the jump itself."""
    k = self.window
    if c < k:
      return 0.0
    left = np.array(self._body[c - k:c])
    right = np.array(self._body[c:c + k])
    left, right = left[np.isfinite(left[:, 2])], right[np.isfinite(right[:, 2])]
    need = max(1, k // 2)
    if len(left) < need or len(right) < need:
      return 0.0
    lm, rm = _mean_rows(left), _mean_rows(right)
    moved = float(_length(lm[0] - rm[0], lm[1] - rm[1])) / lm[2]
    return max(moved / self.config.cut_body, abs(math.log(rm[2] / lm[2])) / self.config.cut_scale)

  def _cut(self, c: int) -> list[tuple[int, int]]:
    """A cut before frame c: the open sign ends at its last hand frame before c; frames from c on (already
    seen, up to the look-ahead) start afresh."""
    self._cut_until = c + 2 * self.window
    if not self.active:
      return []
    before = [t for t in range(self.start, c) if self._hands[t]]
    out = self._close(before[-1]) if before else []
    self.start = self.last_hand = None
    for t in range(c, self.n - 1):  # replay the look-ahead frames already seen after the cut
      out += self._advance(t)
    return out

  def _advance(self, t: int) -> list[tuple[int, int]]:
    out = []
    if self._hands[t]:
      if not self.active:
        self.start = t
      self.last_hand = t
    if self.active and t - self.last_hand >= self.gap:
      out += self._close(self.last_hand)
    elif self.active and self.last_hand - self.start + 1 > self.max_len:
      out += self._split(t)
    return out

  def _split(self, t: int) -> list[tuple[int, int]]:
    lo, hi = self.start + self.min_len, t - self.min_len
    # The wrist speed summed over each frame and its two neighbours (zero beyond the span), in this order.
    sp = np.concatenate([[0.0], self._speed[self.start:t + 1], [0.0]])
    speed = (sp[:-2] + sp[1:-1]) + sp[2:]
    at = lo + int(np.argmin(speed[lo - self.start:hi - self.start + 1]))
    end = max((u for u in range(self.start, at) if self._hands[u]), default=None)
    out = self._close(end) if end is not None else []
    nxt = next((u for u in range(at, t + 1) if self._hands[u]), None)
    self.start = nxt
    self.last_hand = max((u for u in range(at, t + 1) if self._hands[u]), default=None)
    return out

  def _close(self, end: int) -> list[tuple[int, int]]:
    start = self.start
    self.start = self.last_hand = None
    return [(start, end)] if end - start + 1 >= self.min_len else []


def segment(raw: np.ndarray, layout: str, config: SegmenterConfig = SegmenterConfig(),
            fps: float = 25.0) -> list[tuple[int, int]]:
  """Every sign of a whole (T, D) landmark stream, as the online segmenter finds it frame by frame."""
  hands, body, wrists = frame_signals(raw, layout)
  seg = Segmenter(config, fps)
  out = []
  for t in range(len(hands)):
    out += seg.push(hands[t], body[t], wrists[t])
  return out + seg.flush()
