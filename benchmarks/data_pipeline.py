"""Data-layer timings on a synthetic nslt_K-shaped dir: generation, first pack, cached start.

  python benchmarks/data_pipeline.py [--num_classes 1000] [--out_dir /tmp/asl_jax_bench/syn1000_lm]
Writes benchmarks/results/data_pipeline.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from asl_jax.data import packed  # noqa: E402
from asl_jax.data.synthetic import make_synthetic  # noqa: E402


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--num_classes", type=int, default=1000)
  ap.add_argument("--out_dir", default="/tmp/asl_jax_bench/syn1000_lm")
  a = ap.parse_args()
  shutil.rmtree(a.out_dir, ignore_errors=True)
  t0 = time.perf_counter()
  info = make_synthetic(a.out_dir, a.num_classes, seed=0)
  gen = time.perf_counter() - t0
  spec = packed.DataSpec(data_dir=a.out_dir, subset=info["subset"], cache_dir=os.path.join(a.out_dir, ".cache"))
  t0 = time.perf_counter()
  p = packed.load_packed(spec)
  first = time.perf_counter() - t0
  t0 = time.perf_counter()
  p = packed.load_packed(spec)
  cached = time.perf_counter() - t0
  out = {"machine": common.machine(), "num_classes": a.num_classes, "clips": int(len(p.labels)),
         "sizes": info["sizes"], "generate_s": round(gen, 1), "first_pack_s": round(first, 1),
         "cached_start_s": round(cached, 2), "packed_mb": round(p.points.nbytes / 2**20)}
  common.report(f"data_pipeline_{a.num_classes}", out)


if __name__ == "__main__":
  main()
