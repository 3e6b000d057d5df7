"""Continuous recognition on streams built from the clips of a split (asl_jax.live, what `asl-live` runs).

Each stream is K clips in a seeded random order, in three variants (asl_jax.live.scoring.VARIANTS): the
clips as they are, with their own rests; rests cut to at most 2 frames on each side of the hand span; no
rests, each clip cut to its hand span and placed back to back. A true segment is a clip's hand span.
Reported per variant over the stream-order seeds: gloss error rate (edit distance / reference length, over
all streams), segment F1 at IoU >= 0.5, signs detected against true, the same model's isolated top-1 on the
same clips, real-time factor and latency (from a sign's last frame to its JSON line, frames arriving at
the stream's rate) on this machine.

  python benchmarks/continuous.py [--split=test] [--seeds=1,2,3] [--workdir=DIR]      # the shipped model
  python benchmarks/continuous.py --split=val --segment_only --grid=1                 # choosing the settings
  python benchmarks/continuous.py --video [--video_clips=10]                        # from video, extraction in

Defaults: ../shared/data/wlasl_real landmarks with the official nslt_100 split, 25 fps.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import itertools
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from asl_jax.data import splits as splits_lib  # noqa: E402
from asl_jax.live import scoring, segmenter as seg_lib, stream  # noqa: E402

SHARED = os.path.join(os.path.dirname(HERE), "..", "shared", "data")
# The settings' grids searched on val (benchmarks/results/continuous_grid_val*.json): the first, then a finer
# one around its best (a rest longer than 0.32 s would push the latency past 0.5 s).
GRIDS = [{"cut_body": (0.15, 0.2, 0.3), "cut_hand": (1.0, 1.5, 2.5), "gap_s": (0.12, 0.2, 0.32),
          "max_len_s": (2.5, 4.0)},
         {"cut_body": (0.1, 0.12, 0.15), "cut_hand": (0.6, 0.8, 1.0), "cut_scale": (0.1, 0.15), "gap_s": (0.32,),
          "max_len_s": (4.0, 6.0)}]


def load_clips(data_dir: str, subset: str, landmarks_dir: str, split: str):
  """[(video id, raw (T, 162), hands (T,), gloss)] of the split's clips that have a hand."""
  path = splits_lib.resolve_split_path(data_dir, subset)
  names = splits_lib.read_class_names(data_dir) or {}
  with open(path, encoding="utf-8") as f:
    entries = json.load(f)
  out = []
  for vid, e in sorted(entries.items()):
    p = os.path.join(landmarks_dir, f"{vid}_landmarks.npy")
    if e["subset"] != split or not os.path.exists(p):
      continue
    raw = np.load(p).astype(np.float32)
    hands, _, _ = seg_lib.frame_signals(raw, "seed162")
    if hands.any():
      out.append((vid, raw, hands, names.get(e["action"][0], str(e["action"][0]))))
  return out


def streams(clips, k: int, seed: int):
  """The clips in a seeded order, in groups of k (a last group of fewer than 2 joins the one before)."""
  order = np.random.default_rng(seed).permutation(len(clips))
  groups = [list(order[i:i + k]) for i in range(0, len(order), k)]
  if len(groups) > 1 and len(groups[-1]) < 2:
    groups[-2] += groups.pop()
  return [[clips[i] for i in g] for g in groups]


def score(groups, variant: str, config, run_model, fps: float):
  """Totals over streams: edit distance, reference length, hits, predicted and true segments, time."""
  tot = {"edits": 0, "ref": 0, "hits": 0, "pred": 0, "true": 0, "wall": 0.0, "stream_s": 0.0, "latency": []}
  for g in groups:
    raw, truth, _ = scoring.build_stream([c[1] for c in g], [c[2] for c in g], variant)
    if run_model is None:
      t0 = time.perf_counter()
      segs = seg_lib.segment(raw, "seed162", config, fps)
      tot["wall"] += time.perf_counter() - t0
      glosses = []
    else:
      res = run_model(raw, config)
      segs = [(s["start_frame"], s["end_frame"]) for s in res["signs"]]
      glosses = [s["top_k"][0]["gloss"] for s in res["signs"]]
      tot["wall"] += res["seconds"]
      tot["latency"] += [s["latency_s"] for s in res["signs"]]
      tot["edits"] += scoring.edit_distance(glosses, [c[3] for c in g])
    tot["ref"] += len(g)
    f = scoring.segment_f1(segs, truth)
    tot["hits"] += f["hits"]
    tot["pred"] += len(segs)
    tot["true"] += len(truth)
    tot["stream_s"] += len(raw) / fps
  p = tot["hits"] / max(tot["pred"], 1)
  r = tot["hits"] / max(tot["true"], 1)
  out = {"f1": 2 * p * r / max(p + r, 1e-9), "precision": p, "recall": r, "detected": tot["pred"],
         "true": tot["true"], "rtf": tot["stream_s"] / max(tot["wall"], 1e-9)}
  if run_model is not None:
    out["ger"] = tot["edits"] / tot["ref"]
    lat = sorted(tot["latency"])
    out["latency_mean_s"] = statistics.mean(lat) if lat else None
    out["latency_p95_s"] = lat[int(0.95 * (len(lat) - 1))] if lat else None
  return out


