"""The browser page (web/): its segmenter gives asl_jax's signs on the same landmark streams (node), and in
headless Chromium (Debian's package) the page recognises a video with the shipped model as `asl-live --video`
does, runs from a fake camera, draws the mirrored preview with the skeleton, and says in one message on the
page when the camera is refused or missing."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from asl_jax import pretrained
from asl_jax.live import segmenter as seg
from asl_jax.serving import enroll, export
from test_live_segmenter import Signer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEB = os.path.join(REPO, "web")
VIDEO = os.path.join(REPO, "tests", "data", "test_video.mp4")
VIDEO_FPS = 29.916666666666668  # its frame rate, as OpenCV reads it
NODE = shutil.which("node")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
EXTRACT_PY = os.path.join(REPO, ".venv-extract", "bin", "python")
HAS_BROWSER = bool(NODE) and os.path.exists(CHROMIUM) and os.path.isdir(os.path.join(WEB, "node_modules",
                                                                                        "playwright-core"))
needs_node = pytest.mark.skipif(not NODE, reason="needs node (the page's segmenter runs in it)")
needs_browser = pytest.mark.skipif(not HAS_BROWSER, reason="needs node, /usr/bin/chromium and web/node_modules "
                                                           "(`make test` installs them: `cd web && npm ci`)")


# ------------------------------------------------------------------------------------------- segmenter

def _js_segments(tmp_path, stream: np.ndarray, fps: float, config: dict) -> list[tuple[int, int]]:
  path = tmp_path / "stream.f32"
  np.ascontiguousarray(stream, np.float32).tofile(path)
  out = subprocess.run([NODE, os.path.join(WEB, "tools", "segment.mjs"), str(path), repr(fps), json.dumps(config)],
                       capture_output=True, text=True, timeout=60, check=True)
  return [tuple(s) for s in json.loads(out.stdout)]


def _streams():
  """(name, stream, fps, settings): every rule of the segmenter at work (rests, bridged drops, blips, edit
  cuts of the body and of a wrist, long signs split at their slowest frame), at three frame rates (at 15 fps
  min_len_s=0.3 is 4.5 frames: Python's round-half-even gives 4) and with other settings."""
  rests = Signer(0).rest(10).sign(20).rest(12).sign(30, two_hands=True, drop=(7, 8)).rest(3).sign(2).rest(15)
  cuts = Signer(1).rest(5).sign(25).move(centre=(0.3, 0.5)).sign(25).move(width=0.4).sign(20).rest(10)
  wrist = Signer(2).rest(5).sign(20).sign(20, at=(2.5, 0.0)).rest(10)
  long = Signer(3).rest(5).sign(200, pause_at=110).rest(10).sign(40, speed=3.0).rest(5)
  out = [(name, np.stack(s.frames), fps, {}) for name, s in (("rests", rests), ("cuts", cuts), ("wrist", wrist),
                                                               ("long", long)) for fps in (25.0, 15.0, 30.0)]
  out.append(("long-short-max", np.stack(long.frames), 25.0, {"max_len_s": 2.0, "gap_s": 0.2}))
  out.append(("cuts-sensitive", np.stack(cuts.frames), 25.0, {"cut_body": 0.05, "cut_scale": 0.05,
                                                              "cut_window_s": 0.32}))
  # Edge cases where a careless port differs: a 4-frame sign at 15 fps (min_len 4.5 frames rounds to 4, to
  # even), a long sign whose hands freeze (equal smoothed speeds: the split takes the first slowest frame),
  # and frames without a pose around cuts at 30 fps (a 5-frame window needs 2 posed frames a side).
  out.append(("blip4", np.stack(Signer(4).rest(10).sign(4).rest(10).sign(20).rest(10).frames), 15.0, {}))
  frozen = np.stack(Signer(5).rest(5).sign(200).rest(10).frames)
  frozen[90:120] = frozen[90]
  out.append(("frozen", frozen, 25.0, {}))
  gaps = np.stack(cuts.frames)
  for cut in (30, 55):
    gaps[[cut - 4, cut - 2, cut - 1, cut + 1, cut + 2, cut + 3], 126:] = 0
  out += [("posegaps", gaps, fps, {}) for fps in (30.0, 25.0)]
  real = os.path.join(REPO, "..", "shared", "data", "wlasl_real", "landmarks")
  if os.path.isdir(real):  # real MediaPipe streams: 40 WLASL clips back to back (read here, never copied)
    names = sorted(n for n in os.listdir(real) if n.endswith("_landmarks.npy"))[:40]
    out.append(("wlasl", np.concatenate([np.load(os.path.join(real, n)) for n in names]), 25.0, {}))
  return out


@needs_node
def test_the_pages_segmenter_gives_the_same_signs_as_asl_live(tmp_path):
  kinds = set()
  for name, stream, fps, config in _streams():
    py = seg.segment(stream, "seed162", seg.SegmenterConfig(**config), fps)
    assert py, name
    assert _js_segments(tmp_path, stream, fps, config) == [(int(a), int(b)) for a, b in py], (name, fps, config)
    kinds.add(name.split("-")[0])
  assert {"rests", "cuts", "wrist", "long", "blip4", "frozen", "posegaps"} <= kinds


@needs_node
def test_the_pages_segmenter_refuses_bad_settings(tmp_path):
  stream = np.stack(Signer(0).rest(5).sign(10).frames)
  for config, fps, said in (({"gap_s": 0}, 25.0, "gap_s=0: must be > 0"),
                            ({"cut_window_s": 0.6}, 25.0, "the look-ahead is at most 0.5 s"),
                            ({"max_len_s": 0.5}, 25.0, "must exceed twice min_len_s"), ({}, 0, "fps=0")):
    path = tmp_path / "s.f32"
    stream.astype(np.float32).tofile(path)
    out = subprocess.run([NODE, os.path.join(WEB, "tools", "segment.mjs"), str(path), str(fps), json.dumps(config)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and said in out.stderr, (config, out.stderr[-500:])


@needs_node
def test_a_recording_keeps_exactly_one_sign(tmp_path):
  """"Add a sign" cuts the sign out of a recording with the segmenter (web/src/enrol.js cutExample): one sign
  is kept, with asl-live's span; a recording with no sign, or with two, says so and keeps nothing."""
  def cut(stream):
    path = tmp_path / "rec.f32"
    np.ascontiguousarray(stream, np.float32).tofile(path)
    out = subprocess.run([NODE, os.path.join(WEB, "tools", "cut.mjs"), str(path), "25"], capture_output=True,
                         text=True, timeout=60, check=True)
    return json.loads(out.stdout)
  one = np.stack(Signer(0).rest(10).sign(20).rest(12).frames)
  [(a, b)] = seg.segment(one, "seed162", seg.SegmenterConfig(), 25.0)
  assert cut(one) == {"span": [int(a), int(b)], "frames": int(b - a + 1)}
  assert cut(np.stack(Signer(1).rest(30).frames)) == {"error": "No sign was found in the recording: sign once, "
                                                     "with your hands down before and after. Nothing was kept."}
  two = np.stack(Signer(2).rest(10).sign(20).rest(12).sign(25).rest(10).frames)
  assert cut(two) == {"error": "The recording holds 2 signs: record one sign at a time. Nothing was kept."}


@needs_node
@pytest.mark.parametrize("kind,earlier", [("dense", False), ("cosine", False), ("dense", True), ("cosine", True)])
def test_the_pages_check_of_a_sign_is_asl_enrolls(tmp_path, kind, earlier):
  """The page checks each sign on its own examples with asl-enroll's arithmetic (web/src/enrol.js Head.check
  against class_vectors.check_examples), on a small last layer: 'twin' lies on a known class, 'muddle' one
  example on each of three, 'fresh' off them all, and 'book' refines a known class from one example (named
  BOOK in the page, which refines the model's book as asl-enroll does). With `earlier`, the model is a run
  asl-enroll made: its 'tell' was enrolled (from 2 examples) and its 'book' refined before, so the page
  rebuilds 'tell' from those and its own examples, and refines 'book' from its trained vector. The grown
  layer's probabilities are asl-enroll's too."""
  from asl_jax.evaluation import calibration, class_vectors  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(3)
  e, c, v = 12, 6, 2
  kernel, bias = rng.normal(0, 1, (e, c)), rng.normal(0, 0.1, c)
  glosses = ["book", "cow", "deaf", "letter", "tell", "go"]
  enrol = {"shots": [1, 2, 3, 5], "scale": [4.0, 5.0, 6.0, 7.0], "bias": [-1.0, -0.5, 0.0, 0.2], "embedding_norm": 1.0}
  near = lambda w, n: np.stack([[w / np.linalg.norm(w) * 3 + rng.normal(0, 0.4, e) for _ in range(v)]  # noqa: E731
                                for _ in range(n)], 1)  # (V, n, E)
  signs = {"twin": near(kernel[:, 1], 3),
           "muddle": np.concatenate([near(kernel[:, j], 1) for j in (2, 3, 4)], 1),
           "fresh": near(rng.normal(0, 1, e), 2), "book": near(kernel[:, 0], 1)}
  records, again, hashes = {}, {}, {}
  landmarks = [rng.uniform(0, 1, (t, 162)).astype(np.float32) for t in (5, 8)]  # 'fresh's, hashed by the page
  if earlier:
    # The page also holds a copy of an example the model was enrolled from (the same hash): 'tell's first, and
    # 'cow's only one, so the page leaves 'cow' as the model has it, as asl-enroll would.
    signs["tell"] = near(kernel[:, 4] + rng.normal(0, 1, e), 2)
    again = {"tell": near(rng.normal(0, 1, e), 1), "cow": near(kernel[:, 1], 1)}
    hashes = {"tell": ["aa" * 32, "ab" * 32], "cow": ["cc" * 32]}
    records = {"tell": {"sum": class_vectors.example_sum(np.concatenate([near(rng.normal(0, 1, e), 1), again["tell"]], 1))
                        .tolist(), "examples": 2, "hashes": ["ab" * 32, "aa" * 32]},
               "book": {"sum": class_vectors.example_sum(near(kernel[:, 0], 1)).tolist(), "examples": 1,
                        "trained": {"kernel": rng.normal(0, 1, e).tolist(), "bias": 0.3}},
               "cow": {"sum": class_vectors.example_sum(again["cow"]).tolist(), "examples": 1, "hashes": ["cc" * 32]}}
  head = {"kernel": kernel, "bias": bias}
  if kind == "cosine":
    head["log_scale"] = np.log(8.0)
    signs = {g: x / np.linalg.norm(x, axis=-1, keepdims=True) for g, x in signs.items()}
    again = {g: x / np.linalg.norm(x, axis=-1, keepdims=True) for g, x in again.items()}
  # What the page holds: the examples enrolled before first (their copies), then its own.
  held = {**{g: np.concatenate([again[g], x], 1) if g in again else x for g, x in signs.items()},
          **{g: x for g, x in again.items() if g not in signs}}
  all_glosses = glosses + [g for g in signs if g not in glosses]
  columns = {all_glosses.index(g): class_vectors.class_vector(x, enrol, records.get(g)) for g, x in signs.items()}
  at_class = {all_glosses.index(g): r for g, r in records.items()}
  python = class_vectors.check_examples({"head": {"logits": head}}, columns, len(all_glosses) - c,
                                        {all_glosses.index(g): x for g, x in signs.items()}, enrol, 0.7, at_class)
  grown = class_vectors.grow_head({"head": {"logits": head}}, columns, len(all_glosses) - c,
                                  earlier=at_class)["head"]["logits"]
  case = {"meta": {"head": {"embedding_dim": e, "num_classes": c, "kind": kind, "file": "head.bin",
                            "log_scale": float(head.get("log_scale", 0.0))},
                   "temperature": 0.7, "enrol": enrol, "refine_weight": class_vectors.REFINE_WEIGHT, "glosses": glosses,
                   "enrolled_signs": records},
          "raw": list(np.r_[kernel.ravel(), bias]), "views": v,
          "signs": [{"gloss": "BOOK" if g == "book" else g, "embs": [x[:, i].ravel().tolist() for i in range(x.shape[1])],
                     **({"landmarks": [a.tolist() for a in landmarks]} if g == "fresh" else
                        {"hashes": hashes[g][:1] + [None] * (x.shape[1] - 1) if g in hashes and g in signs else
                         hashes.get(g, [])})}
                    for g, x in held.items()]}
  (tmp_path / "case.json").write_text(json.dumps(case))
  out = subprocess.run([NODE, os.path.join(WEB, "tools", "check.mjs"), str(tmp_path / "case.json")],
                       capture_output=True, text=True, timeout=60, check=True)
  page = json.loads(out.stdout)
  page["book"] = page.pop("BOOK")
  # The page hashes an example as asl-enroll hashes one of the page's export, and leaves 'cow' unchanged.
  assert page["hashes"]["fresh"] == [enroll.example_hash(enroll.Example("fresh", "x", a)) for a in landmarks]
  assert page.pop("unchanged") == (["cow"] if earlier else [])
  del page["hashes"]
  for g, x in signs.items():
    r = python[all_glosses.index(g)]
    want = (r["examples"], r["earlier"], [all_glosses[o] for o in r["left_out"]], all_glosses[r["closest"]])
    got = page[g]
    assert (got["examples"], got["earlier"], [g] * got["recognised"] + got["takenFor"], got["closest"]) == (
        want[0], want[1], sorted(want[2], key=lambda o: o != g), want[3]), (kind, g, got, r)
    assert abs(got["closestProb"] - r["closest_prob"]) < 1e-5, (kind, g, got, r)  # the page keeps float32
    probs = calibration.mean_probs(class_vectors.head_logits(x[:, :1], grown), 0.7)[0]
    np.testing.assert_allclose(got["probs"], probs, atol=1e-5, err_msg=f"{kind} {g}")
  if earlier:  # book's one example is tried on the book it refined before (from one example)
    assert page["book"]["earlier"] == 1 and page["book"]["recognised"] + len(page["book"]["takenFor"]) == 1
  if not earlier:  # the case exercises both outcomes: twin's and muddle's left-out examples go to their classes
    assert page["muddle"]["takenFor"] == ["deaf", "letter", "tell"] and page["muddle"]["recognised"] == 0
    assert page["twin"]["closest"] == "cow" and page["fresh"]["recognised"] == 2


@needs_node
def test_the_page_reads_sign_names_as_asl_enroll_does(tmp_path):
  """A name typed or imported in the page is valid where asl-enroll's is, and names the sign asl-enroll's
  does: a known gloss in capitals or decomposed Unicode is the model's own (web/src/enrol.js checkGloss
  against enroll.valid_gloss and enroll.same_gloss)."""
  known = ["book", "Café", "go"]
  names = ["BOOK", "book", "Book ", "CAFE\u0301", "caf\u00e9", "go on", "what?", "?", "who? me", ".hidden",
           "a/b", "tab\there", "x" * 64, "x" * 65, "\u00e9t\u00e9", "sign0000"]
  (tmp_path / "case.json").write_text(json.dumps({"known": known, "names": names}))
  out = subprocess.run([NODE, os.path.join(WEB, "tools", "gloss.mjs"), str(tmp_path / "case.json")],
                       capture_output=True, text=True, timeout=60, check=True)
  page = json.loads(out.stdout)
  want = [{"gloss": enroll.same_gloss(n, known)} if enroll.valid_gloss(n) else "error" for n in names]
  assert [p if "gloss" in p else "error" for p in page] == want, list(zip(names, page))
  assert [p.get("gloss") for p in page[:5]] == ["book", "book", "book", "Café", "Café"]
  assert sum("error" in p for p in page) == 6


@needs_node
def test_the_pages_accept_picks_the_threshold_asl_predict_would(tmp_path):
  """accept=0.8 in the page's URL gives the threshold --unknown_accept=0.8 gives (the export carries them,
  computed by calibration.threshold_for); none gives the stored one; a share the export lacks, or a model
  without held-out scores, is one message."""
  from asl_jax.evaluation import calibration  # pylint: disable=import-outside-toplevel
  from asl_jax.runs.restore import load_run  # pylint: disable=import-outside-toplevel
  run = load_run(pretrained.resolve(""))
  meta = {"unknown_threshold": run.unknown_threshold, "unknown_thresholds": export.unknown_thresholds(run)}
  accepts = [None, "0.8", "0.95", "0.5", "0.33"]
  cases = [{"meta": meta, "accepts": accepts}, {"meta": {"unknown_threshold": 0.2, "unknown_thresholds": None},
                                                "accepts": [None, "0.8"]}]
  got = []
  for i, case in enumerate(cases):
    (tmp_path / f"case{i}.json").write_text(json.dumps(case))
    out = subprocess.run([NODE, os.path.join(WEB, "tools", "threshold.mjs"), str(tmp_path / f"case{i}.json")],
                         capture_output=True, text=True, timeout=60, check=True)
    got.append(json.loads(out.stdout))
  want = [run.unknown_threshold] + [calibration.threshold_for(run.calibration, float(a), "") for a in accepts[1:4]]
  assert [g["threshold"] for g in got[0][:4]] == want and want[0] == want[2] < want[1] < want[3]
  assert "accept=0.33: this model offers 0.99, 0.95, 0.9" in got[0][4]["error"]
  assert got[1][0] == {"threshold": 0.2} and "keeps no held-out scores" in got[1][1]["error"]


# --------------------------------------------------------------------------------------------- browser

@pytest.fixture(scope="module")
def site(tmp_path_factory):
  """The page built as `make web` builds it, with the shipped model exported to ONNX."""
  tmp = tmp_path_factory.mktemp("web")
  model = export.export_run(pretrained.resolve(""), str(tmp / "model"), fmt="onnx")
  subprocess.run([NODE, os.path.join(WEB, "build.mjs"), model, str(tmp / "dist")], check=True, timeout=120,
                 capture_output=True)
  return str(tmp / "dist")


def _page(site, tmp_path, *args, timeout=240) -> dict:
  out = tmp_path / "page.json"
  proc = subprocess.run([NODE, os.path.join(WEB, "tools", "browser.mjs"), str(out), f"--dist={site}",
                         f"--timeout={timeout}", *args], capture_output=True, text=True, timeout=timeout + 60)
  assert proc.returncode == 0, proc.stderr[-3000:]
  status = json.loads(out.read_text())
  assert not status.get("timed_out"), status
  return status


@needs_browser
@pytest.mark.parametrize("how,said", [("--deny", "Camera permission was denied: allow the camera"),
                                      ("--no-camera", "No usable camera was found")])
def test_without_a_camera_the_page_says_so(site, tmp_path, how, said):
  status = _page(site, tmp_path, how, timeout=120)
  assert status["state"] == "error" and status["message"].startswith(said), status["message"]
  assert status["error"] == status["message"] and "\n" not in status["message"]


def _live_signs(*flags: str) -> list[dict]:
  out = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "live.py"), *flags], capture_output=True,
                       text=True, timeout=300, cwd=REPO)
  assert out.returncode == 0, out.stderr[-2000:]
  return [json.loads(line) for line in out.stdout.splitlines()]


