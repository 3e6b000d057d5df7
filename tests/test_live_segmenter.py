"""The online segmenter (asl_jax/live/segmenter.py) on synthetic streams with known boundaries: rests,
dropped hands bridged, short blips dropped, edit cuts, long spans split at their slowest frame, no false
cuts on a steady signer, causality with a bounded look-ahead; and the continuous-recognition scores."""

import numpy as np
import pytest

from asl_jax.errors import ConfigError
from asl_jax.live import scoring, segmenter as seg

FPS = 25.0


class Signer:
  """A seed162 landmark stream: shoulders at `centre` with width `width`, the right hand (and the left when
  two-handed) tracing a smooth loop while signing, absent at rest; small tracking jitter everywhere."""

  def __init__(self, seed=0, centre=(0.5, 0.45), width=0.25):
    self.rng = np.random.default_rng(seed)
    self.centre, self.width = np.array(centre, np.float32), width
    self.frames, self.truth = [], []

  def _frame(self, hands_at=None):
    f = np.zeros((54, 3), np.float32)
    c, w = self.centre + self.rng.normal(0, 0.005 * self.width, 2), self.width
    f[42, :2], f[43, :2] = c + [w / 2, 0], c - [w / 2, 0]  # pose 11 / 12: the shoulders
    f[44:54, :2] = c + self.rng.normal(0, 0.3 * w, (10, 2))
    if hands_at is not None:
      for slot, wrist in hands_at:
        pts = wrist + self.rng.normal(0, 0.05 * w, (21, 2)) + self.rng.normal(0, 0.004 * w, 2)
        f[slot * 21:(slot + 1) * 21, :2] = pts
        f[slot * 21:(slot + 1) * 21, 2] = -0.05
    return f.reshape(-1)

  def rest(self, n):
    self.frames += [self._frame() for _ in range(n)]
    return self

  def sign(self, n, two_hands=False, speed=1.0, pause_at=None, drop=(), at=(0.0, 0.0)):
    """A sign of n frames; `pause_at`: a frame where the hand nearly stops; `drop`: frames without hands;
    `at`: where the hand's loop is, in shoulder widths from the usual place."""
    start = len(self.frames)
    phase = np.cumsum(np.full(n, speed / n))
    if pause_at is not None:
      phase = np.cumsum(np.where(np.abs(np.arange(n) - pause_at) < 2, 0.01, 1.0) * speed / n)
    for i in range(n):
      a = 2 * np.pi * phase[i]
      right = self.centre + self.width * np.array([-0.6 + at[0] + 0.4 * np.cos(a), -0.8 + at[1] + 0.4 * np.sin(a)])
      hands = [(1, right)] + ([(0, self.centre + self.width * np.array([0.6 - 0.4 * np.cos(a), -0.8]))]
                              if two_hands else [])
      self.frames.append(self._frame(None if i in drop else hands))
    self.truth.append((start, start + n - 1))
    return self

  def move(self, centre=None, width=None):
    """An edit cut: the next frames show a signer elsewhere in the picture (or nearer the camera)."""
    self.centre = np.array(centre, np.float32) if centre is not None else self.centre
    self.width = width or self.width
    return self

  def stream(self):
    return np.stack(self.frames)


def _segments(raw, **settings):
  return seg.segment(raw, "seed162", seg.SegmenterConfig(**settings), FPS)


def test_signs_between_rests_are_their_hand_spans():
  s = Signer(1).rest(12).sign(30).rest(15).sign(45, two_hands=True).rest(9).sign(20).rest(10)
  assert _segments(s.stream()) == s.truth


def test_a_stream_that_ends_while_signing_is_flushed():
  s = Signer(2).rest(5).sign(30).rest(10).sign(25)
  assert _segments(s.stream()) == s.truth


def test_a_hand_lost_for_less_than_the_gap_is_bridged_and_a_rest_of_the_gap_is_not():
  gap = seg.SegmenterConfig().frames(FPS)["gap"]
  s = Signer(3).rest(10).sign(40, drop=set(range(15, 15 + gap - 1))).rest(10)
  assert _segments(s.stream()) == s.truth  # one sign despite gap - 1 frames without a hand
  s = Signer(3).rest(10).sign(15).rest(gap).sign(20).rest(10)
  assert _segments(s.stream()) == s.truth  # a rest of exactly `gap` frames separates two signs


def test_blips_shorter_than_min_len_are_dropped():
  min_len = seg.SegmenterConfig().frames(FPS)["min_len"]
  s = Signer(4).rest(10).sign(min_len - 1).rest(10).sign(min_len).rest(10)
  assert _segments(s.stream()) == s.truth[1:]


@pytest.mark.parametrize("jump", [dict(centre=(0.3, 0.5)), dict(width=0.17), dict(centre=(0.55, 0.47), width=0.33)])
def test_an_edit_cut_between_signs_without_a_rest_splits_them(jump):
  s = Signer(5).rest(10).sign(35).move(**jump).sign(30).rest(10)
  found = _segments(s.stream())
  assert len(found) == 2
  for f, t in zip(found, s.truth):
    assert scoring.iou(f, t) >= 0.9, (found, s.truth)
  # Without cuts the two are one sign.
  assert len(_segments(s.stream(), cut_body=100, cut_scale=100, cut_hand=100)) == 1


