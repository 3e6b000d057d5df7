"""Class weights vs none vs balanced sampling: the seed's central claim, tested end to end.

  python benchmarks/class_weights.py --data_dir D [--config configs/nslt_1000.py] [--epochs 0]
      [--variants weighted,unweighted,balanced] [--parallel] [--workdir_root /tmp/asl_jax_cw]
      [--override FIELD=VALUE ...]

Trains one run per variant through the real CLI (`scripts/train.py`), identical except for
  weighted    use_class_weights=True,  balanced_sampling=False
  unweighted  use_class_weights=False, balanced_sampling=False
  balanced    use_class_weights=False, balanced_sampling=True
(same seed, data, schedule, model), then reads each run's test report (best checkpoint by the config's
`best_metric`) and its metrics.jsonl. `--parallel` starts the runs side by side (one accelerator shared by
several small runs, or several CPU cores). Writes benchmarks/results/class_weights.json and prints a table.
Make the data with `python scripts/make_synthetic.py --out_dir D --num_classes 1000`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import numpy as np  # noqa: E402

from asl_jax.data import splits as splits_lib  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = {
    "weighted": {"use_class_weights": True, "balanced_sampling": False},
    "unweighted": {"use_class_weights": False, "balanced_sampling": False},
    "balanced": {"use_class_weights": False, "balanced_sampling": True},
}


def command(args, name: str) -> list[str]:
  cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"), f"--config={args.config}",
         f"--workdir={os.path.join(args.workdir_root, name)}", f"--config.data_dir={args.data_dir}",
         "--config.progress_bar=False"]
  if args.epochs:
    cmd.append(f"--config.epochs={args.epochs}")
  if args.warmup_epochs >= 0:
    cmd.append(f"--config.warmup_epochs={args.warmup_epochs}")
  cmd += [f"--config.{k}={v}" for k, v in VARIANTS[name].items()]
  cmd += [f"--config.{o}" for o in args.override]
  return cmd


def by_train_count(workdir: str, per_class_accuracy: dict) -> dict:
  """Mean test accuracy of the classes grouped by their number of training clips (in the split file, as the
  seed's class weights count them)."""
  with open(os.path.join(workdir, "config.json"), encoding="utf-8") as f:
    config = json.load(f)
  split = splits_lib.read_split(os.path.join(config["data_dir"], config["subset"]),
                                splits_lib.read_class_names(config["data_dir"]))
  train = [e.subset == "train" for e in split.entries]
  counts = np.bincount(split.labels()[train], minlength=split.num_classes)
  groups: dict = {}
  for gloss, n in zip(split.glosses, counts):
    if n and gloss in per_class_accuracy:
      key = "<=6" if n <= 6 else "7-10" if n <= 10 else "11-20" if n <= 20 else ">20"
      groups.setdefault(key, []).append(per_class_accuracy[gloss])
  order = ["<=6", "7-10", "11-20", ">20"]
  return {k: {"classes": len(groups[k]), "top1": round(sum(groups[k]) / len(groups[k]), 4)}
          for k in order if k in groups}


def summarise(workdir: str) -> dict:
  """Test metrics of the run's best checkpoint and its validation curve's last and best epochs."""
  out: dict = {}
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  if os.path.exists(metrics_path):
    with open(metrics_path, encoding="utf-8") as f:
      rows = [json.loads(line) for line in f if line.strip()]
    if rows:
      last = rows[-1]
      out["epochs_done"] = len(rows)
      out["epoch_time_s_median"] = common.median([r["epoch_time_s"] for r in rows])
      out["val_last"] = {k: last[k] for k in ("val_top1", "val_top5", "val_class_top1", "val_class_top5")}
      out["val_best_top1"] = max(r["val_top1"] for r in rows)
      out["val_best_class_top1"] = max(r["val_class_top1"] for r in rows)
  report_path = os.path.join(workdir, "eval_test", "report.json")
  if os.path.exists(report_path):
    with open(report_path, encoding="utf-8") as f:
      report = json.load(f)
    out["test"] = {"per_instance": report["per_instance"], "per_class": report["per_class"],
                   "checkpoint_step": report["checkpoint_step"], "num_samples": report["num_samples"],
                   "per_class_top1_by_train_clips": by_train_count(workdir, report["per_class_accuracy"])}
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--data_dir", required=True)
  p.add_argument("--config", default=os.path.join(ROOT, "configs", "nslt_1000.py"))
  p.add_argument("--variants", default="weighted,unweighted,balanced")
  p.add_argument("--epochs", type=int, default=0, help="0: the config's")
  p.add_argument("--warmup_epochs", type=int, default=-1, help="-1: the config's")
  p.add_argument("--workdir_root", default="/tmp/asl_jax_cw")
  p.add_argument("--parallel", action="store_true")
  p.add_argument("--timeout_s", type=float, default=0, help="stop the runs after this long (0: never)")
  p.add_argument("--override", action="append", default=[], help="FIELD=VALUE, repeatable")
  p.add_argument("--out", default="class_weights")
  args = p.parse_args()
  names = [v for v in args.variants.split(",") if v]
  unknown = [v for v in names if v not in VARIANTS]
  if unknown:
    p.error(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
  os.makedirs(args.workdir_root, exist_ok=True)

  start = time.time()
  deadline = start + args.timeout_s if args.timeout_s else None
  wall = {}

  def launch(name):
    # pylint: disable-next=consider-using-with
    log = open(os.path.join(args.workdir_root, name + ".log"), "w", encoding="utf-8")
    return subprocess.Popen(command(args, name), stdout=log, stderr=subprocess.STDOUT), log, time.time()

  def finish(name, proc, log, t0):
    try:
      rc = proc.wait(timeout=max(1.0, deadline - time.time()) if deadline else None)
    except subprocess.TimeoutExpired:
      proc.terminate()  # the trainer saves its checkpoint on SIGTERM
      rc = proc.wait()
      rc = f"stopped at timeout ({rc})"
    log.close()
    wall[name] = round(time.time() - t0, 1)
    return rc

  rcs = {}
  if args.parallel:
    running = {name: launch(name) for name in names}
    for name, (proc, log, t0) in running.items():
      rcs[name] = finish(name, proc, log, t0)
  else:
    for name in names:
      rcs[name] = finish(name, *launch(name))

  results = {name: {"returncode": rcs[name], "wall_s": wall[name], **VARIANTS[name],
                    **summarise(os.path.join(args.workdir_root, name))} for name in names}
  payload = {"machine": common.machine(), "data_dir": args.data_dir,
             "config": os.path.relpath(args.config, ROOT), "epochs": args.epochs or "config",
             "parallel": args.parallel, "overrides": args.override, "results": results}
  print(f"{'variant':12s} {'P-I top1':>9s} {'P-I top5':>9s} {'P-C top1':>9s} {'P-C top5':>9s} {'epochs':>7s}")
  for name, r in results.items():
    t = r.get("test")
    if t:
      print(f"{name:12s} {t['per_instance']['top1']:9.4f} {t['per_instance']['top5']:9.4f} "
            f"{t['per_class']['top1']:9.4f} {t['per_class']['top5']:9.4f} {r.get('epochs_done', 0):7d}")
    else:
      print(f"{name:12s} no test report (returncode {r['returncode']}); see {args.workdir_root}/{name}.log")
  print("wrote", common.save(args.out, payload))


if __name__ == "__main__":
  main()
