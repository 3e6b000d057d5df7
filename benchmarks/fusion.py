"""Visual stream and fusion: landmarks only / visual only / each fusion type, on synthetic sets whose
visual features carry a weak or a strong class signal, through the public training API.

  python benchmarks/fusion.py [--config configs/nslt_100.py] [--strengths 0.08,1.0] [--num_classes 100]
      [--train_scale 0.5] [--seeds 1,2,3] [--variants landmarks,visual,concat,...] [--epochs 0] [--jobs 2]
      [--override FIELD=VALUE ...] [--name fusion] [--write_docs]

For each strength it writes a seed-format data set (`make_synthetic(..., with_visual=True,
visual_strength=S)`: landmarks whose classes differ in one handshape / location / movement, visual
features = class code x strength + per-frame noise, with per-dimension offsets and scales), reports a
nearest-centroid classifier and a linear probe (logistic regression, L2 chosen on val) on time-pooled,
standardised visual features (the floors a visual stream should reach), then trains every variant for
every seed with the config (best checkpoint on val, test report).
Variants: landmarks only, visual only, each fusion type (the config's hybrid settings), and the seed's
hybrid as it was (`seed_concat`, `seed_visual`: its visual stream on raw features, plain concat fusion).
Real WLASL visual features need PaliGemma's weights (`scripts/extract_visual_features.py`), which cannot be
downloaded here: the real-data rows of docs/results.md's table say so.
Writes benchmarks/results/<name>.json; `--write_docs` rewrites docs/results.md between <!-- FUSION:START/END -->.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import accuracy  # noqa: E402
import common  # noqa: E402
import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = {
    "landmarks": {"gemma_features_dir": ""},
    "visual": {"use_landmarks": False},
    "concat": {"fusion_type": "concat"},
    "attention": {"fusion_type": "attention"},
    "gated": {"fusion_type": "gated"},
    # The seed's hybrid as it was: its visual stream, raw features, concat fusion, no auxiliary heads.
    "seed_concat": {"fusion_type": "concat", "visual_stream": "seed", "visual_standardize": False,
                    "aux_loss_weight": 0.0, "modality_dropout": 0.0, "fusion_residual": False, "feature_noise": 0.05},
    "seed_visual": {"use_landmarks": False, "visual_stream": "seed", "visual_standardize": False,
                    "feature_noise": 0.05},
}


def pooled_features(data: dict) -> dict:
  """{split: (x (N, D), y (N,))}: time-pooled visual features, standardised with training-set statistics."""
  with open(os.path.join(data["data_dir"], data["subset"]), encoding="utf-8") as f:
    split = json.load(f)
  feats = {s: ([], []) for s in ("train", "val", "test")}
  for vid, e in split.items():
    v = np.load(os.path.join(data["gemma_features_dir"], vid + "_gemma.npy")).mean(0)
    feats[e["subset"]][0].append(v)
    feats[e["subset"]][1].append(e["action"][0])
  xtr = np.asarray(feats["train"][0])
  mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
  return {s: ((np.asarray(x) - mu) / sd, np.asarray(y)) for s, (x, y) in feats.items()}


def nearest_centroid(data: dict) -> dict:
  """Test / val accuracy of nearest class centroid on time-pooled, standardised visual features."""
  feats = pooled_features(data)
  xtr, ytr = feats["train"]
  centroids = np.stack([xtr[ytr == c].mean(0) for c in range(data["num_classes"])])
  out = {}
  for s in ("val", "test"):
    d = ((feats[s][0][:, None] - centroids[None]) ** 2).sum(-1)
    out[s] = float((d.argmin(1) == feats[s][1]).mean())
  return out


def linear_probe(data: dict, l2s=(1e-4, 1e-3, 1e-2, 1e-1), steps: int = 300) -> dict:
  """Val / test accuracy of multinomial logistic regression (L-BFGS to convergence) on time-pooled,
  standardised visual features, its L2 penalty chosen on val: what a visual stream should reach."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import optax  # pylint: disable=import-outside-toplevel
  feats = pooled_features(data)
  x, y = jnp.asarray(feats["train"][0]), jnp.asarray(feats["train"][1])
  k = data["num_classes"]

  def fit(l2):
    def loss(p):
      logits = x @ p[0] + p[1]
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean() + l2 * jnp.sum(p[0] ** 2)
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)

    @jax.jit
    def step(p, state):
      value, grad = value_and_grad(p, state=state)
      updates, state = opt.update(grad, state, p, value=value, grad=grad, value_fn=loss)
      return optax.apply_updates(p, updates), state
    p = (jnp.zeros((x.shape[1], k)), jnp.zeros(k))
    state = opt.init(p)
    for _ in range(steps):
      p, state = step(p, state)
    return {s: float(((feats[s][0] @ np.asarray(p[0]) + np.asarray(p[1])).argmax(1) == feats[s][1]).mean())
            for s in ("val", "test")}
  results = {l2: fit(l2) for l2 in l2s}
  best = max(l2s, key=lambda l2: results[l2]["val"])
  return {**results[best], "l2": best}


