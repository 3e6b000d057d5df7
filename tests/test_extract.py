"""Landmark extraction. The pure parts (frame selection, layout assembly, handedness) run everywhere; the
MediaPipe parts run in the extraction environment (`make extract-env`, which CI installs) and are skipped
with that reason elsewhere."""

import importlib.util
import json
import os
import shutil

import numpy as np
import pytest

from asl_jax.extract.frames import frame_indices, letterbox
from asl_jax.extract.holistic import assemble_frame

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def _have(*modules: str) -> bool:
  return all(importlib.util.find_spec(m) is not None for m in modules)


needs_extract = pytest.mark.skipif(not _have("cv2", "mediapipe"),
                                   reason="the extract extra (mediapipe, opencv) is not installed here; "
                                   "`make test` runs these in .venv-extract")


def test_frame_indices_trim_one_based_inclusive():
  np.testing.assert_array_equal(frame_indices(10, 3, 5), [2, 3, 4])
  np.testing.assert_array_equal(frame_indices(10, 1, -1), np.arange(10))  # -1: to the end
  np.testing.assert_array_equal(frame_indices(10, 8, 50), [7, 8, 9])  # annotated end past the decoded frames
  np.testing.assert_array_equal(frame_indices(100, 1, -1, 5), [0, 25, 50, 74, 99])
  np.testing.assert_array_equal(frame_indices(4, 1, -1, 16), [0, 1, 2, 3])  # short clips keep every frame
  assert len(frame_indices(10, 12, 15)) == 0 and len(frame_indices(0)) == 0


@pytest.mark.skipif(not _have("cv2"), reason="needs opencv (the extraction environment)")
def test_letterbox_keeps_the_aspect_ratio_centred_on_black():
  portrait = np.full((720, 540, 3), 200, np.uint8)  # the test video's shape
  out = letterbox(portrait)
  assert out.shape == (480, 640, 3) and out.dtype == np.uint8
  cols = np.flatnonzero(out[240, :, 0])
  assert (cols[0], cols[-1]) == (140, 499) and (out[:, 140:500] == 200).all()  # 360 x 480 in the middle
  assert not out[:, :140].any() and not out[:, 500:].any()
  wide = letterbox(np.full((100, 400, 3), 7, np.uint8))  # 640 x 160, rows 160-319
  rows = np.flatnonzero(wide[:, 320, 0])
  assert (rows[0], rows[-1]) == (160, 319) and not wide[:160].any()


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


needs_visual = pytest.mark.skipif(not _have("cv2", "torch", "transformers", "safetensors"),
                                  reason="the visual extra (torch, transformers) is not installed here; "
                                  "`make test` runs these in .venv-extract")


def _tiny_vision_config():
  from transformers import SiglipVisionConfig
  return SiglipVisionConfig(hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                            image_size=32, patch_size=8)


@pytest.fixture(scope="module")
def tiny_paligemma(tmp_path_factory):
  """A randomly initialised PaliGemma of the real checkpoint's family and file format (tiny SigLIP tower,
  tiny Gemma), saved with its image processor, plus the full model for reference."""
  import torch
  from transformers import (GemmaConfig, PaliGemmaConfig, PaliGemmaForConditionalGeneration,
                            SiglipImageProcessor)
  torch.manual_seed(0)
  text = GemmaConfig(vocab_size=300, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                     num_attention_heads=2, num_key_value_heads=1, head_dim=8)
  config = PaliGemmaConfig(vision_config=_tiny_vision_config().to_dict(), text_config=text.to_dict(),
                           projection_dim=16, image_token_index=299)
  model = PaliGemmaForConditionalGeneration(config).eval()
  path = tmp_path_factory.mktemp("paligemma")
  model.save_pretrained(path)
  SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
  tower = model.model.vision_tower if hasattr(model, "model") else model.vision_tower
  return str(path), tower


