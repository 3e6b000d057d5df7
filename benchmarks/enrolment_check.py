"""Does asl-enroll's check foretell which enrolled signs will be recognised?

asl-enroll tries each sign's examples on the new run (asl_jax.serving.enroll, `check`): with k >= 2 examples,
each one against the sign built from the other k - 1; with any k, the sign the run takes them for without
it ("closest") and its probability. This pools `benchmarks/open_vocabulary.py`'s per-sign records (the
"check" of each draw's enrolment; one base a draw) over draws and seeds, and tabulates the val top-1 of the
signs' val clips by what the check said:
- 3 examples: by how many were recognised when left out (0 or 1 of 3 is a `warning:` line: enroll.unsure);
- 1 example: by the closest other sign's probability.

  python benchmarks/open_vocabulary.py && python benchmarks/open_vocabulary.py --seeds=2 --name=open_vocabulary_seed2 ...
  python benchmarks/enrolment_check.py   # reads open_vocabulary{,_seed2,_seed3}.json, writes enrolment_check.json
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

flags.DEFINE_list("results", ["open_vocabulary", "open_vocabulary_seed2", "open_vocabulary_seed3"],
                  "benchmarks/results/NAME.json files of open_vocabulary.py to pool")
flags.DEFINE_string("name", "enrolment_check", "results file benchmarks/results/NAME.json")
FLAGS = flags.FLAGS

PROB_BINS = (0.0, 0.3, 0.6, 1.01)  # 1 example: the closest other sign's probability


def pooled(files: list[str], shots: int) -> list[dict]:
  """Every enrolled sign's record, with the results file and draw (a base) it comes from."""
  out = []
  for name in files:
    with open(os.path.join(HERE, "results", f"{name}.json"), encoding="utf-8") as f:
      for row in json.load(f)["draws"]:
        out += [{"results": name, "draw": row["draw"], "gloss": g, **r}
                for g, r in row[f"enrol{shots}"]["check"]["signs"].items()]
  return out


def per_base(signs: list[dict], unsure) -> list[dict]:
  """Each base's (a draw of a seed's) count of warned signs and val top-1 of their clips and of the others'."""
  bases = {}
  for s in signs:
    bases.setdefault((s["results"], s["draw"]), []).append(s)
  out = []
  for (name, draw), group in bases.items():
    top1 = {r["group"]: r["val_top1"] for r in table(group, lambda s: "warned" if unsure(s) else "clear")}
    out.append({"results": name, "draw": draw, "warned_signs": sum(unsure(s) for s in group),
                "warned_val_top1": top1.get("warned"), "clear_val_top1": top1.get("clear")})
  return out


def table(signs: list[dict], key) -> list[dict]:
  groups = {}
  for s in signs:
    groups.setdefault(key(s), []).append(s)
  rows = []
  for k in sorted(groups):
    g = groups[k]
    clips, right = sum(s["val_clips"] for s in g), sum(s["val_correct"] for s in g)
    rows.append({"group": k, "signs": len(g), "val_clips": clips, "val_top1": right / clips if clips else None})
  return rows


def prob_bin(p: float) -> str:
  i = max(j for j, b in enumerate(PROB_BINS) if p >= b)
  return f"{PROB_BINS[i]:.1f}-{min(PROB_BINS[i + 1], 1.0):.1f}"


def main(argv):
  del argv
  import common  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from asl_jax.serving import enroll  # pylint: disable=import-outside-toplevel
  three = pooled(FLAGS.results, 3)
  one = pooled(FLAGS.results, 1)
  payload = {
      "results": FLAGS.results,
      "three_examples_by_recognised_left_out": table(three, lambda s: f"{s['recognised_left_out']} of {s['examples']}"),
      "three_examples_warned_or_not": table(three, lambda s: "warning" if enroll.unsure(s) else "check"),
      "one_example_by_closest_prob": table(one, lambda s: prob_bin(s["closest_prob"])),
      "three_examples_by_closest_prob": table(three, lambda s: prob_bin(s["closest_prob"])),
  }
  bases = per_base(three, enroll.unsure)
  gaps = [b["clear_val_top1"] - b["warned_val_top1"] for b in bases
          if b["clear_val_top1"] is not None and b["warned_val_top1"] is not None]
  payload["three_examples_per_base"] = bases
  payload["three_examples_gap"] = {"bases": len(gaps), "mean": float(np.mean(gaps)), "sd": float(np.std(gaps, ddof=1)),
                                   "min": float(np.min(gaps)), "max": float(np.max(gaps)),
                                   "warned_signs_mean": float(np.mean([b["warned_signs"] for b in bases]))}
  print("three_examples_gap (val top-1 of the clear signs' clips less the warned ones', per base):",
        json.dumps(payload["three_examples_gap"]))
  for k, rows in payload.items():
    if k in ("results", "three_examples_per_base", "three_examples_gap"):
      continue
    print(k)
    for r in rows:
      top1 = "-" if r["val_top1"] is None else f"{r['val_top1']:.3f}"
      print(f"  {r['group']:10s} signs {r['signs']:3d}  val clips {r['val_clips']:3d}  val top-1 {top1}")
  print("wrote", common.save(FLAGS.name, payload))


if __name__ == "__main__":
  app.run(main)