def _check_the_signs_asl_live_finds(tmp_path, page: list, landmarks: list, step: int) -> None:
  """Every 3rd frame of the test video in the page (video mode: each frame shown, then processed) and in
  asl-live --video --frame_step=3: the same signs (their spans overlapping by IoU >= 0.5: MediaPipe for
  JavaScript finds the hands of a frame or two differently), and the same top gloss wherever asl-live's is
  clear (a margin of 0.1 over the second). On this clip, not a WLASL100 sign, the model hesitates between
  two glosses, so the page's top gloss is only checked to be among asl-live's first three. What is the page's
  own (the segmenter, the recogniser, the model) is checked exactly: asl-live on the page's landmarks
  finds the page's signs, with its probabilities to 1e-4."""
  live = _live_signs(f"--video={VIDEO}", f"--frame_step={step}")
  assert live, "the test video has a sign"
  assert len(page) == len(live), (page, live)
  for p, l in zip(page, live):
    inter = min(p["end_frame"], l["end_frame"]) - max(p["start_frame"], l["start_frame"]) + 1
    union = max(p["end_frame"], l["end_frame"]) - min(p["start_frame"], l["start_frame"]) + 1
    assert inter / union >= 0.5, (p, l)
    if l["top_k"][0]["prob"] - l["top_k"][1]["prob"] > 0.1:
      assert p["top_k"][0]["gloss"] == l["top_k"][0]["gloss"], (p, l)
    assert p["top_k"][0]["gloss"] in [t["gloss"] for t in l["top_k"][:3]], (p, l)
  path = tmp_path / "page_landmarks_before.npy"
  np.save(path, np.asarray(landmarks, np.float32))
  same = _live_signs(f"--landmarks={path}", f"--fps={VIDEO_FPS / step}")
  assert len(same) == len(page), (same, page)
  for p, l in zip(page, same):
    assert abs(p["start_s"] - l["start_s"]) < 1e-3 and abs(p["end_s"] - l["end_s"]) < 1e-3, (p, l)
    assert [t["gloss"] for t in p["top_k"]] == [t["gloss"] for t in l["top_k"]], (p, l)
    np.testing.assert_allclose([t["prob"] for t in p["top_k"]], [t["prob"] for t in l["top_k"]], atol=1e-4)
    assert ("warning" in p) == ("warning" in l), (p, l)
    assert p["unknown"] == l["unknown"], (p, l)  # the run's threshold, from meta.json in the page