@needs_visual
def test_vision_tower_loads_from_paligemma_and_siglip_checkpoints(tiny_paligemma, tmp_path):
  import torch
  from transformers import SiglipImageProcessor, SiglipVisionModel
  from asl_jax.extract.visual import SiglipFeatureExtractor, load_vision_tower
  path, reference = tiny_paligemma
  tower, processor = load_vision_tower(path)
  assert tower.config.hidden_size == 24 and processor.size == {"height": 32, "width": 32}
  pixels = torch.randn(3, 3, 32, 32)
  with torch.inference_mode():
    np.testing.assert_allclose(tower(pixel_values=pixels).last_hidden_state.numpy(),
                               reference(pixel_values=pixels).last_hidden_state.numpy(), atol=1e-5)
  # A SigLIP vision-only checkpoint works the same way.
  torch.manual_seed(1)
  solo = SiglipVisionModel(_tiny_vision_config()).eval()
  solo.save_pretrained(tmp_path / "siglip")
  SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "siglip")
  frames = [np.full((48, 64, 3), 30 * i, np.uint8) for i in range(5)]
  feats = SiglipFeatureExtractor(str(tmp_path / "siglip"), "cpu", batch_size=2)(frames)  # 3 batches
  with torch.inference_mode():
    px = SiglipImageProcessor(size={"height": 32, "width": 32})(images=frames, return_tensors="pt")["pixel_values"]
    expected = solo(pixel_values=px).last_hidden_state.mean(1).numpy()
  assert feats.shape == (5, 24) and feats.dtype == np.float32
  np.testing.assert_allclose(feats, expected, atol=1e-5)
  # Not a SigLIP family checkpoint: one clear error naming it.
  from transformers import GemmaConfig
  GemmaConfig(vocab_size=10, hidden_size=8, intermediate_size=8, num_hidden_layers=1, num_attention_heads=1,
              num_key_value_heads=1, head_dim=8).save_pretrained(tmp_path / "gemma")
  from asl_jax.errors import DataError
  with pytest.raises(DataError, match="gemma.*no SigLIP vision tower"):
    load_vision_tower(str(tmp_path / "gemma"))


@needs_visual
def test_visual_features_for_a_split(tiny_paligemma, video_dir):
  from asl_jax.extract.dataset import extract_visual_dataset
  from asl_jax.extract.frames import read_frames
  from asl_jax.extract.visual import SiglipFeatureExtractor
  path, _ = tiny_paligemma
  out = video_dir / "gemma_features"
  meta = extract_visual_dataset(str(video_dir), str(out), "nslt_1.json", path, num_frames=16, device="cpu",
                                batch_size=8, progress=False)
  full, trimmed = np.load(out / "00001_gemma.npy"), np.load(out / "00002_gemma.npy")
  assert full.shape == (16, 24) and trimmed.shape == (16, 24) and full.dtype == np.float32
  assert np.isfinite(full).all() and np.abs(full - full[0]).max() > 1e-4  # frames differ: real per-frame work
  # Frame 11 (1-based) starts clip 00002; it is the 11th frame of the untrimmed video.
  frame = next(read_frames(str(video_dir / "videos" / "00002.mp4"), 11, 11))
  np.testing.assert_allclose(trimmed[0], SiglipFeatureExtractor(path, "cpu")([frame])[0], atol=1e-5)
  saved = json.loads((out / "extraction_metadata.json").read_text())
  assert saved["model_name"] == path and saved["feature_dim"] == 24 and saved["num_frames"] == 16
  assert meta["success_count"] == 2 and meta["error_count"] == 1 and meta["subset"] == "nslt_1.json"
  assert "00003\tvideo not found" in (out / "failed_videos.txt").read_text()
  again = extract_visual_dataset(str(video_dir), str(out), "nslt_1.json", path, device="cpu", skip_existing=True,
                                 progress=False)
  assert again["skipped_existing"] == 2 and again["success_count"] == 0


def test_extraction_summary_line_and_exit_status(tmp_path):
  """The CLI prints written / skipped / failed and exits non-zero when no video could be processed."""
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  from asl_jax.extract.dataset import nothing_extracted, summary_line  # pylint: disable=import-outside-toplevel
  meta = {"success_count": 3, "skipped_existing": 1, "error_count": 2, "no_detection": ["x"]}
  line = summary_line(meta, "out")
  assert line.startswith("out: 3 written, 1 skipped (already there), 2 failed, 1 with nobody detected")
  assert "out/failed_videos.txt" in line and not nothing_extracted(meta)
  assert nothing_extracted({"success_count": 0, "skipped_existing": 0, "error_count": 2})
  assert not nothing_extracted({"success_count": 0, "skipped_existing": 5, "error_count": 0})
  d = tmp_path / "wlasl"
  (d / "videos").mkdir(parents=True)
  (d / "nslt_1.json").write_text(json.dumps({"00009": {"subset": "train", "action": [0, 1, -1]}}))  # no video
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run([sys.executable, os.path.join(repo, "scripts", "extract_landmarks.py"), f"--data_dir={d}",
                        "--subset=nslt_1.json"], capture_output=True, text=True, timeout=300)
  if "No module named" in out.stderr:
    pytest.skip("the extract extra is not installed here")
  assert out.returncode == 1, out.stderr[-1500:]
  assert "0 written, 0 skipped (already there), 1 failed" in out.stderr and "no video could be processed" in out.stderr


