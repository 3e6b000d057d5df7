"""The browser page against asl-live on the same video: real WLASL clips back to back, recognised by
`asl-live --video` (Python MediaPipe + JAX) and by web/ in headless Chromium (MediaPipe for JavaScript +
onnxruntime-web), both with the shipped WLASL100 model and the same frame step.

  python benchmarks/web_vs_live.py [--clips 6] [--step 2] [--subset test]

The clips are the first --clips of the subset in ../shared/data/wlasl_videos (sorted by id; read there, never
copied into the project), each letterboxed into 640x480 and written at 25 fps into one VP8 WebM with 12 blank
frames between clips (a rest), by the extraction environment's OpenCV. The page runs in video mode (every
step-th frame shown, then processed: the frames asl-live reads). Reported: both sign lists, whether the
glosses and spans agree, each one's top-1 against the clips' true glosses, and the page's per-frame time.

Where a difference comes from: the same frames' landmarks from Python MediaPipe (asl-live's extraction) and
from the page, and from Python MediaPipe on the frames with every pixel moved by at most one level (uniform in
{-1, 0, 1}, seed 0: about what two video decoders differ by), compared per part of the canonical layout (the
xy distance where both found it, in image sizes, and the frames where only one found it); and each landmark
stream recognised by `asl-live --landmarks`, so a gloss that differs between the page's landmarks there and
the page itself would be a difference in the page's segmenter or model, and one that flips with the pixel
noise is MediaPipe's sensitivity, not the browser's.
Writes benchmarks/results/web_vs_live.json. Needs `make web-build`'s node_modules and Debian's chromium.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VIDEOS = os.path.join(REPO, "..", "shared", "data", "wlasl_videos")
EXTRACT_PY = os.path.join(REPO, ".venv-extract", "bin", "python")
sys.path.insert(0, REPO)
from asl_jax import pretrained  # noqa: E402
from asl_jax.data import layouts  # noqa: E402
from asl_jax.serving import export  # noqa: E402

WRITE = r"""
import sys, cv2, numpy as np
from asl_jax.extract.frames import letterbox, read_frames
out, paths = sys.argv[1], sys.argv[2:]
w = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"VP80"), 25, (640, 480))
blank = np.zeros((480, 640, 3), np.uint8)
spans, n = [], 0
for p in paths:
    for _ in range(12):
        w.write(blank); n += 1
    start = n
    for rgb in read_frames(p):
        w.write(cv2.cvtColor(letterbox(rgb), cv2.COLOR_RGB2BGR)); n += 1
    spans.append((start, n - 1))
for _ in range(12):
    w.write(blank); n += 1
w.release()
print(spans, n)
"""

# Python MediaPipe's landmarks of every step-th frame (asl-live's frames), as read and with +-1 level noise.
LANDMARKS = r"""
import sys, numpy as np
from asl_jax.extract.holistic import HolisticExtractor, read_frames
video, step, clean_out, noisy_out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
frames = list(read_frames(video))[::step]
rng = np.random.default_rng(0)
for out, noise in ((clean_out, False), (noisy_out, True)):
    with HolisticExtractor() as ex:
        rows = [ex.frame(np.clip(f.astype(np.int16) + rng.integers(-1, 2, f.shape), 0, 255).astype(np.uint8)
                         if noise else f) for f in frames]
    np.save(out, np.stack(rows).astype(np.float32))
