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
  python benchmarks/continuous.py --video [--video_streams=3] [--frame_steps=1,2]   # from video, extraction in
  python benchmarks/continuous.py --report                                          # docs/live.md's table

Defaults: ../shared/data/wlasl_real landmarks with the official nslt_100 split, 25 fps.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
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


def single_clips(clips, config, fps: float) -> dict:
  """Each clip alone (one signer, one sign): how often the segmenter finds exactly one sign, and how many
  cuts fire inside clips (every one a false cut: nothing was edited)."""
  counts = []
  cuts = 0
  for c in clips:
    sg = seg_lib.Segmenter(config, fps)
    fired = []
    orig = sg._cut  # pylint: disable=protected-access
    sg._cut = lambda t, orig=orig, fired=fired: (fired.append(t), orig(t))[1]  # pylint: disable=protected-access
    hands, body, wrists = seg_lib.frame_signals(c[1], "seed162")
    found = []
    for t in range(len(hands)):
      found += sg.push(hands[t], body[t], wrists[t])
    found += sg.flush()
    counts.append(len(found))
    cuts += len(fired)
  minutes = sum(len(c[1]) for c in clips) / fps / 60
  return {"one_sign": float(np.mean(np.array(counts) == 1)), "none": float(np.mean(np.array(counts) == 0)),
          "several": float(np.mean(np.array(counts) > 1)), "cuts_per_minute": cuts / minutes}


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


_CONCAT = """
import sys, cv2, numpy as np
out, w, h, fps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
for path in sys.argv[5:]:
  cap = cv2.VideoCapture(path)
  n = 0
  while True:
    ok, frame = cap.read()
    if not ok:
      break
    fh, fw = frame.shape[:2]
    s = min(w / fw, h / fh)
    small = cv2.resize(frame, (int(fw * s), int(fh * s)))
    canvas = np.zeros((h, w, 3), np.uint8)
    y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
    writer.write(canvas)
    n += 1
  print(n)
writer.release()
"""


def video_benchmark(clips, videos_dir: str, streams_n: int, k: int, frame_steps, workdir: str, out_dir: str):
  """Streams of k real clips as one mp4 each (letterboxed to 320x240 at 25 fps, every frame kept), through
  `scripts/live.py --video` with the extraction child: scores against the clips' hand spans in their
  landmark files, wall time, real-time factor and latency."""
  import subprocess  # pylint: disable=import-outside-toplevel
  from asl_jax import extract as extract_lib  # pylint: disable=import-outside-toplevel
  python = extract_lib.extract_python()
  groups = streams([c for c in clips if os.path.exists(os.path.join(videos_dir, f"{c[0]}.mp4"))], k, 1)[:streams_n]
  os.makedirs(out_dir, exist_ok=True)
  rows = []
  for step in frame_steps:
    tot = {"edits": 0, "ref": 0, "hits": 0, "pred": 0, "true": 0, "wall": 0.0, "video_s": 0.0, "latency": []}
    for gi, g in enumerate(groups):
      path = os.path.join(out_dir, f"stream{gi}.mp4")
      counts = subprocess.run([python, "-c", _CONCAT, path, "320", "240", "25", *[os.path.join(videos_dir,
                               f"{c[0]}.mp4") for c in g]], capture_output=True, text=True, check=True).stdout.split()
      truth, at = [], 0
      for c, n in zip(g, map(int, counts)):
        a, b = scoring.clip_hand_span(c[2])
        truth.append((at + a, at + b))
        at += n
      t0 = time.perf_counter()
      res = subprocess.run([sys.executable, os.path.join(os.path.dirname(HERE), "scripts", "live.py"),
                            f"--video={path}", f"--frame_step={step}"] + ([f"--workdir={workdir}"] if workdir else []),
                           capture_output=True, text=True, check=True)
      tot["wall"] += time.perf_counter() - t0
      signs = [json.loads(line) for line in res.stdout.splitlines()]
      tot["edits"] += scoring.edit_distance([s["top_k"][0]["gloss"] for s in signs], [c[3] for c in g])
      tot["ref"] += len(g)
      tot["hits"] += scoring.segment_f1([(s["start_frame"], s["end_frame"]) for s in signs], truth)["hits"]
      tot["pred"] += len(signs)
      tot["true"] += len(truth)
      tot["video_s"] += at / 25.0
      tot["latency"] += [s["latency_s"] for s in signs]
      tot.setdefault("summary", []).append(res.stderr.strip().splitlines()[-1])
    p, r = tot["hits"] / max(tot["pred"], 1), tot["hits"] / max(tot["true"], 1)
    lat = sorted(tot["latency"])
    rows.append({"frame_step": step, "streams": len(groups), "clips": tot["ref"], "ger": tot["edits"] / tot["ref"],
                 "f1": 2 * p * r / max(p + r, 1e-9), "detected": tot["pred"], "true": tot["true"],
                 "video_s": tot["video_s"], "wall_s": tot["wall"], "rtf_with_startup": tot["video_s"] / tot["wall"],
                 "latency_mean_s": statistics.mean(lat) if lat else None,
                 "latency_max_s": lat[-1] if lat else None, "live_summaries": tot["summary"]})
    print(json.dumps(rows[-1]))
  return rows


