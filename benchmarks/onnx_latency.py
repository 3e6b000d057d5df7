"""The deployable models' size and latency: the shipped WLASL100 model (or --workdir's run) exported to
ONNX and to jax.export, run on real clips side by side in one invocation.

  python benchmarks/onnx_latency.py [--workdir asl_jax/pretrained/wlasl100] [--threads 1]
      [--landmarks_dir ../shared/data/wlasl_real/landmarks] [--clips 40] [--repeats 5]

Per clip, on `--threads` CPU threads (onnxruntime's intra-op threads; XLA's CPU client is limited to the
same with --xla_cpu_multi_thread_eigen=false when threads is 1): the median wall time of one call of
model.onnx in onnxruntime and of model.jax_export in jax, on the first --clips clips of the landmark
folder (sorted by name), each called --repeats times after one warm-up call per length. Also: the files'
sizes, the largest probability difference between the two, the batched ONNX model's time for all the
clips in one padded batch, and clips of 300 frames. Writes benchmarks/results/onnx_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(REPO, "..", "shared", "data", "wlasl_real", "landmarks")


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--workdir", default=os.path.join(REPO, "asl_jax", "pretrained", "wlasl100"))
  ap.add_argument("--landmarks_dir", default=SHARED)
  ap.add_argument("--threads", type=int, default=1)
  ap.add_argument("--clips", type=int, default=40)
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "onnx_latency.json"))
  args = ap.parse_args()
  if args.threads == 1:
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
  import numpy as np  # pylint: disable=import-outside-toplevel
  import onnxruntime as ort  # pylint: disable=import-outside-toplevel
  from asl_jax.serving import export  # pylint: disable=import-outside-toplevel

  tmp = tempfile.mkdtemp(prefix="onnx_latency_")
  t0 = time.perf_counter()
  onnx_dir = export.export_run(args.workdir, os.path.join(tmp, "onnx"), fmt="onnx")
  onnx_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  jax_dir = export.export_run(args.workdir, os.path.join(tmp, "jax"))
  jax_s = time.perf_counter() - t0
  options = ort.SessionOptions()
  options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
  one = ort.InferenceSession(os.path.join(onnx_dir, "model.onnx"), options, providers=["CPUExecutionProvider"])
  batched = ort.InferenceSession(os.path.join(onnx_dir, "model_batched.onnx"), options,
                                 providers=["CPUExecutionProvider"])
  call, meta = export.load_exported(jax_dir)

  names = sorted(n for n in os.listdir(args.landmarks_dir) if n.endswith("_landmarks.npy"))[:args.clips]
  clips = [np.load(os.path.join(args.landmarks_dir, n)).astype(np.float32) for n in names]
  clips.append(clips[0][np.arange(300) % len(clips[0])])  # a long clip: 300 frames

  def timed(fn, x):
    fn(x)  # warm-up (jax compiles once per length)
    times = []
    for _ in range(args.repeats):
      t = time.perf_counter()
      out = fn(x)
      times.append(time.perf_counter() - t)
    return statistics.median(times), out

  rows, diff = [], 0.0
  for clip in clips:
    t_onnx, p_onnx = timed(lambda x: one.run(None, {"landmarks": x})[0], clip)
    t_jax, p_jax = timed(call, clip)
    diff = max(diff, float(np.abs(p_onnx - p_jax).max()))
    rows.append({"frames": len(clip), "onnx_ms": 1000 * t_onnx, "jax_ms": 1000 * t_jax})
  pad = np.zeros((len(clips) - 1, max(len(c) for c in clips[:-1]), clips[0].shape[1]), np.float32)
  for i, c in enumerate(clips[:-1]):
    pad[i, :len(c)] = c
  lengths = np.array([len(c) for c in clips[:-1]], np.int32)
  t_batch, _ = timed(lambda x: batched.run(None, {"landmarks": x, "lengths": lengths})[0], pad)

  real = rows[:-1]
  result = {
      "workdir": os.path.relpath(os.path.abspath(args.workdir), REPO), "threads": args.threads,
      "clips": len(real), "frames_median": statistics.median(r["frames"] for r in real),
      "model_onnx_mb": os.path.getsize(os.path.join(onnx_dir, "model.onnx")) / 2**20,
      "model_batched_onnx_mb": os.path.getsize(os.path.join(onnx_dir, "model_batched.onnx")) / 2**20,
      "model_jax_export_mb": os.path.getsize(os.path.join(jax_dir, "model.jax_export")) / 2**20,
      "export_onnx_s": onnx_s, "export_jax_s": jax_s,
      "onnx_ms_median": statistics.median(r["onnx_ms"] for r in real),
      "onnx_ms_max": max(r["onnx_ms"] for r in real),
      "jax_ms_median": statistics.median(r["jax_ms"] for r in real),
      "onnx_ms_300_frames": rows[-1]["onnx_ms"], "jax_ms_300_frames": rows[-1]["jax_ms"],
      "onnx_batched_ms_per_clip": 1000 * t_batch / len(real), "max_abs_prob_diff_onnx_vs_jax": diff,
      "num_classes": meta["num_classes"], "per_clip": rows}
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, "w", encoding="utf-8") as fh:
    json.dump(result, fh, indent=1)
  print(json.dumps({k: v for k, v in result.items() if k != "per_clip"}, indent=1))


if __name__ == "__main__":
  sys.exit(main())
