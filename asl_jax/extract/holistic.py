"""MediaPipe Holistic landmarks from video, in the layouts the trainer reads (needs the `extract` extra).

`mediapipe==0.10.21` bundles the Holistic models, so `model_complexity=1` runs offline (other complexities
download a model at run time and are not used by default). Left/right: Holistic labels hands by the
signer's own (anatomical) side for an un-mirrored image, which is what WLASL videos are; pass
`mirrored=True` for selfie-view input (a mirrored webcam), which swaps the two hands.

The per-frame assembly (`assemble_frame`) and the frame selection (`frame_indices`) are pure numpy so they
are testable without MediaPipe; `HolisticExtractor.frame` is the one per-frame function used by the
extraction script and by `predict` on a video.
"""

from __future__ import annotations

import numpy as np

from asl_jax.extract.frames import frame_indices, read_frames  # noqa: F401  (re-exported)

LAYOUTS = ("seed162", "holistic543")
LAYOUT_DIMS = {"seed162": 162, "holistic543": 543 * 3}
MODEL_COMPLEXITY = 1  # the model bundled in the mediapipe 0.10.21 wheel; others download at run time


def _points(landmarks, count: int) -> np.ndarray | None:
  """(count, 3) xyz of a MediaPipe NormalizedLandmarkList, or None when not detected."""
  if landmarks is None:
    return None
  pts = np.array([(p.x, p.y, p.z) for p in landmarks.landmark], np.float32)
  return pts if len(pts) == count else None


def assemble_frame(pose, left, right, face=None, layout: str = "seed162", mirrored: bool = False) -> np.ndarray:
  """One frame's feature vector from per-part (N, 3) arrays (None = not detected -> zeros).

  seed162: left hand 21, right hand 21, pose 11-22 (xyz). holistic543: face 468, left hand 21, pose 33,
  right hand 21 (the Kaggle ISLR order). `left`/`right` are the signer's own hands as Holistic reports
  them for an un-mirrored image; `mirrored=True` swaps them.
  """
  if mirrored:
    left, right = right, left
  z = lambda n: np.zeros((n, 3), np.float32)  # noqa: E731
  left = z(21) if left is None else np.asarray(left, np.float32)
  right = z(21) if right is None else np.asarray(right, np.float32)
  pose = z(33) if pose is None else np.asarray(pose, np.float32)
  if layout == "seed162":
    return np.concatenate([left, right, pose[11:23]]).reshape(-1)
  if layout == "holistic543":
    face = z(468) if face is None else np.asarray(face, np.float32)
    return np.concatenate([face, left, pose, right]).reshape(-1)
  raise ValueError(f"layout={layout!r}: expected one of {LAYOUTS}")


class HolisticExtractor:
  """A MediaPipe Holistic graph in video mode (tracking across frames); one per process and video."""

  def __init__(self, layout: str = "seed162", mirrored: bool = False, model_complexity: int = MODEL_COMPLEXITY):
    import mediapipe as mp  # pylint: disable=import-outside-toplevel
    if layout not in LAYOUTS:
      raise ValueError(f"layout={layout!r}: expected one of {LAYOUTS}")
    self.layout, self.mirrored = layout, mirrored
    self._holistic = mp.solutions.holistic.Holistic(model_complexity=model_complexity, static_image_mode=False,
                                                    refine_face_landmarks=False)

  def frame(self, rgb: np.ndarray) -> np.ndarray:
    """(D,) landmarks of one RGB frame (H, W, 3) uint8."""
    r = self._holistic.process(rgb)
    return assemble_frame(_points(r.pose_landmarks, 33), _points(r.left_hand_landmarks, 21),
                          _points(r.right_hand_landmarks, 21), _points(r.face_landmarks, 468), self.layout,
                          self.mirrored)

  def close(self) -> None:
    self._holistic.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def extract_video(path: str, layout: str = "seed162", start: int = 1, end: int = -1, num_frames: int = 0,
                  mirrored: bool = False) -> np.ndarray:
  """(T, D) float32 landmarks of the trimmed clip [start, end] (1-based, inclusive; end -1 = to the end),
  every frame (num_frames=0) or num_frames evenly spaced ones. Undetected parts are zeros."""
  with HolisticExtractor(layout, mirrored) as ex:
    rows = [ex.frame(rgb) for rgb in read_frames(path, start, end, num_frames)]
  if not rows:
    raise ValueError(f"{path}: no frames could be read in [{start}, {end}]")
  return np.stack(rows).astype(np.float32)
