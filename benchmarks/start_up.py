"""How long the commands a user runs again and again take to start: the first start (empty XLA compilation
cache) and the second (the cache kept on disk, asl_jax/cli.py use_xla_cache), as a user meets them.

  python benchmarks/start_up.py [--workdir asl_jax/pretrained/wlasl100] [--repeats 3]

Each command runs as a program (`python scripts/X.py ...`) on one real landmark clip (tests/data's video is
not needed: a clip of wlasl_real when ../shared/data is there, else a synthetic clip), with ASL_JAX_CACHE set
to a fresh folder for the first start; the wall time includes the interpreter, the imports, restoring the
checkpoint, tracing and compiling (or loading the compiled program) and the prediction. Writes
benchmarks/results/start_up.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(REPO, "..", "shared", "data", "wlasl_real", "landmarks")


def _clip(tmp: str) -> str:
  import numpy as np  # pylint: disable=import-outside-toplevel
  if os.path.isdir(SHARED):
    name = sorted(n for n in os.listdir(SHARED) if n.endswith("_landmarks.npy"))[0]
    return os.path.join(SHARED, name)
  clip = np.zeros((60, 162), np.float32)
  clip[:, 126:] = np.random.default_rng(0).uniform(0.3, 0.7, (60, 36))
  clip[10:50, 63:126] = np.random.default_rng(1).uniform(0.3, 0.7, (40, 63))
  path = os.path.join(tmp, "clip.npy")
  np.save(path, clip)
  return path


def _time(argv: list[str], env: dict) -> float:
  t0 = time.perf_counter()
  subprocess.run([sys.executable, *argv], check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
  return time.perf_counter() - t0


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--workdir", default=os.path.join(REPO, "asl_jax", "pretrained", "wlasl100"))
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "start_up.json"))
  args = ap.parse_args()
  tmp = tempfile.mkdtemp(prefix="start_up_")
  clip = _clip(tmp)
  commands = {
      "asl-predict": ["scripts/predict.py", f"--workdir={args.workdir}", f"--landmarks={clip}"],
      "asl-live": ["scripts/live.py", f"--workdir={args.workdir}", f"--landmarks={clip}", "--fps=25"],
  }
  rows = {}
  for name, argv in commands.items():
    env = dict(os.environ, ASL_JAX_CACHE=tempfile.mkdtemp(dir=tmp))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    first = _time(argv, env)
    second = [_time(argv, env) for _ in range(args.repeats)]
    rows[name] = {"first_s": round(first, 2), "second_s_median": round(statistics.median(second), 2),
                  "second_s": [round(s, 2) for s in second]}
    print(f"{name}: first start {first:.2f} s, second start {statistics.median(second):.2f} s "
          f"(median of {args.repeats}: {', '.join(f'{s:.2f}' for s in second)})", flush=True)
  result = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "workdir": os.path.relpath(args.workdir, REPO),
            "clip": os.path.basename(clip), "commands": rows}
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=1)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
