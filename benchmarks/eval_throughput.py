"""Evaluation throughput (clips/s) and peak memory on nslt_2000-sized synthetic data (landmarks only).

  python benchmarks/eval_throughput.py [--data_dir /tmp/asl_jax_bench/nslt2000]

Packs (or memory-maps from cache) all ~21k clips, then evaluates the seed-sized LSTM model (hidden 512,
2000 classes) over every clip with the streaming Evaluator, and reports clips/s and the process's peak RSS.
Writes benchmarks/results/eval_throughput.json.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from asl_jax import allocator  # noqa: E402
from asl_jax.config import default_config  # noqa: E402
from asl_jax.data import input_pipeline  # noqa: E402
from asl_jax.data.synthetic import make_synthetic  # noqa: E402
from asl_jax.evaluation import evaluator as evaluation  # noqa: E402
from asl_jax.sharding import DataParallel  # noqa: E402
from asl_jax.training import setup as run_lib  # noqa: E402


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--data_dir", default="/tmp/asl_jax_bench/nslt2000")
  ap.add_argument("--batch_size", type=int, default=256)
  a = ap.parse_args()
  out = {"machine": common.machine()}
  if not os.path.exists(os.path.join(a.data_dir, "nslt_2000.json")):
    t0 = time.perf_counter()
    out["sizes"] = make_synthetic(a.data_dir, 2000, seed=0)["sizes"]
    out["generate_s"] = round(time.perf_counter() - t0, 1)
  c = default_config()
  c.data_dir, c.subset, c.cache_dir = a.data_dir, "nslt_2000.json", os.path.join(a.data_dir, ".cache")
  t0 = time.perf_counter()
  setup = run_lib.prepare(c)
  out["load_s"] = round(time.perf_counter() - t0, 2)
  out["rss_after_load_mb"] = round(peak_rss_mb())
  parallel = DataParallel()
  state = run_lib.init_state(c, setup, parallel)
  ev = evaluation.Evaluator(setup.model, c.num_frames, parallel, a.batch_size)
  idx = np.arange(len(setup.packed.labels))
  host = input_pipeline.select(setup.packed, idx[:a.batch_size])
  ev.predict(state.params, host)  # compile
  host = input_pipeline.DeviceData(points=setup.packed.points, parts=setup.packed.parts,
                                   lengths=setup.packed.lengths, labels=setup.packed.labels)  # memory-mapped
  t0 = time.perf_counter()
  top_k, _ = ev.predict(state.params, host)
  dt = time.perf_counter() - t0
  out.update(clips=len(idx), eval_s=round(dt, 1), clips_per_s=round(len(idx) / dt, 1),
             peak_rss_mb=round(peak_rss_mb()), packed_mb=round(setup.packed.points.nbytes / 2**20),
             top_k_shape=list(top_k.shape))
  common.report("eval_throughput", out)


if __name__ == "__main__":
  allocator.use_caching_allocator()  # as the entry points run (PyTorch gets it too: one process)
  main()