def test_a_wrist_that_jumps_between_two_frames_is_a_cut():
  """The same signer and framing, but the hand is elsewhere from one frame to the next (an edit between
  two recordings of one person): two signs; the same move spread over a few frames is signing."""
  s = Signer(9).rest(10).sign(30).sign(30, at=(1.3, 0.6)).rest(10)
  found = _segments(s.stream())
  assert len(found) == 2 and all(scoring.iou(f, t) >= 0.9 for f, t in zip(found, s.truth)), (found, s.truth)
  assert len(_segments(s.stream(), cut_hand=100)) == 1


def test_a_steady_signer_is_never_cut():
  s = Signer(6).rest(10)
  for i in range(8):
    s.sign(30 + 3 * i, two_hands=i % 2 == 1).rest(8)
  assert _segments(s.stream()) == s.truth


def test_long_spans_are_split_at_their_slowest_frame():
  # Two 40-frame movements with no rest and no cut; the hand nearly stops between them.
  s = Signer(7).rest(10)
  s.sign(80, speed=2.0, pause_at=40).rest(10)
  start, end = s.truth[0]
  found = _segments(s.stream(), max_len_s=60 / FPS)
  assert len(found) == 2
  split = found[1][0]
  assert abs(split - (start + 40)) <= 3, found
  assert found[0][0] == start and found[1][1] == end


def test_segmenter_is_causal_with_a_bounded_lookahead():
  """A sign is returned at most max(gap, look-ahead) frames after its end, and what comes after that
  frame cannot change it."""
  s = Signer(8).rest(10).sign(30).rest(12).sign(28).move(centre=(0.3, 0.5)).sign(30).rest(10).sign(25).rest(10)
  raw = s.stream()
  hands, body, wrists = seg.frame_signals(raw, "seed162")
  cfg = seg.SegmenterConfig()
  fr = cfg.frames(FPS)
  assert fr["window"] / FPS <= seg.MAX_LOOKAHEAD_S
  sg = seg.Segmenter(cfg, FPS)
  emitted = []
  for t in range(len(raw)):
    emitted += [(t, x) for x in sg.push(hands[t], body[t], wrists[t])]
  assert [x for _, x in emitted] == s.truth
  rng = np.random.default_rng(0)
  for t, (a, b) in emitted:
    assert t - b <= max(fr["gap"], fr["window"]) + 1
    noisy = raw.copy()
    noisy[t + 1:] = rng.uniform(0, 1, noisy[t + 1:].shape)  # any future at all
    h2, b2, w2 = seg.frame_signals(noisy, "seed162")
    sg2 = seg.Segmenter(cfg, FPS)
    got = []
    for u in range(t + 1):
      got += sg2.push(h2[u], b2[u], w2[u])
    assert (a, b) in got


def test_bad_settings_are_refused():
  with pytest.raises(ConfigError, match="cut_window_s=0.8: the look-ahead is at most 0.5 s"):
    seg.Segmenter(seg.SegmenterConfig(cut_window_s=0.8), FPS)
  with pytest.raises(ConfigError, match="--gap_s=0"):
    seg.Segmenter(seg.SegmenterConfig(gap_s=0), FPS)
  with pytest.raises(ConfigError, match="--fps=0"):
    seg.Segmenter(seg.SegmenterConfig(), 0)
  with pytest.raises(ConfigError, match="max_len_s"):
    seg.Segmenter(seg.SegmenterConfig(max_len_s=0.5, min_len_s=0.3), FPS)


def test_scores_gloss_error_rate_and_segment_f1():
  assert scoring.edit_distance("kitten", "sitting") == 3
  assert scoring.gloss_error_rate(["a", "b", "c"], ["a", "x", "c", "d"]) == pytest.approx(2 / 4)
  assert scoring.iou((0, 9), (5, 14)) == pytest.approx(5 / 15)
  f = scoring.segment_f1([(0, 9), (10, 19), (30, 40)], [(0, 9), (12, 21), (50, 60), (70, 80)])
  assert f["hits"] == 2 and f["precision"] == pytest.approx(2 / 3) and f["recall"] == pytest.approx(0.5)
  # One prediction covering two true signs matches at most one of them.
  assert scoring.segment_f1([(0, 20)], [(0, 9), (11, 20)])["hits"] == 0  # IoU 10/21 with either
  assert scoring.segment_f1([(0, 15)], [(0, 9), (10, 19)])["hits"] == 1


def test_streams_keep_or_cut_the_rests():
  clip = np.zeros((10, 162), np.float32)
  clip[3:7, 63:66] = 0.5  # a right hand in frames 3-6
  hands = seg.frame_signals(clip, "seed162")[0]
  raw, truth, bounds = scoring.build_stream([clip, clip], [hands, hands], "natural")
  assert len(raw) == 20 and truth == [(3, 6), (13, 16)] and bounds == [(0, 9), (10, 19)]
  raw, truth, _ = scoring.build_stream([clip, clip], [hands, hands], "rest2")
  assert len(raw) == 16 and truth == [(2, 5), (10, 13)]
  raw, truth, _ = scoring.build_stream([clip, clip], [hands, hands], "norest")
  assert len(raw) == 8 and truth == [(0, 3), (4, 7)]