def model_runner(workdir, fps: float):
  from asl_jax.live import recognizer  # pylint: disable=import-outside-toplevel
  from asl_jax import pretrained  # pylint: disable=import-outside-toplevel
  predictors = recognizer.load_predictors([pretrained.resolve(w) for w in (workdir.split(",") if workdir else [""])])

  def run(raw, config):
    return stream.recognize_with(predictors, raw, fps, config)
  return run, predictors


def isolated_top1(predictors, clips) -> float:
  probs = np.mean([p.predict_clips([p.load_clip(c[1]) for c in clips]) for p in predictors], 0)
  glosses = predictors[0].glosses
  return float(np.mean([glosses[int(np.argmax(pr))] == c[3] for pr, c in zip(probs, clips)]))


def summarise(rows: list[dict]) -> dict:
  keys = [k for k in rows[0] if isinstance(rows[0][k], (int, float)) and rows[0][k] is not None]
  return {k: {"mean": statistics.mean(r[k] for r in rows),
              "sd": statistics.stdev(r[k] for r in rows) if len(rows) > 1 else 0.0} for k in keys}


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--split", default="test")
  ap.add_argument("--seeds", default="1,2,3")
  ap.add_argument("--k", type=int, default=5)
  ap.add_argument("--fps", type=float, default=25.0)
  ap.add_argument("--workdir", default="")
  ap.add_argument("--data_dir", default=os.path.join(SHARED, "wlasl_real"))
  ap.add_argument("--subset", default="nslt_100.json")
  ap.add_argument("--landmarks_dir", default="")
  ap.add_argument("--segment_only", action="store_true", help="segmentation scores only, no model")
  ap.add_argument("--grid", type=int, default=0, help="1 or 2: every combination of GRIDS[N - 1] (choose on "
                  "--split=val)")
  ap.add_argument("--set", action="append", default=[], help="a segmenter setting, NAME=VALUE")
  ap.add_argument("--out", default="", help="write the results as JSON here")
  args = ap.parse_args(argv)
  clips = load_clips(args.data_dir, args.subset, args.landmarks_dir or os.path.join(args.data_dir, "landmarks"),
                     args.split)
  seeds = [int(s) for s in args.seeds.split(",")]
  base = seg_lib.SegmenterConfig(**{kv.split("=")[0]: float(kv.split("=")[1]) for kv in args.set})
  configs = [base]
  if args.grid:
    grid = GRIDS[args.grid - 1]
    configs = [dataclasses.replace(base, **dict(zip(grid, vals))) for vals in itertools.product(*grid.values())]
  run_model, predictors = (None, None) if args.segment_only else model_runner(args.workdir, args.fps)
  results = {"split": args.split, "clips": len(clips), "k": args.k, "seeds": seeds, "runs": []}
  if predictors:
    results["isolated_top1"] = isolated_top1(predictors, clips)
    print(f"{args.split}: {len(clips)} clips, isolated top-1 {results['isolated_top1']:.3f}")
  for cfg in configs:
    entry = {"config": dataclasses.asdict(cfg), "variants": {}}
    for variant in scoring.VARIANTS:
      rows = [score(streams(clips, args.k, s), variant, cfg, run_model, args.fps) for s in seeds]
      entry["variants"][variant] = {"per_seed": rows, **summarise(rows)}
      m = entry["variants"][variant]
      line = f"  {variant:8s} F1 {m['f1']['mean']:.3f} ± {m['f1']['sd']:.3f}"
      line += f"  detected {m['detected']['mean']:.1f} / {m['true']['mean']:.0f}"
      if "ger" in m:
        line += (f"  GER {m['ger']['mean']:.3f} ± {m['ger']['sd']:.3f} (1 - isolated = "
                 f"{1 - results['isolated_top1']:.3f})  latency {m['latency_mean_s']['mean']:.3f} s")
      line += f"  {m['rtf']['mean']:.0f}x real time"
      entry["variants"][variant]["line"] = line
    print(json.dumps(entry["config"]))
    for variant in scoring.VARIANTS:
      print(entry["variants"][variant]["line"])
    results["runs"].append(entry)
  if args.grid:
    best = max(results["runs"], key=lambda e: statistics.mean(e["variants"][v]["f1"]["mean"]
                                                             for v in scoring.VARIANTS))
    print("best mean F1 over the variants:", json.dumps(best["config"]))
  if args.out:
    with open(args.out, "w", encoding="utf-8") as f:
      json.dump(results, f, indent=1)


if __name__ == "__main__":
  main()