# Run in the extraction environment (OpenCV): the test video letterboxed into 640x480 as a YUV4MPEG2 file
# (what Chromium's fake camera reads, played at 30 fps) and as RGB frames for the comparison.
CAMERA = """
import sys, cv2, numpy as np
from asl_jax.extract.frames import letterbox, read_frames
frames = [letterbox(rgb) for rgb in read_frames(sys.argv[1])]
with open(sys.argv[2], "wb") as fh:
    fh.write(b"YUV4MPEG2 W640 H480 F30:1 Ip A1:1 C420jpeg\\n")
    for f in frames:
        fh.write(b"FRAME\\n" + cv2.cvtColor(f, cv2.COLOR_RGB2YUV_I420).tobytes())
np.save(sys.argv[3], np.stack(frames))
"""


@pytest.fixture(scope="module")
def camera(tmp_path_factory):
  """The test video as a fake camera's file (camera.y4m) and its letterboxed RGB frames (frames.npy)."""
  tmp = tmp_path_factory.mktemp("camera")
  subprocess.run([EXTRACT_PY, "-c", CAMERA, VIDEO, str(tmp / "camera.y4m"), str(tmp / "frames.npy")], check=True,
                 timeout=120)
  return tmp


@pytest.mark.heavy
@needs_browser
@pytest.mark.skipif(not os.path.exists(EXTRACT_PY), reason="needs the extraction environment (make extract-env)")
def test_the_page_runs_from_a_fake_camera_and_draws_a_mirror_with_the_skeleton(site, camera, tmp_path):
  """The test video as a camera (Chromium's fake device plays it in a loop at 30 fps): frames are processed
  as fast as the page can (the rest dropped and counted), and the preview (the canvas's pixels) is the
  mirrored camera image with the skeleton drawn over it: it matches the mirrored frame better than the
  unmirrored one, and it is white (the arms' lines) where the frame is not."""
  shot = tmp_path / "preview.png"
  status = _page(site, tmp_path, f"--video={camera / 'camera.y4m'}", "--query=frames=12",
                 f"--screenshot={shot}")
  frames = np.load(camera / "frames.npy").astype(np.float32)
  assert status["error"] is None and status["done"] and status["ready"], status
  assert status["frames"] == 12 and status["processed"] >= 3
  assert status["processed"] + status["dropped"] == 12  # every camera frame was processed or counted as dropped
  img = np.asarray(Image.open(shot).convert("RGB"), np.float32)
  assert img.shape[:2] == (480, 640), img.shape
  diffs = [float(np.abs(img - b[:, ::-1]).mean()) for b in frames]
  mirrored = min(diffs)
  plain = min(float(np.abs(img - b).mean()) for b in frames)
  assert mirrored < 20 and mirrored < plain - 5, (mirrored, plain)
  # The skeleton: white lines and points (pose) where the frame shown is not white.
  frame = frames[int(np.argmin(diffs))][:, ::-1]
  drawn = (img >= 250).all(-1) & (frame < 200).any(-1)
  assert drawn.sum() > 100, drawn.sum()


