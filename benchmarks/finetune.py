"""Fine-tuning (`init_from`) against training from scratch, on real WLASL100 landmarks.

The 100 classes of ../shared/data/wlasl_real are split in two seeded halves, A and B. A model is trained on
A's train clips (its val clips choose its best epoch); then, on B alone (its own train / val / test clips,
classes B only), 3 seeds start from A's parameters (a new classifier) and 3 from scratch, with the same
recipe (configs/nslt_100.py). Reported on val (best checkpoint, and the mean of the last 10 epochs) and test.
The split files live in a temporary folder; nothing from ../shared is copied into the project.

  python benchmarks/finetune.py [--seeds 1,2,3] [--epochs 150] [--jobs 2]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import statistics
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
REAL = os.path.join(os.path.dirname(HERE), "..", "shared", "data", "wlasl_real")


def _half_splits(out: str) -> dict:
  split = json.load(open(os.path.join(REAL, "nslt_100.json"), encoding="utf-8"))
  classes = np.random.default_rng(0).permutation(100)
  halves = {"A": set(classes[:50].tolist()), "B": set(classes[50:].tolist())}
  paths = {}
  for name, keep in halves.items():
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    json.dump({v: e for v, e in split.items() if e["action"][0] in keep}, open(os.path.join(d, "nslt_50.json"), "w"))
    os.symlink(os.path.abspath(os.path.join(REAL, "wlasl_class_list.txt")), os.path.join(d, "wlasl_class_list.txt"))
    paths[name] = d
  return paths


def _train(args):
  data_dir, workdir, seed, epochs, init_from = args
  from asl_jax import config as config_lib  # pylint: disable=import-outside-toplevel
  from asl_jax.training import train  # pylint: disable=import-outside-toplevel
  c = config_lib.load_config_file(os.path.join(os.path.dirname(HERE), "configs", "nslt_100.py"))
  c.data_dir, c.subset, c.landmarks_dir = data_dir, "nslt_50.json", os.path.join(REAL, "landmarks")
  c.gemma_features_dir, c.seed, c.progress_bar, c.init_from = "", seed, False, init_from
  if epochs:
    c.epochs = epochs
  result = train.train_and_evaluate(c, workdir)
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  best = max(rows, key=lambda r: r["val_top1"])
  return {"workdir": workdir, "seed": seed, "init_from": init_from, "val_top1_best": best["val_top1"],
          "val_top1_last10": statistics.mean(r["val_top1"] for r in rows[-10:]),
          "test_top1": result["test"]["per_instance"]["top1"], "test_top5": result["test"]["per_instance"]["top5"]}


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--seeds", default="1,2,3")
  ap.add_argument("--epochs", type=int, default=0)
  ap.add_argument("--jobs", type=int, default=2)
  ap.add_argument("--out", default=os.path.join(HERE, "results", "finetune.json"))
  ap.add_argument("--tmp", default="", help="reuse this folder's splits and its trained runA")
  args = ap.parse_args(argv)
  tmp = args.tmp or tempfile.mkdtemp(prefix="asl_jax_finetune_")
  halves = {h: os.path.join(tmp, h) for h in "AB"} if args.tmp else _half_splits(tmp)
  print(f"splits and runs under {tmp}")
  source = _train((halves["A"], os.path.join(tmp, "runA"), 1, args.epochs, ""))  # a finished run: its result
  print("A:", json.dumps(source))
  jobs = [(halves["B"], os.path.join(tmp, f"B_{kind}_s{s}"), int(s), args.epochs, init)
          for s in args.seeds.split(",") for kind, init in (("scratch", ""), ("tuned", source["workdir"]))]
  spawn = multiprocessing.get_context("spawn")  # JAX is multithreaded: a forked child can deadlock
  with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=spawn) as pool:
    rows = list(pool.map(_train, jobs))
  summary = {}
  for kind in ("scratch", "tuned"):
    rs = [r for r in rows if bool(r["init_from"]) == (kind == "tuned")]
    summary[kind] = {k: {"mean": statistics.mean(r[k] for r in rs), "sd": statistics.stdev(r[k] for r in rs)}
                     for k in ("val_top1_best", "val_top1_last10", "test_top1", "test_top5")}
    print(kind, json.dumps(summary[kind]))
  json.dump({"source": source, "runs": rows, "summary": summary}, open(args.out, "w"), indent=1)


if __name__ == "__main__":
  main()
