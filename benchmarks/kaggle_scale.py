"""A Kaggle-ISLR-sized set in the competition's exact format: how long it packs, how much memory that takes,
how fast it reloads, and whether training reads it as fast as the same clips from .npy.

  python benchmarks/kaggle_scale.py write --out /tmp/kaggle_scale [--sequences 94477] [--jobs 2]
  python benchmarks/kaggle_scale.py pack --out /tmp/kaggle_scale            # a fresh cache: pack, then reload
  python benchmarks/kaggle_scale.py throughput --out /tmp/kaggle_scale [--clips 4000]

`write` makes 94,477 sequences (the competition's count) by 21 signers of 250 signs, frames drawn around 30
(8..80), every point of every frame (face, pose and hands) with the hands missing (NaN) in a third of the
frames, as train.csv + train_landmark_files/<participant>/<sequence>.parquet (frame, row_id, type,
landmark_index, x, y, z; float64 coordinates, like the competition's files) + sign_to_prediction_index_map.json.
It is synthetic and goes to a temporary folder: never into the project.

`pack` runs the packing in a child process (python -c, `dataset=kaggle_islr`, the recommended max_frames) with a
fresh cache and reports its wall time and peak memory (ru_maxrss), then reloads from the cache in another child.
`throughput` writes the first --clips sequences also as .npy files with an nslt split, packs both, and times
the recommended config's train step on each (the packed arrays, not the files, are what training reads).
Results: benchmarks/results/kaggle_scale.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from concurrent import futures

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
RESULTS = os.path.join(ROOT, "benchmarks", "results", "kaggle_scale.json")
PARTS = (("face", 468), ("left_hand", 21), ("pose", 33), ("right_hand", 21))
NUM_SIGNS, NUM_PARTICIPANTS = 250, 21


def _suffixes():
  return np.array([f"-{p}-{i}" for p, n in PARTS for i in range(n)])


def _write_one(args):
  """One sequence's parquet file (pyarrow, the competition's schema)."""
  import pyarrow as pa  # pylint: disable=import-outside-toplevel
  import pyarrow.parquet as pq  # pylint: disable=import-outside-toplevel
  path, seq, sign, frames = args
  rng = np.random.default_rng(seq)
  t0 = rng.integers(0, 200)
  n = 543
  base = rng.uniform(0.2, 0.8, (1, n, 3)) + 0.01 * np.cumsum(rng.normal(size=(frames, 1, 3)), 0)
  xyz = base + 0.002 * rng.normal(size=(frames, n, 3)) + 0.05 * np.sin(sign + np.arange(n))[None, :, None]
  hands = np.r_[468:489, 522:543]
  gone = rng.random(frames) < 1 / 3
  xyz[np.ix_(gone, hands)] = np.nan
  frame = np.repeat(np.arange(t0, t0 + frames), n)
  types = np.tile(np.concatenate([[p] * k for p, k in PARTS]), frames)
  index = np.tile(np.concatenate([np.arange(k) for _, k in PARTS]), frames)
  row_id = np.char.add(np.repeat(np.arange(t0, t0 + frames).astype(str), n), np.tile(_suffixes(), frames))
  table = pa.table({"frame": pa.array(frame, pa.int16()), "row_id": pa.array(row_id.tolist()),
                    "type": pa.array(types.tolist()), "landmark_index": pa.array(index, pa.int16()),
                    "x": xyz[..., 0].ravel(), "y": xyz[..., 1].ravel(), "z": xyz[..., 2].ravel()})
  pq.write_table(table, path)
  return os.path.getsize(path)


def write(out: str, sequences: int, jobs: int) -> dict:
  rng = np.random.default_rng(0)
  participants = rng.choice(np.arange(2000, 65000), NUM_PARTICIPANTS, replace=False)
  signs = [f"sign{i:03d}" for i in range(NUM_SIGNS)]
  rows, tasks = [], []
  for s in range(sequences):
    p, sign = int(participants[s % NUM_PARTICIPANTS]), int(rng.integers(NUM_SIGNS))
    frames = int(np.clip(rng.gamma(4.0, 30 / 4.0), 8, 80))
    seq = 1000000 + s
    rel = os.path.join("train_landmark_files", str(p), f"{seq}.parquet")
    rows.append({"path": rel, "participant_id": p, "sequence_id": seq, "sign": signs[sign]})
    tasks.append((os.path.join(out, rel), seq, sign, frames))
  for p in participants:
    os.makedirs(os.path.join(out, "train_landmark_files", str(p)), exist_ok=True)
  t0 = time.time()
  with futures.ProcessPoolExecutor(jobs) as pool:
    sizes = list(pool.map(_write_one, tasks, chunksize=256))
  with open(os.path.join(out, "train.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=["path", "participant_id", "sequence_id", "sign"])
    w.writeheader()
    w.writerows(rows)
  with open(os.path.join(out, "sign_to_prediction_index_map.json"), "w") as f:
    json.dump({s: i for i, s in enumerate(signs)}, f)
  return {"sequences": sequences, "write_s": round(time.time() - t0, 1), "bytes": int(sum(sizes)),
          "mean_frames": float(np.mean([t[3] for t in tasks]))}


CHILD = """
import json, resource, sys, time
t0 = time.time()
from asl_jax.data import packed
spec = packed.DataSpec(data_dir=sys.argv[1], dataset="kaggle_islr", cache_dir=sys.argv[2], max_frames=int(sys.argv[3]))
p = packed.load_packed(spec)
print(json.dumps({"seconds": round(time.time() - t0, 1), "clips": int(len(p.labels)),
                  "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
                  "packed_gb": round((p.points.nbytes + p.parts.nbytes) / 2**30, 2)}))