# ------------------------------------------------------------------------------------------- your signs

def _steps(tmp_path, steps: list, name: str = "steps.json") -> str:
  path = tmp_path / name
  path.write_text(json.dumps(steps))
  return f"--steps={path}"


ENROL_READY = {"wait": "window.aslLive.enrol.ready"}
ENROL_IDLE = {"wait": "window.aslLive.enrol.ready && !window.aslLive.enrol.busy && !window.aslLive.enrol.recording"}
PAGE_DONE = {"wait": "window.aslLive && (window.aslLive.done || window.aslLive.error)"}
# The screenshot docs/enrolment.md shows; the test writes it there when ASL_JAX_WRITE_SCREENSHOTS=1.
SCREENSHOT = os.path.join(REPO, "docs", "enrolment_page.png")


@pytest.mark.heavy
@needs_browser
@pytest.mark.skipif(not os.path.exists(EXTRACT_PY), reason="needs the extraction environment (make extract-env)")
def test_the_page_finds_asl_lives_signs_in_a_video_and_learns_a_sign_from_it(site, tmp_path):
  """The test video in the page (video mode, every 3rd frame). First, the page finds the signs asl-live
  finds (_check_the_signs_asl_live_finds). Then the gloss is refused empty; a recording of the video adds a
  sign; after a reload the stored sign is recognised in the same video; its exported file, enrolled by asl-enroll into the shipped model, gives asl-live the page's
  probabilities and unknown decision to 1e-4 on the page's own landmarks."""
  step, gloss = 3, "my wave"
  exported = tmp_path / "asl_jax_signs.json"
  status = _page(site, tmp_path, f"--media={os.path.dirname(VIDEO)}", "--no-camera",
                 f"--query=video=/media/{os.path.basename(VIDEO)}&fps={VIDEO_FPS}&step={step}&debug=1",
                 _steps(tmp_path, [ENROL_READY, PAGE_DONE, {"snap": "before"},
                                   {"click": "#record"}, {"snap": "empty"},
                                   {"fill": "#gloss", "value": gloss}, {"click": "#record"}, ENROL_IDLE,
                                   {"snap": "first"}, {"reload": True}, PAGE_DONE, ENROL_IDLE,
                                   {"snap": "reloaded"}, {"screenshot": str(tmp_path / "page.png")},
                                   {"download": "#export", "to": str(exported)}, {"snap": "exported"},
                                   {"click": "#strict"}, {"snap": "strict"}]),
                 timeout=420)
  snaps = status["snaps"]
  assert all(s["error"] is None for s in snaps.values()), snaps
  if os.environ.get("ASL_JAX_WRITE_SCREENSHOTS") == "1":
    shutil.copy(tmp_path / "page.png", SCREENSHOT)
  assert status["processed"] == 20 and status["frames"] == 58  # after the reload: the video once more (every 3rd frame)
  # Holistic's smoothing filters skip a frame whose timestamp is not after their start (and log this).
  assert not [w for w in status["warnings"] if "timestamp" in w.lower()], status["warnings"]
  # Nothing fails to load (the page names its icon, so Chromium does not ask the server for /favicon.ico).
  assert not [w for w in status["warnings"] if w.startswith("error: ")], status["warnings"]
  before = snaps["before"]
  _check_the_signs_asl_live_finds(tmp_path, before["signs"], before["landmarks"], step)
  shown = "?" if before["signs"][-1]["unknown"] else before["signs"][-1]["top_k"][0]["gloss"] + (
      "?" if "warning" in before["signs"][-1] else "")
  assert before["current"] == shown
  assert snaps["before"]["signs"] and gloss not in [t["gloss"] for t in snaps["before"]["signs"][0]["top_k"]]
  assert snaps["before"]["enrol"]["persistent"] is True
  assert snaps["empty"]["enrol_message"] == "Type the sign's name (its gloss) first." and not snaps["empty"]["list"]
  assert snaps["first"]["enrol_message"].startswith(f'Added "{gloss}" from one example (')
  assert snaps["first"]["enrol"]["signs"] == [{"gloss": gloss, "examples": 1, "known": False}]
  # After the reload: the sign came back from the browser's storage, and the video is recognised as it.
  after = snaps["reloaded"]
  assert after["enrol"]["signs"] == [{"gloss": gloss, "examples": 1, "known": False}]
  assert after["list"] and after["list"][0].startswith(f"{gloss} 1 example")
  assert len(after["signs"]) == 1 and after["signs"][0]["top_k"][0]["gloss"] == gloss, after["signs"]
  assert not after["signs"][0]["unknown"] and after["current"] == gloss
  assert snaps["exported"]["enrol_message"].startswith("Exported 1 sign to asl_jax_signs.json")
  # "Say ? more often" switches to the threshold --unknown_accept=0.8 gives (the export's, from the run's scores).
  from asl_jax.runs.restore import load_run  # pylint: disable=import-outside-toplevel
  shipped = load_run(pretrained.resolve(""))
  assert snaps["exported"]["unknown_threshold"] == shipped.unknown_threshold and not snaps["exported"]["strict"]
  assert snaps["strict"]["strict"] and snaps["strict"]["unknown_threshold"] == export.unknown_thresholds(shipped)["0.8"]
  # The same decisions as Python: asl-enroll reads the page's file; asl-live scores the page's landmarks.
  doc = json.loads(exported.read_text())
  assert doc["format"] == "asl_jax signs" and [s["gloss"] for s in doc["signs"]] == [gloss]
  assert len(doc["signs"][0]["examples"]) == 1
  run = tmp_path / "mine"
  out = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "enroll.py"), f"--signs={exported}",
                        f"--workdir={run}"], capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  landmarks = tmp_path / "page_landmarks.npy"
  np.save(landmarks, np.asarray(after["landmarks"], np.float32))
  live = _live_signs(f"--workdir={run}", f"--landmarks={landmarks}", f"--fps={VIDEO_FPS / step}")
  assert len(live) == len(after["signs"]), (live, after["signs"])
  for p, l in zip(after["signs"], live):
    assert [t["gloss"] for t in p["top_k"]] == [t["gloss"] for t in l["top_k"]], (p, l)
    np.testing.assert_allclose([t["prob"] for t in p["top_k"]], [t["prob"] for t in l["top_k"]], atol=1e-4)
    assert p["unknown"] == l["unknown"]


