"""Landmark extraction. The pure parts (frame selection, layout assembly, handedness) run everywhere; the
MediaPipe parts run in the extraction environment (`make extract-env`, which CI installs) and are skipped
with that reason elsewhere."""

import json
import os
import shutil

import numpy as np
import pytest

from asl_jax.extract.frames import frame_indices
from asl_jax.extract.holistic import assemble_frame

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
try:
  import cv2  # noqa: F401
  import mediapipe  # noqa: F401
  HAVE_EXTRACT = True
except ImportError:
  HAVE_EXTRACT = False
needs_extract = pytest.mark.skipif(not HAVE_EXTRACT, reason="the extract extra (mediapipe, opencv) is not "
                                   "installed here; `make test` runs these in .venv-extract")


def test_frame_indices_trim_one_based_inclusive():
  np.testing.assert_array_equal(frame_indices(10, 3, 5), [2, 3, 4])
  np.testing.assert_array_equal(frame_indices(10, 1, -1), np.arange(10))  # -1: to the end
  np.testing.assert_array_equal(frame_indices(10, 8, 50), [7, 8, 9])  # annotated end past the decoded frames
  np.testing.assert_array_equal(frame_indices(100, 1, -1, 5), [0, 25, 50, 74, 99])
  np.testing.assert_array_equal(frame_indices(4, 1, -1, 16), [0, 1, 2, 3])  # short clips keep every frame
  assert len(frame_indices(10, 12, 15)) == 0 and len(frame_indices(0)) == 0


def test_assemble_seed162_and_holistic543():
  pose = np.arange(99, dtype=np.float32).reshape(33, 3)
  left, right = np.full((21, 3), 0.25, np.float32), np.full((21, 3), 0.75, np.float32)
  v = assemble_frame(pose, left, right, layout="seed162")
  assert v.shape == (162,)
  assert (v[:63] == 0.25).all() and (v[63:126] == 0.75).all()
  np.testing.assert_array_equal(v[126:129], pose[11])  # left shoulder first
  np.testing.assert_array_equal(v[159:162], pose[22])
  face = np.full((468, 3), 0.5, np.float32)
  w = assemble_frame(pose, left, right, face, layout="holistic543").reshape(543, 3)
  assert (w[:468] == 0.5).all() and (w[468:489] == 0.25).all() and (w[522:] == 0.75).all()
  np.testing.assert_array_equal(w[489:522], pose)


def test_missing_parts_are_zero_and_mirroring_swaps_hands():
  right = np.full((21, 3), 0.75, np.float32)
  v = assemble_frame(None, None, right)
  assert (v[:63] == 0).all() and (v[63:126] == 0.75).all() and (v[126:] == 0).all()
  m = assemble_frame(None, None, right, mirrored=True)  # a selfie view: Holistic's "right" is the signer's left
  assert (m[:63] == 0.75).all() and (m[63:126] == 0).all()


@pytest.fixture
def video_dir(tmp_path):
  d = tmp_path / "wlasl"
  (d / "videos").mkdir(parents=True)
  shutil.copy(os.path.join(DATA, "test_video.mp4"), d / "videos" / "00001.mp4")
  shutil.copy(os.path.join(DATA, "test_video.mp4"), d / "videos" / "00002.mp4")
  split = {"00001": {"subset": "train", "action": [0, 1, -1]}, "00002": {"subset": "train", "action": [0, 11, 30]},
           "00003": {"subset": "test", "action": [0, 1, 20]}}  # 00003 has no video
  (d / "nslt_1.json").write_text(json.dumps(split))
  return d


@needs_extract
def test_real_video_end_to_end(video_dir):
  from asl_jax.extract.dataset import extract_dataset
  out = video_dir / "landmarks"
  meta = extract_dataset(str(video_dir), str(out), "nslt_1.json", workers=1, progress=False)
  full = np.load(out / "00001_landmarks.npy")
  trimmed = np.load(out / "00002_landmarks.npy")
  assert full.shape == (58, 162) and trimmed.shape == (20, 162)
  shoulders = lambda a: a[:, 126:132].reshape(-1, 2, 3)[..., :2]  # noqa: E731  (stable under re-tracking)
  np.testing.assert_allclose(shoulders(trimmed), shoulders(full[10:30]), atol=0.03)  # frames 11..30, 1-based
  pose = full[:, 126:].reshape(58, 12, 3)
  assert (pose != 0).any(axis=(1, 2)).all()  # the signer's upper body is found in every frame
  xy = pose[..., :2]
  assert (xy[:, :2] > 0).all() and (xy[:, :2] < 1).all()  # shoulders inside the image
  assert (xy > -0.5).all() and (xy < 1.5).all()  # wrists and fingers may leave it (pose extrapolates)
  assert pose[:, 0, 0].mean() > pose[:, 1, 0].mean()  # the signer's left shoulder is on the image's right
  hands = full[:, :126].reshape(58, 2, 21, 3)
  detected = (hands != 0).any(axis=(2, 3))
  assert 10 <= detected.any(1).sum() <= 58
  assert meta["success_count"] == 2 and meta["error_count"] == 1 and meta["frames"] == 78
  failures = (out / "failed_videos.txt").read_text()
  assert "00003\tvideo not found" in failures
  assert json.loads((out / "extraction_metadata.json").read_text())["feature_dim"] == 162
  # Resumable: a second run with skip_existing extracts nothing again.
  again = extract_dataset(str(video_dir), str(out), "nslt_1.json", skip_existing=True, progress=False)
  assert again["skipped_existing"] == 2 and again["success_count"] == 0


@needs_extract
def test_video_without_person(tmp_path):
  import cv2
  from asl_jax.extract.dataset import extract_dataset
  d = tmp_path / "blank"
  (d / "videos").mkdir(parents=True)
  writer = cv2.VideoWriter(str(d / "videos" / "00009.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25, (160, 120))
  for i in range(12):
    writer.write(np.full((120, 160, 3), 40 + 10 * i, np.uint8))
  writer.release()
  (d / "nslt_1.json").write_text(json.dumps({"00009": {"subset": "train", "action": [0, 1, -1]}}))
  meta = extract_dataset(str(d), str(d / "landmarks"), "nslt_1.json", progress=False)
  arr = np.load(d / "landmarks" / "00009_landmarks.npy")
  assert arr.shape == (12, 162) and (arr == 0).all()
  assert meta["no_detection"] == ["00009"]
  assert "00009\tno person detected" in (d / "landmarks" / "failed_videos.txt").read_text()