"""


def pack(out: str, max_frames: int) -> dict:
  cache = os.path.join(out, "cache")
  subprocess.run(["rm", "-rf", cache], check=True)
  res = {}
  for what in ("pack", "reload"):
    r = subprocess.run([sys.executable, "-c", CHILD, out, cache, str(max_frames)], capture_output=True, text=True,
                       cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), check=False)
    if r.returncode:
      raise SystemExit(r.stderr[-3000:])
    res[what] = json.loads(r.stdout.strip().splitlines()[-1])
    print(what, res[what], flush=True)
  return res


def throughput(out: str, clips: int, steps: int) -> dict:
  """The recommended train step on the first `clips` sequences, packed from the parquet files and from the
  same landmarks as .npy files (an nslt split with the same subsets)."""
  import jax  # pylint: disable=import-outside-toplevel
  from asl_jax.config import load_config_file  # pylint: disable=import-outside-toplevel
  from asl_jax.data import formats, input_pipeline, splits  # pylint: disable=import-outside-toplevel
  from asl_jax.sharding import DataParallel  # pylint: disable=import-outside-toplevel
  from asl_jax.training import setup as setup_lib, train  # pylint: disable=import-outside-toplevel
  sub = os.path.join(out, f"subset_{clips}")
  os.makedirs(os.path.join(sub, "landmarks"), exist_ok=True)
  with open(os.path.join(out, "train.csv"), newline="") as f:
    rows = list(csv.DictReader(f))[:clips]
  sign_map = json.load(open(os.path.join(out, "sign_to_prediction_index_map.json")))
  subset_of = splits.kaggle_participant_split({r["participant_id"] for r in rows})
  with open(os.path.join(sub, "train.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows({**r, "path": os.path.join(out, r["path"])} for r in rows)
  json.dump(sign_map, open(os.path.join(sub, "sign_to_prediction_index_map.json"), "w"))
  nslt = {}
  for r in rows:
    npy = os.path.join(sub, "landmarks", f"{r['sequence_id']}_landmarks.npy")
    if not os.path.exists(npy):
      np.save(npy, formats.read(os.path.join(out, r["path"])))
    nslt[r["sequence_id"]] = {"subset": subset_of[r["participant_id"]], "action": [sign_map[r["sign"]], 1, -1]}
  json.dump(nslt, open(os.path.join(sub, "nslt_kaggle.json"), "w"))
  with open(os.path.join(sub, "wlasl_class_list.txt"), "w") as f:
    f.writelines(f"{i}\t{s}\n" for s, i in sign_map.items())
  runs = {}
  for name, fields in (("parquet", {"dataset": "kaggle_islr"}), ("npy", {"subset": "nslt_kaggle.json"})):
    cfg = load_config_file(os.path.join(ROOT, "configs", "nslt_100.py"))
    cfg.data_dir, cfg.cache_dir = sub, os.path.join(sub, "cache")
    for k, v in fields.items():
      cfg[k] = v
    setup = setup_lib.prepare(cfg)
    parallel = DataParallel()
    state = setup_lib.init_state(cfg, setup, parallel)
    step = train.make_train_step(cfg, setup.model, setup.steps_per_epoch, parallel, None)
    data = parallel.replicate(input_pipeline.select(setup.packed, setup.train_idx))
    order = parallel.shard_order(setup_lib.epoch_order(cfg, setup.packed.labels[setup.train_idx], 0,
                                                       setup.steps_per_epoch))
    runs[name] = [step.lower(state, data, order, None).compile(), state, data, order, cfg.batch_size,
                  len(setup.train_idx), setup.packed.points]
  same = bool(np.array_equal(runs["parquet"][6], runs["npy"][6]))
  rates = {name: [] for name in runs}
  for _ in range(3):  # interleaved, so drift of the machine's speed hits both alike
    for name, r in runs.items():
      step, state, data, order, batch = r[:5]
      for _ in range(3):
        state, loss = step(state, data, order, None)
      jax.block_until_ready(loss)
      t0 = time.time()
      for _ in range(steps):
        state, loss = step(state, data, order, None)
      jax.block_until_ready(loss)
      r[1] = state
      rates[name].append(round(steps * batch / (time.time() - t0), 1))
  result = {name: {"train_clips": int(runs[name][5]), "samples_per_s": rates[name],
                   "mean": round(float(np.mean(rates[name])), 1)} for name in runs}
  result["same_packed_points"] = same
  print(json.dumps(result), flush=True)
  return result


def main():
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("what", choices=("write", "pack", "throughput"))
  ap.add_argument("--out", required=True)
  ap.add_argument("--sequences", type=int, default=94477)
  ap.add_argument("--jobs", type=int, default=2)
  ap.add_argument("--max_frames", type=int, default=64)
  ap.add_argument("--clips", type=int, default=4000)
  ap.add_argument("--steps", type=int, default=100)
  args = ap.parse_args()
  results = json.load(open(RESULTS)) if os.path.exists(RESULTS) else {}
  if args.what == "write":
    os.makedirs(args.out, exist_ok=True)
    results["write"] = write(args.out, args.sequences, args.jobs)
  elif args.what == "pack":
    results["pack"] = pack(args.out, args.max_frames)
  else:
    results["throughput"] = throughput(args.out, args.clips, args.steps)
  results.setdefault("machine", f"{os.cpu_count()} CPU cores")
  results["date"] = time.strftime("%Y-%m-%d")
  print(json.dumps(results, indent=1))
  with open(RESULTS, "w") as f:
    json.dump(results, f, indent=1)


if __name__ == "__main__":
  main()