@pytest.fixture(scope="module")
def signs_file(tmp_path_factory):
  """A signs file as the page exports it: two signs, one the shipped model knows ("book")."""
  from asl_jax.serving import enroll  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  def clip(t):
    x = np.zeros((t, 162), np.float32)
    x[:, :63] = rng.uniform(0.3, 0.7, (t, 63))
    x[:, 126:] = rng.uniform(0.3, 0.7, (t, 36))
    return x
  path = tmp_path_factory.mktemp("signs") / "asl_jax_signs.json"
  enroll.write_signs_file(str(path), {"grandma": [clip(12), clip(15)], "book": [clip(10)]})
  return path


@needs_browser
def test_signs_imported_into_a_fresh_profile_and_every_message(site, signs_file, tmp_path):
  """A fresh browser profile without a camera: the panel still works. Importing the exported file gives its
  list back (and exporting it again gives the same file's signs); recording without a camera, a file that is
  not an export, and deleting an example and a sign each say one thing; and a browser that refuses storage
  says so and keeps the signs for the session."""
  bad = tmp_path / "notes.json"
  bad.write_text('{"hello": 1}')
  again = tmp_path / "again.json"
  status = _page(site, tmp_path, "--no-camera", *[_steps(tmp_path, [
      ENROL_READY, {"wait": "window.aslLive.error"}, {"upload": "#import", "file": str(signs_file)}, ENROL_IDLE,
      {"snap": "imported"}, {"download": "#export", "to": str(again)},
      {"fill": "#gloss", "value": "grandma"}, {"click": "#record"}, ENROL_IDLE, {"snap": "no_camera"},
      {"upload": "#import", "file": str(bad)}, ENROL_IDLE, {"snap": "bad_file"},
      {"click": "#signs li[data-gloss='grandma'] .remove-example"}, ENROL_IDLE, {"snap": "removed_example"},
      {"click": "#signs li[data-gloss='book'] .remove-sign"}, ENROL_IDLE, {"snap": "removed_sign"}])], timeout=180)
  snaps = status["snaps"]
  imported = snaps["imported"]
  assert imported["message"].startswith("No usable camera was found")  # the page's own camera message
  assert imported["enrol_message"] == "Imported 2 signs (3 examples) from asl_jax_signs.json."
  assert imported["enrol"]["signs"] == [{"gloss": "grandma", "examples": 2, "known": False},
                                        {"gloss": "book", "examples": 1, "known": True}]
  assert imported["list"][1].startswith("book 1 example (refines the model's sign)")
  assert imported["enrol"]["glosses"] == 101  # one new gloss; "book" is refined, not added
  # Each sign is checked on its own examples as asl-enroll checks the same file (the page's embeddings are the
  # ONNX model's, so the probabilities agree to a few 1e-5).
  from asl_jax import pretrained  # pylint: disable=import-outside-toplevel
  from asl_jax.serving import enroll  # pylint: disable=import-outside-toplevel
  python = enroll.enroll(pretrained.resolve("wlasl100"), str(signs_file), str(tmp_path / "enrolled"),
                         say=lambda m: None)["check"]
  page = imported["enrol"]["checks"]
  assert set(page) == set(python) == {"grandma", "book"}
  for g, r in python.items():
    assert (page[g]["examples"], page[g]["recognised"], page[g]["takenFor"], page[g]["closest"]) == (
        r["examples"], r["recognised_left_out"], r["left_out_taken_for"], r["closest"]), (g, page[g], r)
    assert abs(page[g]["closestProb"] - r["closest_prob"]) < 1e-3, (g, page[g], r)
  note = "recognised from the others"
  assert (note in imported["list"][0]) == (enroll.tried(python["grandma"]) > 0) and note not in imported["list"][1]
  doc, mine = json.loads(again.read_text()), json.loads(signs_file.read_text())
  assert [(s["gloss"], [e["landmarks"] for e in s["examples"]]) for s in doc["signs"]] == [
      (s["gloss"], [e["landmarks"] for e in s["examples"]]) for s in mine["signs"]]
  assert snaps["no_camera"]["enrol_message"].startswith("No camera to record from: No usable camera was found")
  assert snaps["bad_file"]["enrol_message"] == "notes.json: not a signs file exported by this page."
  assert snaps["bad_file"]["enrol"]["signs"] == imported["enrol"]["signs"]
  assert snaps["removed_example"]["enrol_message"] == 'Deleted example 1 of "grandma".'
  assert snaps["removed_example"]["enrol"]["signs"][0] == {"gloss": "grandma", "examples": 1, "known": False}
  assert snaps["removed_sign"]["enrol_message"] == 'Deleted "book".'
  assert [s["gloss"] for s in snaps["removed_sign"]["enrol"]["signs"]] == ["grandma"]
  # Storage refused (private mode): one message, and the panel works for the session.
  from asl_jax.serving import enroll  # pylint: disable=import-outside-toplevel
  eleven = tmp_path / "eleven.json"
  enroll.write_signs_file(str(eleven), {"eleven": [np.full((6, 162), 0.5, np.float32)] * 11})
  status = _page(site, tmp_path, "--no-camera", "--no-storage", *[_steps(tmp_path, [
      ENROL_READY, {"snap": "refused"}, {"upload": "#import", "file": str(signs_file)}, ENROL_IDLE,
      {"snap": "imported"}, {"upload": "#import", "file": str(eleven)}, ENROL_IDLE, {"snap": "eleven"}],
      "steps2.json")], timeout=180)
  refused = status["snaps"]["refused"]
  assert refused["enrol"]["persistent"] is False
  assert refused["enrol_message"].startswith("This browser refuses the page storage (private browsing")
  assert len(status["snaps"]["imported"]["enrol"]["signs"]) == 2
  # At most 10 examples a sign: the eleventh is skipped, and said.
  assert status["snaps"]["eleven"]["enrol_message"] == ("Imported 1 sign (10 examples) from eleven.json; 1 example(s) "
                                                        "skipped (unreadable, or past 10 a sign).")


