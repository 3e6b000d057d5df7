"""Builds the shipped WLASL100 model: the recipe trained on train+val of the real clips for its fixed 150
epochs (the last epoch's weights: there is no val left to choose one), calibrated from held-out folds.

A model trained on its val clips cannot be calibrated on them. So K models of the same recipe are trained,
each on train+val without one fold (the folds split every class's clips round-robin, seeded), and the
calibration is fitted on the folds' out-of-fold logits (the last epoch of each, like the shipped model's
weights): the temperature and the unknown threshold on all out-of-fold clips, the enrolment scales as the
mean of each fold's fit. The test clips are never read until the packaged model is evaluated at the end.

  python benchmarks/ship_model.py --out=asl_jax/pretrained/wlasl100 [--folds 4] [--seed 1]

Runs live under $ASL_JAX_CACHE/ship (or ~/.cache/asl_jax/ship) and are reused; --out must not exist.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import app, flags

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

DATA = os.path.join(ROOT, "..", "shared", "data")
flags.DEFINE_string("out", None, "where to package the model (must not exist)")
flags.DEFINE_integer("folds", 4, "held-out folds of train+val for the calibration")
flags.DEFINE_integer("seed", 1, "the recipe's seed")
flags.DEFINE_string("config", "configs/nslt_100.py", "the recipe")
flags.DEFINE_multi_string("override", [], "FIELD=VALUE config overrides")
flags.DEFINE_string("tag", "", "a name for this build's runs (ship<tag>/)")
FLAGS = flags.FLAGS


def root() -> str:
  base = os.environ.get("ASL_JAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "asl_jax")
  return os.path.join(base, f"ship{FLAGS.tag}")


def clips() -> dict:
  split = json.load(open(os.path.join(DATA, "wlasl", "nslt_100.json"), encoding="utf-8"))
  have = {f[:-len("_landmarks.npy")] for f in os.listdir(os.path.join(DATA, "wlasl_real", "landmarks"))}
  return {k: v for k, v in sorted(split.items()) if k in have}


def write_split(path: str, split: dict) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(split, f)
  target = os.path.join(os.path.dirname(path), "wlasl_class_list.txt")
  if not os.path.exists(target):
    os.symlink(os.path.abspath(os.path.join(DATA, "wlasl", "wlasl_class_list.txt")), target)


def train(workdir: str, data_dir: str, subset: str, *extra: str) -> None:
  done = workdir + ".done"
  if os.path.isfile(done):
    return
  t0 = time.time()
  cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"), f"--config={FLAGS.config}",
         f"--workdir={workdir}", f"--config.data_dir={data_dir}", f"--config.subset={subset}",
         f"--config.landmarks_dir={os.path.join(DATA, 'wlasl_real', 'landmarks')}", "--config.gemma_features_dir=",
         f"--config.seed={FLAGS.seed}", "--config.progress_bar=False", "--config.evaluate_test=False", *extra
         ] + [f"--config.{o}" for o in FLAGS.override]
  with open(workdir + ".log", "a", encoding="utf-8") as log:
    subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
  with open(done, "w", encoding="utf-8") as f:
    f.write(f"{time.time() - t0:.0f}\n")
  print(f"{workdir}: trained in {time.time() - t0:.0f} s", flush=True)


def main(argv):
  del argv
  import numpy as np  # pylint: disable=import-outside-toplevel
  from asl_jax.evaluation import calibration  # pylint: disable=import-outside-toplevel
  from asl_jax.runs.run_dir import RunDir  # pylint: disable=import-outside-toplevel
  from asl_jax.serving import evaluate  # pylint: disable=import-outside-toplevel
  from asl_jax import pretrained  # pylint: disable=import-outside-toplevel
  if not FLAGS.out or os.path.exists(FLAGS.out):
    raise SystemExit("--out: give a path that does not exist")
  split = clips()
  pool = {k: v for k, v in split.items() if v["subset"] in ("train", "val")}
  by_class: dict[int, list[str]] = {}
  for k, v in pool.items():
    by_class.setdefault(v["action"][0], []).append(k)
  rng = np.random.default_rng(FLAGS.seed)
  fold_of = {}
  for c in sorted(by_class):
    ids = list(rng.permutation(sorted(by_class[c])))
    start = int(rng.integers(FLAGS.folds))
    for i, k in enumerate(ids):
      fold_of[k] = (start + i) % FLAGS.folds
  parts = []
  for fold in range(FLAGS.folds):
    folder = os.path.join(root(), f"fold{fold}")
    write_split(os.path.join(folder, "split.json"),
                {k: {**v, "subset": "val" if fold_of[k] == fold else "train"} for k, v in pool.items()})
    train(os.path.join(folder, "run"), folder, "split.json")
    parts.append(evaluate.heldout_arrays(os.path.join(folder, "run"), "latest"))
  final_dir = os.path.join(root(), "final")
  write_split(os.path.join(final_dir, "split.json"), {k: v for k, v in split.items() if v["subset"] != "test"})
  train(os.path.join(final_dir, "run"), final_dir, "split.json", "--config.train_subsets=train+val")
  run_dir = os.path.join(final_dir, "run")
  from asl_jax.runs import restore  # pylint: disable=import-outside-toplevel
  step = restore.load_run(run_dir, "latest").step
  cal = calibration.fit(np.concatenate([p["logits"] for p in parts], 1), np.concatenate([p["labels"] for p in parts]),
                        step, fitted_on=f"{FLAGS.folds} held-out folds of train+val (each fold's model trained "
                        "on the others)")
  enrol = [p["enrol"] for p in parts]
  cal["enrol"] = {"shots": enrol[0]["shots"],
                  "scale": [float(np.mean([e["scale"][i] for e in enrol])) for i in range(len(enrol[0]["shots"]))],
                  "bias": [float(np.mean([e["bias"][i] for e in enrol])) for i in range(len(enrol[0]["shots"]))],
                  "embedding_norm": float(np.mean([e["embedding_norm"] for e in enrol])),
                  "draws": enrol[0]["draws"], "val_clips": int(sum(e["val_clips"] for e in enrol)),
                  "folds": FLAGS.folds}
  RunDir(run_dir).save_calibration(cal)
  print(json.dumps({k: v for k, v in cal.items() if k != "enrol"}), flush=True)
  pretrained.package(run_dir, FLAGS.out, checkpoint="latest")
  # The packaged config names the official split file, not the build's own copy of it, and no data paths
  # (pretrained.portable_config): where the real clips are is given to this evaluation only.
  config_path = os.path.join(FLAGS.out, "config.json")
  with open(config_path, encoding="utf-8") as f:
    config = json.load(f)
  config.update(subset="nslt_100.json")
  with open(config_path, "w", encoding="utf-8") as f:
    json.dump(config, f, indent=2, sort_keys=True)
  report = evaluate.evaluate_workdir(FLAGS.out, "test", out_dir=os.path.join(root(), "eval_test"), data_overrides={
      "data_dir": os.path.abspath(os.path.join(DATA, "wlasl_real")),
      "landmarks_dir": os.path.abspath(os.path.join(DATA, "wlasl_real", "landmarks"))})
  summary = {"test_top1": report["per_instance"]["top1"], "test_top5": report["per_instance"]["top5"],
             "test_ece": report["calibration"]["ece"], "test_called_unknown": report["calibration"]["called_unknown"],
             "test_clips": report["num_samples"], "step": step, "temperature": cal["temperature"],
             "unknown_threshold": cal["unknown_threshold"], "calibrated_on": cal["fitted_on"],
             "trained_on": "train+val of the real WLASL100 clips (542), 150 epochs, the last epoch's weights"}
  with open(os.path.join(FLAGS.out, "test_report.json"), "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=2)
  print(json.dumps(summary), flush=True)


if __name__ == "__main__":
  app.run(main)
