"""asl-live end to end: a landmark stream whose signs it finds gives exactly predict's probabilities for
each sign; the JSON lines, .srt and .eaf files (read back by their own libraries); a video through the
extraction child; every bad source is one line and a non-zero exit, with no traceback and no half-written
file; the shipped model restores and reproduces its test accuracy."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from asl_jax import pretrained
from asl_jax.errors import DataError
from asl_jax.live import recognizer, scoring, segmenter as seg_lib, sources, stream, writers
from asl_jax.serving import predict
from asl_jax.training import train
from conftest import REPO, SHARED, tiny_config

VIDEO = os.path.join(REPO, "tests", "data", "test_video.mp4")
HAS_EXTRACT = os.path.exists(os.path.join(REPO, ".venv-extract", "bin", "python")) or bool(
    os.environ.get("ASL_JAX_EXTRACT_PYTHON"))
needs_extract = pytest.mark.skipif(not HAS_EXTRACT, reason="needs the extraction environment (make extract-env)")


@pytest.fixture(scope="module")
def tiny_run(small_data, tmp_path_factory):
  wd = str(tmp_path_factory.mktemp("live") / "run")
  train.train_and_evaluate(tiny_config(small_data, epochs=3, evaluate_test=False, cache_dir="none"), wd)
  return wd


@pytest.fixture(scope="module")
def signed_stream(small_data, tmp_path_factory):
  """Five test clips cut to their hand spans, with 12 frames of rest (no hands; the previous clip's body,
  then the next one's) between them; the span files for predict."""
  lm = small_data["landmarks_dir"]
  split = json.load(open(os.path.join(small_data["data_dir"], small_data["subset"])))
  ids = sorted(v for v, e in split.items() if e["subset"] == "test")[:5]
  out = tmp_path_factory.mktemp("stream")
  parts, truth, files, at = [], [], [], 0
  last = None
  for vid in ids:
    raw = np.load(os.path.join(lm, f"{vid}_landmarks.npy"))
    a, b = scoring.clip_hand_span(seg_lib.frame_signals(raw, "seed162")[0])
    rest = np.concatenate([np.repeat(raw[a:a + 1] if last is None else last, 6, 0), np.repeat(raw[a:a + 1], 6, 0)])
    rest[:, :126] = 0.0  # no hands
    last = raw[b:b + 1]
    parts += [rest, raw[a:b + 1]]
    truth.append((at + 12, at + 12 + b - a))
    at += 12 + b - a + 1
    files.append(str(out / f"{vid}_landmarks.npy"))
    np.save(files[-1], raw[a:b + 1])
  rest = np.repeat(last, 12, 0)
  rest[:, :126] = 0.0
  parts.append(rest)
  path = str(out / "stream_landmarks.npy")
  np.save(path, np.concatenate(parts))
  return {"path": path, "truth": truth, "files": files}


# Synthetic clips jitter more than real ones (their hands jump further between two frames, their shoulder
# width changes by ~8 % a frame against ~3 % in real WLASL100 clips): these tests keep the hand and scale
# cuts out of their way.
SYNTHETIC = seg_lib.SegmenterConfig(cut_hand=5.0, cut_scale=1.0)


def _live(*args, env=None, timeout=300):
  return subprocess.run([sys.executable, os.path.join(REPO, "scripts", "live.py"), *args], capture_output=True,
                        text=True, timeout=timeout, env=env)


def test_live_landmarks_finds_the_signs_and_equals_predict_on_each(tiny_run, signed_stream, tmp_path):
  srt_path, eaf_path = str(tmp_path / "out.srt"), str(tmp_path / "out.eaf")
  out = _live(f"--workdir={tiny_run}", f"--landmarks={signed_stream['path']}", "--fps=25", "--top_k=3",
              f"--srt={srt_path}", f"--eaf={eaf_path}", "--cut_hand=5", "--cut_scale=1")
  assert out.returncode == 0, out.stderr[-2000:]
  signs = [json.loads(line) for line in out.stdout.splitlines()]
  assert [(s["start_frame"], s["end_frame"]) for s in signs] == signed_stream["truth"]
  expected = predict.predict_files(tiny_run, signed_stream["files"], top_k=3)
  for s, e in zip(signs, expected):
    assert [t["gloss"] for t in s["top_k"]] == [t["gloss"] for t in e["top_k"]]
    np.testing.assert_allclose([t["prob"] for t in s["top_k"]], [t["prob"] for t in e["top_k"]], atol=1e-5)
    assert s["start_s"] == pytest.approx(s["start_frame"] / 25) and s["end_s"] == pytest.approx((s["end_frame"] + 1) / 25)
    assert 0 <= s["latency_s"] < 5
  import srt  # pylint: disable=import-outside-toplevel
  from pympi import Elan  # pylint: disable=import-outside-toplevel
  subs = list(srt.parse(open(srt_path, encoding="utf-8").read()))
  shown = ["?" if s["unknown"] else s["top_k"][0]["gloss"] for s in signs]  # an unknown sign is "?" alone
  assert [sub.content.split(" (")[0].rstrip("?") or "?" for sub in subs] == shown
  assert subs[0].start.total_seconds() == pytest.approx(signs[0]["start_s"])
  eaf = Elan.Eaf(eaf_path)
  notes = sorted(eaf.get_annotation_data_for_tier("gloss"))
  assert [n[2].rstrip("?") or "?" for n in notes] == shown
  assert notes[-1][1] == round(signs[-1]["end_s"] * 1000)
  # The files are never overwritten unasked.
  again = _live(f"--workdir={tiny_run}", f"--landmarks={signed_stream['path']}", f"--srt={srt_path}")
  assert again.returncode == 1 and again.stderr.strip().splitlines()[-1] == (
      f"error: --srt={srt_path}: the file exists; remove it or pass --overwrite")
  assert "loading" not in again.stderr  # refused before the model is loaded and compiled


def test_ctrl_c_keeps_the_signs_recognised_so_far(tiny_run, signed_stream, tmp_path):
  srt_path = str(tmp_path / "partial.srt")
  proc = subprocess.Popen([sys.executable, os.path.join(REPO, "scripts", "live.py"), f"--workdir={tiny_run}",
                           f"--landmarks={signed_stream['path']}", "--realtime", f"--srt={srt_path}", "--cut_hand=5",
                           "--cut_scale=1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          # A suite started in the background of a non-interactive shell inherits SIGINT ignored,
                          # and Python then never installs its Ctrl-C handler: give the child the terminal's.
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  first = proc.stdout.readline()  # the first sign, some seconds into the 16.6 s stream
  proc.send_signal(signal.SIGINT)
  rest, err = proc.communicate(timeout=60)
  assert proc.returncode == 130, err[-2000:]
  assert "Traceback" not in err and "interrupted" in err
  signs = [json.loads(line) for line in (first + rest).splitlines()]
  assert 1 <= len(signs) < len(signed_stream["truth"])
  import srt  # pylint: disable=import-outside-toplevel
  subs = list(srt.parse(open(srt_path, encoding="utf-8").read()))
  assert [sub.start.total_seconds() for sub in subs] == pytest.approx([s["start_s"] for s in signs])


def test_any_layout_streams_into_any_run(tiny_run, signed_stream):
  """A holistic543 stream (the Kaggle layout) into a seed162 run: the same signs and probabilities."""
  raw = np.load(signed_stream["path"])
  wide = np.zeros((len(raw), 543, 3), np.float32)
  pts = raw.reshape(len(raw), 54, 3)
  wide[:, 468:489], wide[:, 522:543], wide[:, 489 + 11:489 + 23] = pts[:, :21], pts[:, 21:42], pts[:, 42:]
  predictors = recognizer.load_predictors([tiny_run])
  a = stream.recognize_with(predictors, raw, 25.0, SYNTHETIC)["signs"]
  b = stream.recognize_with(predictors, wide.reshape(len(raw), -1), 25.0, SYNTHETIC)["signs"]
  assert [(s["start_frame"], s["end_frame"]) for s in a] == [(s["start_frame"], s["end_frame"]) for s in b]
  for x, y in zip(a, b):
    np.testing.assert_allclose([t["prob"] for t in x["top_k"]], [t["prob"] for t in y["top_k"]], atol=1e-6)


def test_recognizer_compiles_once(tiny_run, signed_stream):
  predictors = recognizer.load_predictors([tiny_run])
  raw = np.load(signed_stream["path"])
  stream.recognize_with(predictors, raw, 25.0, SYNTHETIC)
  forward = predictors[0]._forward  # pylint: disable=protected-access
  before = forward._cache_size()  # pylint: disable=protected-access
  result = stream.recognize_with(predictors, raw, 25.0, SYNTHETIC)
  assert len(result["signs"]) == 5 and forward._cache_size() == before == 1  # pylint: disable=protected-access


def test_ensemble_averages_the_runs(tiny_run, signed_stream):
  one = stream.recognize_with(recognizer.load_predictors([tiny_run]), np.load(signed_stream["path"]), 25.0)
  two = stream.recognize_with(recognizer.load_predictors([tiny_run, tiny_run]), np.load(signed_stream["path"]), 25.0)
  for a, b in zip(one["signs"], two["signs"]):
    np.testing.assert_allclose([t["prob"] for t in a["top_k"]], [t["prob"] for t in b["top_k"]], atol=1e-6)


def _one_error_line(out, expected):
  assert out.returncode != 0
  assert "Traceback" not in out.stderr, out.stderr[-3000:]
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and expected in last, out.stderr[-2000:]


def test_bad_landmark_sources_are_one_line(tiny_run, tmp_path):
  _one_error_line(_live(f"--workdir={tiny_run}", f"--landmarks={tmp_path / 'none.npy'}"), "none.npy: file not found")
  bad = tmp_path / "bad.npy"
  bad.write_bytes(b"\x93NUMPY garbage")
  _one_error_line(_live(f"--workdir={tiny_run}", f"--landmarks={bad}"), "bad.npy: cannot read .npy file")
  np.save(tmp_path / "wide.npy", np.zeros((10, 7), np.float32))
  _one_error_line(_live(f"--workdir={tiny_run}", f"--landmarks={tmp_path / 'wide.npy'}"),
                  "feature dimension 7 matches no landmark layout")
  _one_error_line(_live(f"--workdir={tiny_run}"), "give exactly one source")
  _one_error_line(_live(f"--workdir={tiny_run}", f"--landmarks={bad}", "--camera=0"), "give exactly one source")


@needs_extract
def test_live_video_end_to_end_with_subtitles_and_elan(tiny_run, tmp_path):
  srt_path, eaf_path = str(tmp_path / "v.srt"), str(tmp_path / "v.eaf")
  out = _live(f"--workdir={tiny_run}", f"--video={VIDEO}", f"--srt={srt_path}", f"--eaf={eaf_path}")
  assert out.returncode == 0, out.stderr[-2000:]
  signs = [json.loads(line) for line in out.stdout.splitlines()]
  assert signs, out.stderr
  for s in signs:
    assert 0 <= s["start_frame"] <= s["end_frame"] < 58 and len(s["top_k"]) == 5
  import srt  # pylint: disable=import-outside-toplevel
  from pympi import Elan  # pylint: disable=import-outside-toplevel
  assert len(list(srt.parse(open(srt_path, encoding="utf-8").read()))) == len(signs)
  assert len(Elan.Eaf(eaf_path).get_annotation_data_for_tier("gloss")) == len(signs)
  media = Elan.Eaf(eaf_path).media_descriptors
  # ELAN's form: a file:/// URL, and a relative one from the .eaf's folder.
  assert [m["MEDIA_URL"] for m in media] == ["file://" + os.path.abspath(VIDEO)], media
  assert os.path.normpath(os.path.join(tmp_path, media[0]["RELATIVE_MEDIA_URL"])) == os.path.abspath(VIDEO)


@needs_extract
def test_live_video_pose_out_has_the_frames_and_their_size(tiny_run, tmp_path):
  """--pose_out of a video: every frame, in the video's pixels (the test video is 540 x 720, ~30 fps),
  written by the core environment, which has no OpenCV."""
  pose_path = str(tmp_path / "v.pose")
  out = _live(f"--workdir={tiny_run}", f"--video={VIDEO}", f"--pose_out={pose_path}")
  assert out.returncode == 0, out.stderr[-2000:]
  from pose_format import Pose  # pylint: disable=import-outside-toplevel
  pose = Pose.read(open(pose_path, "rb").read())
  assert (pose.header.dimensions.width, pose.header.dimensions.height) == (540, 720)
  assert pose.body.data.shape[0] == 58 and abs(pose.body.fps - 30) < 1


@needs_extract
def test_bad_video_sources_are_one_line_with_no_file_left(tiny_run, tmp_path):
  srt_path = str(tmp_path / "x.srt")
  garbage = tmp_path / "garbage.mp4"
  garbage.write_bytes(os.urandom(5000))
  cut = tmp_path / "cut.mp4"
  data = open(VIDEO, "rb").read()
  cut.write_bytes(data[:len(data) // 2])
  for args, expected in (
      (["--camera=7"], "camera 7: cannot be opened"),
      ([f"--video={garbage}"], "garbage.mp4: cannot be opened as a video"),
      ([f"--video={tmp_path / 'missing.mp4'}"], "missing.mp4: video not found"),
      ([f"--video={cut}"], "cut.mp4: "),
  ):
    out = _live(f"--workdir={tiny_run}", *args, f"--srt={srt_path}")
    _one_error_line(out, expected)
    assert not os.path.exists(srt_path) or list(__import__("srt").parse(open(srt_path).read())) is not None
  # The extraction child cannot start (an interpreter without mediapipe).
  env = dict(os.environ, ASL_JAX_EXTRACT_PYTHON=sys.executable)
  _one_error_line(_live(f"--workdir={tiny_run}", f"--video={VIDEO}", env=env),
                  "the extraction process died before it started")


@needs_extract
@pytest.mark.skipif(not shutil.which("Xvfb"), reason="needs Xvfb for a screen")
def test_live_display_runs_on_a_screen_and_refuses_without_one(tiny_run, tmp_path):
  env = dict(os.environ)
  env.pop("DISPLAY", None)
  env.pop("WAYLAND_DISPLAY", None)
  _one_error_line(_live(f"--workdir={tiny_run}", f"--video={VIDEO}", "--display", env=env),
                  "--display needs a screen, and DISPLAY is not set")
  screen = subprocess.Popen(["Xvfb", ":97", "-screen", "0", "800x800x24"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
  try:
    time.sleep(1)
    out = _live(f"--workdir={tiny_run}", f"--video={VIDEO}", "--display", env=dict(env, DISPLAY=":97"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert [json.loads(line) for line in out.stdout.splitlines()]
  finally:
    screen.terminate()
    screen.wait()


@needs_extract
def test_extraction_child_dying_mid_stream_is_one_error():
  src = sources.ExtractionSource(VIDEO, "seed162")
  frames = iter(src)
  next(frames)
  os.kill(src.proc.pid, signal.SIGKILL)
  with pytest.raises(DataError, match="the extraction process died .*exit status -9"):
    for _ in frames:
      pass
  src.close()


def test_predict_and_live_default_to_the_shipped_model(signed_stream):
  glosses = set(json.load(open(os.path.join(pretrained.WLASL100, "label_mapping.json"))).values())
  out = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "predict.py"),
                        f"--landmarks={signed_stream['files'][0]}"], capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "using the shipped WLASL100 model" in out.stderr
  row = json.loads(out.stdout)
  assert len(row["top_k"]) == 5 and {t["gloss"] for t in row["top_k"]} <= glosses
  live = _live(f"--landmarks={signed_stream['path']}")
  assert live.returncode == 0, live.stderr[-2000:]
  signs = [json.loads(line) for line in live.stdout.splitlines()]
  assert signs and all(s["top_k"][0]["gloss"] in glosses for s in signs)


@pytest.mark.skipif(not SHARED or not os.path.exists(os.path.join(pretrained.WLASL100, "config.json")),
                    reason="needs ../shared/data and the shipped model")
def test_shipped_model_reproduces_its_test_accuracy():
  reported = json.load(open(os.path.join(pretrained.WLASL100, "test_report.json")))
  real = os.path.join(SHARED, "wlasl_real")
  predictor = predict.Predictor(pretrained.resolve(None))
  split = json.load(open(os.path.join(real, "nslt_100.json")))
  ids = sorted(v for v, e in split.items() if e["subset"] == "test"
               and os.path.exists(os.path.join(real, "landmarks", f"{v}_landmarks.npy")))
  probs = predictor.predict_clips([predictor.load_clip(os.path.join(real, "landmarks", f"{v}_landmarks.npy"))
                                   for v in ids])
  labels = np.array([split[v]["action"][0] for v in ids])
  assert len(ids) == reported["test_clips"]
  top1 = float(np.mean(np.argmax(probs, -1) == labels))
  top5 = float(np.mean([l in np.argsort(-p)[:5] for p, l in zip(probs, labels)]))
  assert top1 == pytest.approx(reported["test_top1"], abs=1e-6)
  assert top5 == pytest.approx(reported["test_top5"], abs=1e-6)
  # Its probabilities are the calibrated ones (calibration.json), with the calibration error it reports.
  assert predictor.run.model.temperature != 1.0 and predictor.unknown_threshold is not None
  if "test_ece" in reported:
    from asl_jax.evaluation import calibration  # pylint: disable=import-outside-toplevel
    assert calibration.expected_calibration_error(probs, labels) == pytest.approx(reported["test_ece"], abs=1e-5)


def test_pose_out_records_the_stream_and_replays_to_the_same_signs(tiny_run, signed_stream, tmp_path):
  """--pose_out writes the stream's landmarks as a pose-format file (its fps inside); given back as
  --landmarks it yields the same signs and probabilities."""
  pose_path = str(tmp_path / "stream.pose")
  first = _live(f"--workdir={tiny_run}", f"--landmarks={signed_stream['path']}", "--fps=20", "--cut_hand=5",
                "--cut_scale=1", f"--pose_out={pose_path}")
  assert first.returncode == 0, first.stderr[-2000:]
  from asl_jax.data import formats, layouts  # pylint: disable=import-outside-toplevel
  raw = np.load(signed_stream["path"])
  np.testing.assert_allclose(formats.read(pose_path), layouts.to_holistic543(raw, "seed162"), atol=1e-5)
  assert formats.pose_fps(pose_path) == 20
  again = _live(f"--workdir={tiny_run}", f"--landmarks={pose_path}", "--cut_hand=5", "--cut_scale=1")
  assert again.returncode == 0, again.stderr[-2000:]
  a, b = ([json.loads(line) for line in r.stdout.splitlines()] for r in (first, again))
  assert [(s["start_frame"], s["end_frame"], s["top_k"][0]["gloss"]) for s in a] == [
      (s["start_frame"], s["end_frame"], s["top_k"][0]["gloss"]) for s in b]
  assert [s["start_s"] for s in a] == [s["start_s"] for s in b]  # the rate came from the file
  exists = _live(f"--workdir={tiny_run}", f"--landmarks={signed_stream['path']}", f"--pose_out={pose_path}")
  assert exists.returncode != 0 and "--pose_out=" in exists.stderr and "exists" in exists.stderr


def test_a_second_live_on_the_same_subtitles_is_refused_at_once(tiny_run, signed_stream, tmp_path):
  """Another asl-live holding --srt: this one stops in seconds, naming the flag and the holder, and writes
  nothing; the lock file goes when its holder ends."""
  srt_path = str(tmp_path / "shared.srt")
  with writers.OutputLock({"--srt": srt_path}):
    t0 = time.time()
    out = _live(f"--workdir={tiny_run}", f"--landmarks={signed_stream['path']}", f"--srt={srt_path}")
    assert out.returncode == 1 and time.time() - t0 < 20
    _one_error_line(out, f"--srt={srt_path}: another asl-live (PID {os.getpid()}) is writing this file")
    assert not os.path.exists(srt_path)
  assert sorted(os.listdir(tmp_path)) == []