@needs_browser
def test_a_run_made_by_asl_enroll_loads_in_the_page_with_its_signs(site, signs_file, tmp_path):
  """asl-enroll a signs file into the shipped model, export the run to ONNX, load it with model=: the page
  has its 101 signs, and the same file imported on top changes none of them: the page knows, by their hashes
  (Web Crypto), that the run was enrolled from those very examples, as asl-enroll on top would."""
  from asl_jax.serving import enroll, export  # pylint: disable=import-outside-toplevel
  run = str(tmp_path / "mine")
  enroll.enroll(pretrained.resolve(""), str(signs_file), run, say=lambda m: None)
  export.export_run(run, os.path.join(site, "mine"), fmt="onnx")
  status = _page(site, tmp_path, "--no-camera", "--query=model=mine", *[_steps(tmp_path, [
      ENROL_READY, {"wait": "window.aslLive.error"}, {"snap": "loaded"},
      {"upload": "#import", "file": str(signs_file)}, ENROL_IDLE, {"snap": "imported"}])], timeout=180)
  loaded, imported = status["snaps"]["loaded"], status["snaps"]["imported"]
  assert loaded["enrol"]["glosses"] == 101 and not loaded["enrol"]["signs"]
  assert imported["enrol"]["glosses"] == 101
  assert imported["enrol"]["signs"] == [{"gloss": "grandma", "examples": 2, "known": True},
                                        {"gloss": "book", "examples": 1, "known": True}]
  assert imported["enrol"]["checks"] == {}  # no sign was built again: each is the run's