def render(runs: list, floors: dict, variants: list) -> tuple[str, dict]:
  """The docs/results.md table (test top-1 mean ± sd over seeds, per strength and variant) and its summary."""
  lines = ["| visual signal | nearest centroid (test) | linear probe (test) | " + " | ".join(variants) + " |",
           "|---|---|---|" + "---|" * len(variants)]
  summary = {}
  for strength, floor in floors.items():
    cells = []
    for variant in variants:
      xs = [r["test"]["top1"] for r in runs if float(r["strength"]) == float(strength) and r["variant"] == variant]
      if not xs:
        cells.append("-")
        continue
      mean, sd = statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0
      summary[f"{strength}/{variant}"] = {"test_top1_mean": mean, "test_top1_std": sd, "n": len(xs)}
      cells.append(f"{100 * mean:.1f} ± {100 * sd:.1f}")
    lines.append(f"| strength {strength} | {100 * floor['nearest_centroid']['test']:.1f} | "
                 f"{100 * floor['linear_probe']['test']:.1f} | " + " | ".join(cells) + " |")
  return "\n".join(lines), summary


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--config", default="configs/nslt_100.py")
  ap.add_argument("--strengths", default="0.08,1.0")
  ap.add_argument("--num_classes", type=int, default=100)
  ap.add_argument("--train_scale", type=float, default=0.5)
  ap.add_argument("--seeds", default="1,2,3")
  ap.add_argument("--variants", default=",".join(VARIANTS))
  ap.add_argument("--epochs", type=int, default=0)
  ap.add_argument("--jobs", type=int, default=1)
  ap.add_argument("--override", action="append", default=[])
  ap.add_argument("--name", default="fusion")
  ap.add_argument("--workdir_root", default="/tmp/asl_jax_fusion")
  ap.add_argument("--write_docs", action="store_true")
  ap.add_argument("--from_results", action="store_true",
                  help="only render benchmarks/results/NAME.json (NAME may list several: a,b)")
  args = ap.parse_args()
  if args.from_results:  # --name a,b: the runs of several results files in one table
    runs, floors = [], {}
    for name in args.name.split(","):
      with open(os.path.join(ROOT, "benchmarks", "results", name + ".json"), encoding="utf-8") as f:
        saved = json.load(f)
      runs += saved["runs"]
      floors.update(saved["floors"])
    text, _ = render(runs, floors, args.variants.split(","))
    print(text)
    if args.write_docs:
      accuracy.update_doc(text, "FUSION")
    return
  from asl_jax.data.synthetic import make_synthetic  # pylint: disable=import-outside-toplevel
  overrides = {k: accuracy._parse_value(v) for k, v in (o.split("=", 1) for o in args.override)}  # pylint: disable=protected-access
  config = args.config if os.path.isabs(args.config) else os.path.join(ROOT, args.config)
  jobs, floors = [], {}
  for strength in (float(s) for s in args.strengths.split(",")):
    d = os.path.join(args.workdir_root, args.name, f"data_s{strength}")
    data = make_synthetic(d, args.num_classes, seed=0, with_visual=True, train_scale=args.train_scale,
                          visual_strength=strength)
    floors[strength] = {"nearest_centroid": nearest_centroid(data), "linear_probe": linear_probe(data)}
    set_args = {"data_dir": data["data_dir"], "subset": data["subset"], "landmarks_dir": data["landmarks_dir"],
                "gemma_features_dir": data["gemma_features_dir"], "landmark_layout": "seed162"}
    for variant in args.variants.split(","):
      for seed in (int(s) for s in args.seeds.split(",")):
        wd = os.path.join(args.workdir_root, args.name, f"s{strength}_{variant}_seed{seed}")
        jobs.append({"config": config, "set": f"strength {strength}", "seed": seed, "workdir": wd,
                     "set_args": {**set_args, **VARIANTS[variant]}, "overrides": overrides, "epochs": args.epochs,
                     "threads": args.jobs > 1, "variant": variant, "strength": strength})
  runs = []
  with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
    for job, r in zip(jobs, pool.map(accuracy.run_one, jobs)):
      r.update(variant=job["variant"], strength=job["strength"])
      print(f"strength {r['strength']} {r['variant']} seed {r['seed']}: val top-1 {r['val']['top1']:.3f} | test top-1 "
            f"{r['test']['top1']:.3f} top-5 {r['test']['top5']:.3f} | {r['seconds']:.0f} s", flush=True)
      runs.append(r)
  text, summary = render(runs, floors, args.variants.split(","))
  print(text)
  path = common.save(args.name, {"machine": common.machine(), "config": os.path.relpath(config, ROOT),
                                 "overrides": overrides, "num_classes": args.num_classes, "floors": floors,
                                 "summary": summary, "runs": runs})
  print("wrote", path)
  if args.write_docs:
    accuracy.update_doc(text, "FUSION")


if __name__ == "__main__":
  main()
