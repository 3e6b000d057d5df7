"""Accuracy on the real landmark sets: configs x sets x seeds through the public training API.

  python benchmarks/accuracy.py [--configs configs/nslt_100.py,configs/seed_nslt_100.py] [--seeds 1,2,3]
      [--sets wlasl_real,wlasl50] [--override FIELD=VALUE ...] [--epochs N] [--jobs 2] [--name accuracy]
      [--data_root ../shared/data] [--workdir_root /tmp/asl_jax_accuracy] [--write_docs]

For each config, set and seed it calls `asl_jax.training.train.train_and_evaluate` (what `scripts/train.py` runs):
the best checkpoint is chosen on val (`best_metric`), then evaluated on test. Per config and set it
reports the mean and standard deviation over seeds of the val top-1 / top-5 / loss of the last 10 epochs
(the selection statistic), and of the best epoch's val and the test top-1 / top-5, per instance and per
class, and the N-seed ensemble (probabilities averaged, `asl_jax.serving.evaluate.evaluate_workdir` with all
seeds' workdirs) on val and test. Nothing is selected on test.

Sets (from `--data_root`, default the project's ../shared/data; skipped with a message when absent):
  wlasl_real  619 real WLASL100 clips, seed162 landmarks, the official nslt_100 split (448 / 94 / 77)
  wlasl50     423 real MediaPipe Holistic sequences, 50 WLASL100 glosses, holistic170 (272 / 64 / 87)

`--jobs 2` runs two trainings at once, each on one CPU thread (faster than one run on two threads for
these small models). Writes benchmarks/results/<name>.json; `--write_docs` also rewrites docs/results.md's accuracy
table between <!-- ACCURACY:START --> and <!-- ACCURACY:END -->.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")
METRICS = ("top1", "top5", "class_top1", "class_top5")
LAST = 10  # epochs averaged for the val selection statistic


def set_args(name: str, data_root: str, work_root: str) -> dict | None:
  """The config fields that point a run at one real set (None when the set is not there)."""
  if name == "wlasl_real":
    d = os.path.join(data_root, "wlasl_real")
    if not os.path.isdir(os.path.join(d, "landmarks")):
      return None
    return {"data_dir": d, "subset": "nslt_100.json", "landmarks_dir": os.path.join(d, "landmarks"),
            "landmark_layout": "seed162"}
  if name == "wlasl50":
    src = os.path.join(data_root, "wlasl50_mediapipe")
    if not os.path.isdir(os.path.join(src, "features")):
      return None
    # Its files are <id>.npy: link them under the seed's naming, as ../shared/checks/real_data.sh does.
    d = os.path.join(work_root, "data_wlasl50")
    lm = os.path.join(d, "lm")
    os.makedirs(lm, exist_ok=True)
    for f in sorted(os.listdir(os.path.join(src, "features"))):
      link = os.path.join(lm, f[:-4] + "_landmarks.npy")
      if f.endswith(".npy") and not os.path.lexists(link):
        os.symlink(os.path.join(src, "features", f), link)
    for name_, from_ in (("split.json", os.path.join(src, "nslt_style_split.json")),
                         ("wlasl_class_list.txt", os.path.join(data_root, "wlasl", "wlasl_class_list.txt"))):
      if not os.path.lexists(os.path.join(d, name_)):
        os.symlink(from_, os.path.join(d, name_))
    return {"data_dir": d, "subset": "split.json", "landmarks_dir": lm, "landmark_layout": "holistic170"}
  raise SystemExit(f"unknown set {name!r}: expected wlasl_real or wlasl50")


def _parse_value(text: str):
  for cast in (int, float):
    try:
      return cast(text)
    except ValueError:
      pass
  return {"true": True, "false": False}.get(text.lower(), text)


def run_one(job: dict) -> dict:
  """Trains one (config, set, seed) in this process; returns its val (best epoch) and test metrics."""
  if job["threads"]:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
  from asl_jax import config as config_lib  # pylint: disable=import-outside-toplevel
  from asl_jax.training import train  # pylint: disable=import-outside-toplevel
  config = config_lib.load_config_file(job["config"])
  for k, v in {**job["set_args"], **job["overrides"]}.items():
    if k not in config:
      raise SystemExit(f"--override {k}: no such config field")
    config[k] = float(v) if isinstance(config[k], float) and isinstance(v, int) else v
  if job["epochs"]:
    config.epochs = job["epochs"]
    config.warmup_epochs = min(config.warmup_epochs, job["epochs"])
  config.seed = job["seed"]
  config.progress_bar = False
  t0 = time.time()
  result = train.train_and_evaluate(config, job["workdir"])
  seconds = time.time() - t0
  rows = [json.loads(line) for line in open(os.path.join(job["workdir"], "metrics.jsonl"), encoding="utf-8")]
  best = next(r for r in rows if r["epoch"] == result["best_epoch"])
  validated = [r for r in rows if "val_top1" in r][-LAST:]
  with open(result["test_report"], encoding="utf-8") as f:
    test = json.load(f)
  return {**{k: job[k] for k in ("config", "set", "seed", "workdir")}, "seconds": round(seconds, 1),
          "best_epoch": best["epoch"], "epochs": config.epochs,
          "val": {m: best[f"val_{m}"] for m in METRICS},
          # The selection statistic: the mean over the last LAST validated epochs, not the best epoch's value
          # (a maximum over every epoch's noisy evaluation, biased upward).
          f"val_last{LAST}": {m: statistics.mean(r[f"val_{m}"] for r in validated) for m in (*METRICS, "loss")},
          "test": {"top1": test["per_instance"]["top1"], "top5": test["per_instance"]["top5"],
                   "class_top1": test["per_class"]["top1"], "class_top5": test["per_class"]["top5"]},
          "n_test": test["num_samples"], **({"head_weights": test["head_weights"]} if "head_weights" in test else {})}


def ensemble(workdirs: list[str]) -> dict:
  from asl_jax.serving import evaluate  # pylint: disable=import-outside-toplevel
  out = {}
  for split in ("val", "test"):
    r = evaluate.evaluate_workdir(workdirs, split, out_dir=os.path.join(workdirs[0], f"ensemble_{split}"))
    out[split] = {"top1": r["per_instance"]["top1"], "top5": r["per_instance"]["top5"],
                  "class_top1": r["per_class"]["top1"], "class_top5": r["per_class"]["top5"]}
  return out


def summarise(runs: list[dict]) -> dict:
  out = {}
  spread = lambda xs: {"mean": statistics.mean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0}  # noqa: E731
  for split in ("val", "test"):
    for m in METRICS:
      out[f"{split}_{m}"] = spread([r[split][m] for r in runs])
  for m in (*METRICS, "loss"):
    out[f"val_last{LAST}_{m}"] = spread([r[f"val_last{LAST}"][m] for r in runs])
  out["seconds_mean"] = statistics.mean(r["seconds"] for r in runs)
  return out


def table(results: list[dict]) -> str:
  n = max(len(r["runs"]) for r in results)
  lines = [f"| config | set | seeds | val top-1, last {LAST} epochs | val top-1, best epoch | test top-1 | "
           "test top-5 | test per-class top-1 | "
           f"{n}-seed ensemble test top-1 / top-5 | minutes per run |", "|---|---|---|---|---|---|---|---|---|---|"]
  pct = lambda s, k: f"{100 * s[k]['mean']:.1f} ± {100 * s[k]['std']:.1f}"  # noqa: E731
  for r in results:
    s, e = r["summary"], r.get("ensemble")
    ens = f"{100 * e['test']['top1']:.1f} / {100 * e['test']['top5']:.1f}" if e else "-"
    lines.append(f"| {os.path.basename(r['config'])}{' ' + r['overrides'] if r['overrides'] else ''} | {r['set']} | "
                 f"{len(r['runs'])} | {pct(s, f'val_last{LAST}_top1')} | "
                 f"{pct(s, 'val_top1')} | {pct(s, 'test_top1')} | {pct(s, 'test_top5')} | "
                 f"{pct(s, 'test_class_top1')} | {ens} | {s['seconds_mean'] / 60:.1f} |")
  return "\n".join(lines)


def update_doc(text: str, marker: str = "ACCURACY", doc: str = "docs/results.md") -> None:
  """Rewrites the table between `marker`'s START and END comments in `doc`."""
  path = os.path.join(ROOT, doc)
  with open(path, encoding="utf-8") as f:
    readme = f.read()
  start, end = f"<!-- {marker}:START -->", f"<!-- {marker}:END -->"
  if start not in readme or end not in readme:
    print(f"{doc} has no {marker} markers; table not written")
    return
  head, rest = readme.split(start, 1)
  with open(path, "w", encoding="utf-8") as f:
    f.write(head + start + "\n" + text + "\n" + end + rest.split(end, 1)[1])


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--configs", default="configs/nslt_100.py")
  ap.add_argument("--seeds", default="1,2,3")
  ap.add_argument("--sets", default="wlasl_real,wlasl50")
  ap.add_argument("--override", action="append", default=[], help="FIELD=VALUE, for every run")
  ap.add_argument("--epochs", type=int, default=0, help="0: each config's own")
  ap.add_argument("--jobs", type=int, default=1)
  ap.add_argument("--name", default="accuracy")
  ap.add_argument("--data_root", default=DEFAULT_DATA)
  ap.add_argument("--workdir_root", default="/tmp/asl_jax_accuracy")
  ap.add_argument("--write_docs", action="store_true")
  args = ap.parse_args()
  overrides = dict(o.split("=", 1) for o in args.override)
  overrides = {k: _parse_value(v) for k, v in overrides.items()}
  tag = ",".join(f"{k}={v}" for k, v in overrides.items())
  seeds = [int(s) for s in args.seeds.split(",")]
  configs = [c if os.path.isabs(c) else os.path.join(ROOT, c) for c in args.configs.split(",")]
  jobs = []
  for set_name in args.sets.split(","):
    sa = set_args(set_name, args.data_root, args.workdir_root)
    if sa is None:
      print(f"skipping {set_name}: not found under {args.data_root}")
      continue
    for cfg in configs:
      for seed in seeds:
        wd = os.path.join(args.workdir_root, args.name, f"{os.path.basename(cfg)[:-3]}_{set_name}_s{seed}")
        jobs.append({"config": cfg, "set": set_name, "seed": seed, "workdir": wd, "set_args": sa,
                     "overrides": overrides, "epochs": args.epochs, "threads": args.jobs > 1})
  if not jobs:
    print("no real data found: nothing to measure")
    return
  runs = []
  with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
    for r in pool.map(run_one, jobs):
      print(f"{os.path.basename(r['config'])} {r['set']} seed {r['seed']}: val top-1 last {LAST} "
            f"{r[f'val_last{LAST}']['top1']:.3f}, best {r['val']['top1']:.3f} | test "
            f"top-1 {r['test']['top1']:.3f} top-5 {r['test']['top5']:.3f} | P-C {r['test']['class_top1']:.3f} | "
            f"best epoch {r['best_epoch']}/{r['epochs']} | {r['seconds']:.0f} s", flush=True)
      runs.append(r)
  results = []
  for set_name in dict.fromkeys(j["set"] for j in jobs):
    for cfg in configs:
      rs = [r for r in runs if r["set"] == set_name and r["config"] == cfg]
      entry = {"config": os.path.relpath(cfg, ROOT), "set": set_name, "overrides": tag, "runs": rs,
               "summary": summarise(rs)}
      if len(rs) > 1:
        entry["ensemble"] = ensemble([r["workdir"] for r in rs])
      results.append(entry)
  text = table(results)
  print(text)
  path = common.save(args.name, {"machine": common.machine(), "seeds": seeds, "overrides": overrides,
                                 "epochs_override": args.epochs, "results": results})
  print("wrote", path)
  if args.write_docs:
    update_doc(text)


if __name__ == "__main__":
  main()