"""


def landmark_gaps(a: np.ndarray, b: np.ndarray) -> dict:
  """Per part of the canonical layout (data/layouts): the mean and max xy distance of its points where both
  streams found it, and the frames where only one did."""
  (a, found_a), (b, found_b) = layouts.to_canonical(a, "seed162"), layouts.to_canonical(b, "seed162")
  out = {}
  for i, (name, part) in enumerate(zip(layouts.PARTS, layouts.PART_SLICES)):
    both = found_a[:, i] & found_b[:, i]
    dist = np.linalg.norm(a[both][:, part, :2] - b[both][:, part, :2], axis=-1)
    out[name] = {"frames_both": int(both.sum()), "only_one": int((found_a[:, i] != found_b[:, i]).sum()),
                 "mean": round(float(dist.mean()), 4) if both.any() else None,
                 "max": round(float(dist.max()), 4) if both.any() else None}
  return out


def live_on_landmarks(path: str, fps: float) -> list[str]:
  """asl-live's top glosses for a landmark stream."""
  out = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "live.py"), f"--landmarks={path}",
                        f"--fps={fps}"], capture_output=True, text=True, check=True, cwd=REPO)
  return [json.loads(line)["top_k"][0]["gloss"] for line in out.stdout.splitlines()]


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--clips", type=int, default=6)
  ap.add_argument("--step", type=int, default=2)
  ap.add_argument("--subset", default="test")
  ap.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "web_vs_live.json"))
  args = ap.parse_args()

  with open(os.path.join(VIDEOS, "manifest.csv"), encoding="utf-8") as fh:
    rows = [r for r in csv.DictReader(fh) if r["subset"] == args.subset]
  glosses = json.load(open(os.path.join(pretrained.resolve(""), "label_mapping.json"), encoding="utf-8"))
  known = set(glosses.values()) if isinstance(glosses, dict) else set(glosses)
  id_key = next(k for k in rows[0] if "id" in k.lower())
  rows = sorted((r for r in rows if r["gloss"] in known), key=lambda r: r[id_key])[:args.clips]
  tmp = tempfile.mkdtemp(prefix="web_vs_live_")
  video = os.path.join(tmp, "stream.webm")
  made = subprocess.run([EXTRACT_PY, "-c", WRITE, video] + [os.path.join(VIDEOS, "videos", f"{r[id_key]}.mp4")
                                                            for r in rows], capture_output=True, text=True, check=True)
  spans, frames = eval(made.stdout.strip().rsplit(" ", 1)[0]), int(made.stdout.strip().rsplit(" ", 1)[1])  # noqa: S307

  live = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "live.py"), f"--video={video}",
                         f"--frame_step={args.step}"], capture_output=True, text=True, check=True, cwd=REPO)
  live_signs = [json.loads(line) for line in live.stdout.splitlines()]

  model = export.export_run(pretrained.resolve(""), os.path.join(tmp, "model"), fmt="onnx")
  subprocess.run(["node", os.path.join(REPO, "web", "build.mjs"), model, os.path.join(tmp, "dist")], check=True,
                 capture_output=True)
  page_json = os.path.join(tmp, "page.json")
  subprocess.run(["node", os.path.join(REPO, "web", "tools", "browser.mjs"), page_json, f"--dist={tmp}/dist",
                  f"--media={tmp}", "--no-camera", "--timeout=3000",
                  f"--query=video=/media/stream.webm&fps=25&step={args.step}&debug=1"], check=True)
  page = json.load(open(page_json, encoding="utf-8"))
  page_signs = page["signs"]

  clean, noisy, page_lm = (os.path.join(tmp, f"{n}.npy") for n in ("python", "python_noisy", "page"))
  subprocess.run([EXTRACT_PY, "-c", LANDMARKS, video, str(args.step), clean, noisy], check=True, capture_output=True,
                 cwd=REPO)
  np.save(page_lm, np.asarray(page["landmarks"], np.float32))
  streams = {"python": np.load(clean), "python_pixels_pm1": np.load(noisy), "page": np.load(page_lm)}
  fps = 25 / args.step

  top = lambda signs: [s["top_k"][0]["gloss"] for s in signs]  # noqa: E731
  span = lambda signs: [(s["start_frame"], s["end_frame"]) for s in signs]  # noqa: E731
  truth = [r["gloss"] for r in rows]
  result = {"clips": [r[id_key] for r in rows], "truth": truth, "clip_spans": spans, "frames": frames,
            "step": args.step, "live_glosses": top(live_signs), "page_glosses": top(page_signs),
            "same_glosses": top(live_signs) == top(page_signs), "live_spans": span(live_signs),
            "page_spans": span(page_signs), "same_spans": span(live_signs) == span(page_signs),
            "page_holistic_ms_median": statistics.median(page["holistic_ms"]) if page["holistic_ms"] else None,
            "page_frames_processed": page["processed"], "page_error": page["error"],
            "live_top1_probs": [round(s["top_k"][0]["prob"], 3) for s in live_signs],
            "page_top1_probs": [round(s["top_k"][0]["prob"], 3) for s in page_signs],
            "landmarks_page_vs_python": landmark_gaps(streams["page"], streams["python"]),
            "landmarks_pixels_pm1_vs_python": landmark_gaps(streams["python_pixels_pm1"], streams["python"]),
            "live_on_landmarks": {name: live_on_landmarks(path, fps) for name, path in
                                  (("python", clean), ("python_pixels_pm1", noisy), ("page", page_lm))}}
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, "w", encoding="utf-8") as fh:
    json.dump(result, fh, indent=1)
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  main()