@pytest.mark.heavy
@needs_browser
@pytest.mark.skipif(not os.path.exists(EXTRACT_PY), reason="needs the extraction environment (make extract-env)")
def test_recording_from_the_camera_is_record_then_stop(site, camera, signs_file, tmp_path):
  """With a camera (Chromium's fake one, playing the test video): Record turns into Stop and says what to do;
  the frames go to the recording, not to recognition, until Stop; Stop cuts the recording with the segmenter
  and says what it kept. On this CPU the page processes under one frame a second of a 30 fps camera, so the
  recording is no clean sign: any of the three outcomes is right, and the list must agree with the message."""
  gloss = "grandma"  # one of the imported signs' (2 examples): the recording adds a third
  # step=45: one camera frame in 45 is processed (one in 1.5 s), so the page has time between frames to answer
  # the clicks even on a loaded CPU, where Holistic takes seconds a frame.
  status = _page(site, tmp_path, f"--video={camera / 'camera.y4m'}", "--query=step=45", *[_steps(tmp_path, [
      {"wait": "window.aslLive.ready && window.aslLive.enrol.ready"}, {"upload": "#import", "file": str(signs_file)},
      ENROL_IDLE, {"fill": "#gloss", "value": gloss},
      {"click": "#record"}, {"wait": "window.aslLive.enrol.recording"}, {"snap": "recording"}, {"sleep": 8},
      {"snap": "later"}, {"click": "#record"}, ENROL_IDLE, {"snap": "stopped"}])], timeout=180)
  rec, later, stopped = (status["snaps"][k] for k in ("recording", "later", "stopped"))
  assert rec["error"] is None and rec["record_button"] == "Stop"
  assert rec["enrol_message"] == (f'"{gloss}" exists: this recording adds an example to it. Recording "{gloss}": '
                                  'sign it once, hands down before and after, then press Stop.')
  assert later["processed"] > rec["processed"]  # camera frames went on being processed ...
  assert later["signs"] == rec["signs"] == stopped["signs"]  # ... into the recording, not into recognition
  assert stopped["record_button"] == "Record an example" and not stopped["enrol"]["recording"]
  message = stopped["enrol_message"]
  grandma = stopped["enrol"]["signs"][0]
  if message.startswith(f'Added example 3 to "{gloss}", which now has 3 examples.'):  # and, when unsure, the check
    assert message == f'Added example 3 to "{gloss}", which now has 3 examples.' or " recognised from the others " in message
    assert grandma == {"gloss": gloss, "examples": 3, "known": False}
  else:
    assert message.startswith(("No sign was found in the recording", "The recording holds ")), message
    assert grandma == {"gloss": gloss, "examples": 2, "known": False}