def report(results_dir: str, readme: str) -> str:
  """The docs/live.md table from continuous_{test,val}[_nocuts].json and continuous_video_test.json."""
  def load(name):
    path = os.path.join(results_dir, name)
    return json.load(open(path, encoding="utf-8")) if os.path.exists(path) else None
  rows = ["| split, segmenter | variant | gloss error rate | 1 - isolated top-1 | excess (target) | segment F1@0.5 "
          "(target) | signs found / true | latency, s | real time |", "|---|---|---|---|---|---|---|---|---|"]
  targets = {"natural": (0.05, 0.95), "rest2": (0.07, 0.92), "norest": (0.20, 0.75)}
  for name, what in (("continuous_test.json", "test"), ("continuous_val.json", "val"),
                     ("continuous_test_nocuts.json", "test, cuts off"), ("continuous_val_nocuts.json", "val, cuts off")):
    r = load(name)
    if r is None:
      continue
    err = 1 - r["isolated_top1"]
    model = f"{r['model']} model, {r['measured']}" if "measured" in r else "an earlier shipped model"
    for v, m in r["runs"][0]["variants"].items():
      ex, f1 = targets[v]
      rows.append(f"| {what} ({model}) | {v} | {m['ger']['mean']:.3f} ± {m['ger']['sd']:.3f} | {err:.3f} | "
                  f"{m['ger']['mean'] - err:+.3f} (<= {ex:+.2f}) | {m['f1']['mean']:.3f} ± {m['f1']['sd']:.3f} "
                  f"(>= {f1}) | {m['detected']['mean']:.1f} / {m['true']['mean']:.0f} | "
                  f"{m['latency_mean_s']['mean']:.2f} | {m['rtf']['mean']:.0f}x |")
  video = load("continuous_video_test.json")
  if video:
    when = f"the {video['model']} model, {video['measured']}" if "measured" in video else "an earlier shipped model"
    rows += ["", f"| from video (test clips concatenated, 320x240, 25 fps; `scripts/live.py --video`, extraction "
             f"included; {when}) | clips | gloss error rate | segment F1@0.5 | signs found / true | real time, steady "
             "(with start-up) | latency mean / max, s |", "|---|---|---|---|---|---|---|"]
    for v in video["video"]:
      steady = [float(x.rsplit("(", 1)[1].split("x")[0]) for x in v["live_summaries"]]
      rows.append(f"| --frame_step={v['frame_step']} | {v['clips']} | {v['ger']:.3f} | {v['f1']:.3f} | "
                  f"{v['detected']} / {v['true']} | {min(steady):.1f}-{max(steady):.1f}x ({v['rtf_with_startup']:.2f}x) "
                  f"| {v['latency_mean_s']:.2f} / {v['latency_max_s']:.2f} |")
  table = "\n".join(rows)
  text = open(readme, encoding="utf-8").read()
  start, end = "<!-- CONTINUOUS:START -->\n", "<!-- CONTINUOUS:END -->"
  a, b = text.index(start) + len(start), text.index(end)
  with open(readme, "w", encoding="utf-8") as f:
    f.write(text[:a] + table + "\n" + text[b:])
  return table


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
  ap.add_argument("--video", action="store_true", help="from video: the real clips concatenated, through "
                  "scripts/live.py --video with extraction")
  ap.add_argument("--videos_dir", default=os.path.join(SHARED, "wlasl_videos", "videos"))
  ap.add_argument("--video_streams", type=int, default=2)
  ap.add_argument("--frame_steps", default="1,2")
  ap.add_argument("--video_out", default="/tmp/asl_jax_continuous_video")
  ap.add_argument("--report", action="store_true", help="rewrite docs/live.md's table from benchmarks/results")
  args = ap.parse_args(argv)
  if args.report:
    print(report(os.path.join(HERE, "results"), os.path.join(os.path.dirname(HERE), "docs", "live.md")))
    return
  clips = load_clips(args.data_dir, args.subset, args.landmarks_dir or os.path.join(args.data_dir, "landmarks"),
                     args.split)
  seeds = [int(s) for s in args.seeds.split(",")]
  stamp = {"model": args.workdir or "shipped", "measured": datetime.date.today().isoformat()}  # for `report`
  if args.video:
    rows = video_benchmark(clips, args.videos_dir, args.video_streams, args.k,
                           [int(x) for x in args.frame_steps.split(",")], args.workdir, args.video_out)
    if args.out:
      with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"split": args.split, "video": rows, **stamp}, f, indent=1)
    return
  base = seg_lib.SegmenterConfig(**{kv.split("=")[0]: float(kv.split("=")[1]) for kv in args.set})
  configs = [base]
  if args.grid:
    grid = GRIDS[args.grid - 1]
    configs = [dataclasses.replace(base, **dict(zip(grid, vals))) for vals in itertools.product(*grid.values())]
  run_model, predictors = (None, None) if args.segment_only else model_runner(args.workdir, args.fps)
  results = {"split": args.split, "clips": len(clips), "k": args.k, "seeds": seeds, "runs": [], **stamp}
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
    entry["single_clips"] = single_clips(clips, cfg, args.fps)
    print(json.dumps(entry["config"]))
    print("  each clip alone: " + ", ".join(f"{k} {v:.3f}" for k, v in entry["single_clips"].items()))
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
