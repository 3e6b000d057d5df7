"""What a whole training run costs, and where its time goes: the recommended run before and after taking
checkpoints and validation off the critical path, side by side in one invocation, through the CLI.

  python benchmarks/run_cost.py [--settings before,after,after_warm] [--epochs N]
      [--data_dir ../shared/data/wlasl_real --subset nslt_100.json --landmarks_dir DIR]

Each setting runs `scripts/train.py --config=configs/nslt_100.py` (the recommended WLASL100 run, seed 1) in
a fresh workdir and a fresh XLA compilation cache (so every run compiles, as a first run on a machine does),
one after the other on the same machine; the packed data cache is filled once before they start.

  before      the behaviour until 2026-12-02 (and the system's memory allocator until 2026-12-03):
              synchronous saves of the whole TrainState to latest every epoch and to best when it improves,
              validation in line in batches of 256 (94 val clips padded to 256), dropout masks from threefry
  after       today's defaults: latest at most once a minute (checkpoint_min_interval_s=60) with the best
              epoch's weights written just before it, background saves, best holds the evaluated weights
              only, validation in batches sized to the split, on a worker thread while the next epoch trains
              for epochs that save nothing (background_validation)
  after_warm  as after, with the XLA cache the `after` run filled (a second seed, a resume, a rerun)
  after_every_epoch  as after with latest saved after every epoch (checkpoint_min_interval_s=0)
  after_sync  as after with async_checkpoints=False
  after_inline_val  as after with background_validation=False
  after_threefry / after_rbg  as after with dropout masks from threefry / XLA's RngBitGenerator (other draws:
              the same kind of run, not the same numbers)
  after_system_malloc / after_threefry_system_malloc  as after / after_threefry with the system's memory
              allocator (ASL_JAX_MALLOC=system) instead of a caching one (tcmalloc where installed;
              asl_jax.allocator), as before has

Every run but these two and before gets the caching allocator when one is installed (the report says which
each run had).

Reported per run: wall time of the command; from metrics.jsonl the sums of the steps' time, validation in
line (val_time_s) and on the worker thread (val_background_time_s, overlapping the next epoch's steps),
checkpoint saves and the epochs' wall time; outside the epochs (start-up, data, compilation, test); the
test metrics and whether they (best step, top-1 / top-5, per-class accuracies) equal `before`'s. Writes benchmarks/results/run_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from asl_jax import allocator  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(REPO, "..", "shared", "data", "wlasl_real")

SETTINGS = {
    "before": ["--config.async_checkpoints=False", "--config.best_checkpoint=state", "--config.eval_batch_size=256",
               "--config.checkpoint_min_interval_s=0", "--config.background_validation=False",
               "--config.dropout_rng=threefry"],
    "after": [],
    "after_warm": [],
    "after_every_epoch": ["--config.checkpoint_min_interval_s=0"],
    "after_sync": ["--config.async_checkpoints=False"],
    "after_inline_val": ["--config.background_validation=False"],
    "after_threefry": ["--config.dropout_rng=threefry"],
    "after_rbg": ["--config.dropout_rng=rbg"],
    "after_system_malloc": [],
    "after_threefry_system_malloc": ["--config.dropout_rng=threefry"],
}
# The settings run with the system's memory allocator (asl_jax.allocator; every run did before 2026-12-03).
SYSTEM_MALLOC = {"before", "after_system_malloc", "after_threefry_system_malloc"}


def run_one(name: str, args, root: str, xla_dirs: dict) -> dict:
  workdir = os.path.join(root, name)
  xla = xla_dirs["after"] if name == "after_warm" else xla_dirs.setdefault(name, tempfile.mkdtemp(dir=root))
  env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": xla, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "1",
         **({allocator.ENV: "system"} if name in SYSTEM_MALLOC else {})}
  cmd = [sys.executable, os.path.join(REPO, "scripts", "train.py"), f"--config={args.config}",
         f"--workdir={workdir}", f"--config.data_dir={args.data_dir}", f"--config.subset={args.subset}",
         f"--config.landmarks_dir={args.landmarks_dir}", "--config.gemma_features_dir=",
         "--config.progress_bar=False", f"--config.seed={args.seed}", *SETTINGS[name]]
  if args.epochs:
    cmd.append(f"--config.epochs={args.epochs}")
  usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
  t0 = time.perf_counter()
  out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
  wall = time.perf_counter() - t0
  if out.returncode:
    raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8")]
  total = lambda key: round(sum(r.get(key, 0.0) for r in rows), 1)  # noqa: E731
  report = json.load(open(os.path.join(workdir, "eval_test", "report.json"), encoding="utf-8"))
  preds = {k: report[k] for k in ("checkpoint_step", "per_instance", "per_class", "per_class_accuracy")}
  compiled = re.search(r"compiled the train step in ([0-9.]+) s", out.stderr)
  usage = resource.getrusage(resource.RUSAGE_CHILDREN)
  epochs = total("epoch_time_s")
  res = {"wall_s": round(wall, 1), "epochs": len(rows), "steps_s": total("steps_time_s"),
         "val_s": total("val_time_s"), "val_background_s": total("val_background_time_s"),
         "checkpoint_s": total("checkpoint_time_s"), "epochs_s": epochs,
         "other_in_epochs_s": round(epochs - total("steps_time_s") - total("val_time_s") -
                                    total("checkpoint_time_s"), 1),
         "outside_epochs_s": round(wall - epochs, 1),
         "train_step_compile_s": float(compiled.group(1)) if compiled else None,
         "best_epoch": report.get("checkpoint_step", 0) // max(1, rows[0]["step"]),
         "test_top1": report["per_instance"]["top1"], "test_top5": report["per_instance"]["top5"],
         "val_top1_last": rows[-1].get("val_top1"), "_predictions": preds, "_rows": rows,
         "allocator": "system" if name in SYSTEM_MALLOC else os.path.basename(allocator.caching_library() or "system"),
         "cpu_user_s": round(usage.ru_utime - usage0.ru_utime, 1),
         "cpu_system_s": round(usage.ru_stime - usage0.ru_stime, 1), "page_faults": usage.ru_minflt - usage0.ru_minflt}
  res["outside_steps_fraction"] = round(1 - res["steps_s"] / wall, 3)
  print(f"{name:11s} wall {res['wall_s']:7.1f} s | steps {res['steps_s']:6.1f} val {res['val_s']:5.1f} "
        f"(background {res['val_background_s']:5.1f}) "
        f"checkpoints {res['checkpoint_s']:5.1f} other {res['other_in_epochs_s']:4.1f} outside epochs "
        f"{res['outside_epochs_s']:5.1f} (compile {res['train_step_compile_s']}) | outside steps "
        f"{100 * res['outside_steps_fraction']:.1f} % | best epoch {res['best_epoch']} test top-1 "
        f"{res['test_top1']:.3f} top-5 {res['test_top5']:.3f} | {res['allocator']} allocator, cpu user "
        f"{res['cpu_user_s']} system {res['cpu_system_s']} s, {res['page_faults']} page faults", flush=True)
  return res


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--settings", default="before,after,after_warm")
  p.add_argument("--config", default=os.path.join(REPO, "configs", "nslt_100.py"))
  p.add_argument("--data_dir", default=SHARED)
  p.add_argument("--subset", default="nslt_100.json")
  p.add_argument("--landmarks_dir", default=os.path.join(SHARED, "landmarks"))
  p.add_argument("--epochs", type=int, default=0, help="0: the config's")
  p.add_argument("--seed", type=int, default=1)
  p.add_argument("--root", default="", help="where the workdirs go (default: a new temporary folder)")
  p.add_argument("--name", default="run_cost", help="benchmarks/results/NAME.json")
  args = p.parse_args()
  names = args.settings.split(",")
  unknown = [n for n in names if n not in SETTINGS]
  if unknown or ("after_warm" in names and "after" not in names[:names.index("after_warm")]):
    raise SystemExit(f"--settings: known {list(SETTINGS)}; after_warm needs after before it")
  root = args.root or tempfile.mkdtemp(prefix="asl_jax_run_cost_")
  os.makedirs(root, exist_ok=True)
  print(f"workdirs under {root}", flush=True)
  # Fill the packed-data cache first (one epoch, not measured), so no measured run packs the data.
  subprocess.run([sys.executable, os.path.join(REPO, "scripts", "train.py"), f"--config={args.config}",
                  f"--workdir={os.path.join(root, 'warmup')}", f"--config.data_dir={args.data_dir}",
                  f"--config.subset={args.subset}", f"--config.landmarks_dir={args.landmarks_dir}",
                  "--config.gemma_features_dir=", "--config.epochs=1", "--config.evaluate_test=False",
                  "--config.progress_bar=False"], capture_output=True, check=True,
                 env={**os.environ, "JAX_COMPILATION_CACHE_DIR": tempfile.mkdtemp(dir=root)})
  xla_dirs: dict = {}
  results = {n: run_one(n, args, root, xla_dirs) for n in names}
  payload = {"machine": common.machine(), "config": os.path.relpath(args.config, REPO), "seed": args.seed,
             "data_dir": args.data_dir, "epochs": args.epochs or "config"}
  if "before" in results:
    ref = results["before"]
    for n, r in results.items():
      r["wall_vs_before"] = round(r["wall_s"] / ref["wall_s"], 3)
      r["same_test_results_as_before"] = r["_predictions"] == ref["_predictions"]
      same_val = [a.get("val_top1") == b.get("val_top1") for a, b in zip(r["_rows"], ref["_rows"])]
      r["same_val_top1_every_epoch"] = all(same_val)
      same_loss = [a["train_loss"] == b["train_loss"] for a, b in zip(r["_rows"], ref["_rows"])]
      r["same_train_loss_every_epoch"] = all(same_loss)
      print(f"{n:11s} wall {r['wall_vs_before']:.3f}x before; same test results {r['same_test_results_as_before']}, "
            f"same val top-1 every epoch {r['same_val_top1_every_epoch']}, same train loss every epoch "
            f"{r['same_train_loss_every_epoch']}")
  payload["runs"] = {n: {k: v for k, v in r.items() if not k.startswith("_")} for n, r in results.items()}
  print("wrote", common.save(args.name, payload))


if __name__ == "__main__":
  main()