@pytest.mark.skipif(importlib.util.find_spec("cv2") is None, reason="needs opencv (the extraction environment)")
def test_live_display_mirrors_the_picture_only():
  """asl-live --display on a webcam: the picture (with its skeleton) is mirrored, the landmarks that go to
  the model are the unmirrored frame's (the signer's right hand stays in the right-hand slot)."""
  from asl_jax.live.extract_child import _draw  # pylint: disable=import-outside-toplevel
  frame = np.zeros((100, 200, 3), np.uint8)
  row = np.zeros(162, np.float32)
  hand = np.stack([np.linspace(0.1, 0.2, 21), np.linspace(0.3, 0.6, 21), np.zeros(21)], -1)
  row[63:126] = hand.reshape(-1)  # the right hand, on the left of the unmirrored picture
  before = row.copy()
  plain = _draw(frame, row, "seed162", {}, mirror=False)
  mirrored = _draw(frame, row, "seed162", {"state": "signing", "glosses": ["book 0.80"]}, mirror=True)
  cols = lambda img: np.flatnonzero((img[:60] == (0, 220, 255)).all(-1).any(0))  # noqa: E731  the right hand's colour
  assert cols(plain).max() < 50 and cols(mirrored).min() > 150
  np.testing.assert_array_equal(row, before)
  assert mirrored[70:, :100].any()  # the gloss is written at the bottom left


def _asl_citizen(root, videos: dict) -> str:
  """A tiny ASL Citizen layout: splits/{train,val,test}.csv naming videos/<file> (videos: file -> source)."""
  (root / "splits").mkdir(parents=True)
  (root / "videos").mkdir()
  for name, source in videos.items():
    if source:
      shutil.copy(source, root / "videos" / name)
  header = "Participant ID,Video file,Gloss,ASL-LEX Code\n"
  (root / "splits" / "train.csv").write_text(header + "P1,1001-HELLO.mp4,HELLO,A_01\nP1,1002-BOOK.mp4,BOOK,B_02\n")
  (root / "splits" / "val.csv").write_text(header + "P2,1003-HELLO.mp4,HELLO,A_01\n")
  (root / "splits" / "test.csv").write_text(header + "P3,1004-BOOK.mp4,BOOK,B_02\n")
  return str(root)


@needs_extract
def test_asl_citizen_videos_extract_by_their_split_csvs(tmp_path):
  from asl_jax.extract.dataset import extract_dataset
  video = os.path.join(DATA, "test_video.mp4")
  d = _asl_citizen(tmp_path / "citizen", {"1001-HELLO.mp4": video, "1002-BOOK.mp4": video,
                                          "1003-HELLO.mp4": video, "1004-BOOK.mp4": None})  # 1004 is missing
  meta = extract_dataset(d, os.path.join(d, "landmarks"), layout="seed162", progress=False, dataset="asl_citizen")
  assert meta["success_count"] == 3 and meta["error_count"] == 1
  assert np.load(os.path.join(d, "landmarks", "1001-HELLO_landmarks.npy")).shape == (58, 162)
  failures = open(os.path.join(d, "landmarks", "failed_videos.txt")).read()
  assert "1004-BOOK\t" in failures and "test.csv:2: names" in failures and "1004-BOOK.mp4, which does not exist" in failures


@needs_extract
def test_extraction_writes_pose_files_that_train_like_the_npy(video_dir):
  from asl_jax.extract.dataset import extract_dataset
  npy_dir, pose_dir = video_dir / "landmarks", video_dir / "poses"
  extract_dataset(str(video_dir), str(npy_dir), "nslt_1.json", progress=False)
  meta = extract_dataset(str(video_dir), str(pose_dir), "nslt_1.json", progress=False, fmt="pose")
  assert meta["success_count"] == 2 and meta["feature_dim"] == 1629
  from pose_format import Pose
  pose = Pose.read(open(pose_dir / "00001.pose", "rb").read())
  assert pose.header.dimensions.width == 540 and pose.header.dimensions.height == 720
  assert abs(pose.body.fps - 30) < 1 and pose.body.data.shape[0] == 58
  from asl_jax.data import formats, layouts
  np.testing.assert_allclose(formats.read(str(pose_dir / "00002.pose")),
                             layouts.to_holistic543(np.load(npy_dir / "00002_landmarks.npy"), "seed162"), atol=1e-5)
