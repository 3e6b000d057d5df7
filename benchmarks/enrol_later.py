"""Examples given later: a sign enrolled from some of its examples, then given the rest by a further asl-enroll.

A signer enrols a sign, finds it unreliable, and adds examples; asl-enroll on top of the enrolled run is how.
On the open-vocabulary protocol (benchmarks/open_vocabulary.py: its draws, seed-1 bases and 3 enrolment
examples a held-out class), each held-out sign is enrolled
- from its 3 examples at once;
- from the first 2, then the third on top ("2 then 1");
- from the first 1, then the other 2 on top ("1 then 2");
and the runs of 2 and 1 examples are scored too. Top-1 of the new (held-out) and old classes' val clips among
all 100 classes. Since runs keep each enrolled sign's examples (class_vectors "earlier"), "2 then 1" and "1 then
2" are the run of the 3 at once; before, the second enrolment mixed the sign's vector with one built from its new
examples, and the figures were lower than those of the first enrolment alone.

  python benchmarks/enrol_later.py [--draws=0,1,2] [--name=enrol_later]

About 75 s on 2 cores with the bases cached (open_vocabulary.py trains them otherwise). Run it alone: it shares
open_vocabulary.py's draw folders. The test clips are never read. Results: benchmarks/results/NAME.json;
docs/open_vocabulary_experiments.md, "Examples given later".
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import open_vocabulary as ov  # noqa: E402  (its flags too: --draws, --config, --tag)

FLAGS = flags.FLAGS
WAYS = ("3 at once", "2", "2 then 1", "1", "1 then 2")


def folder(d: dict, name: str, clips: list[str]) -> str:
  return ov.link_signs(d, os.path.join(d["folder"], f"later_{name}"), clips)


def enrol(base: str, signs: str, out: str) -> str:
  ov.run_enroll(base, signs, out)
  return out


def score(run: str, d: dict) -> dict:
  import numpy as np  # pylint: disable=import-outside-toplevel
  probs, truth, new, glosses, _ = ov.val_predictions(run, d)
  right = np.array(glosses)[probs.argmax(-1)] == truth
  return {"new_top1": float(right[new].mean()), "old_top1": float(right[~new].mean())}


def draw_row(d: dict) -> dict:
  by_class: dict[int, list[str]] = {}
  for vid in ov.example_clips(d, 3):
    by_class.setdefault(d["split"][vid]["action"][0], []).append(vid)
  pick = lambda a, b: [v for vs in by_class.values() for v in vs[a:b]]  # noqa: E731
  run = lambda name: os.path.join(d["folder"], f"later_{name}_run")  # noqa: E731
  runs = {"3 at once": enrol(d["workdir"], folder(d, "all", pick(0, 3)), run("all")),
          "2": enrol(d["workdir"], folder(d, "first2", pick(0, 2)), run("first2")),
          "1": enrol(d["workdir"], folder(d, "first1", pick(0, 1)), run("first1"))}
  runs["2 then 1"] = enrol(runs["2"], folder(d, "third", pick(2, 3)), run("2then1"))
  runs["1 then 2"] = enrol(runs["1"], folder(d, "rest2", pick(1, 3)), run("1then2"))
  row = {"draw": d["draw"], **{way: score(runs[way], d) for way in WAYS}}
  print(json.dumps(row), flush=True)
  return row


def main(argv):
  del argv
  import numpy as np  # pylint: disable=import-outside-toplevel
  import common  # pylint: disable=import-outside-toplevel
  draws = [ov.prepare_draw(int(x)) for x in FLAGS.draws.split(",")]
  for d in draws:
    ov.train_base(d, 1, d["workdir"])
  rows = [draw_row(d) for d in draws]
  summary = {way: {k: {"mean": float(np.mean([r[way][k] for r in rows])), "sd": float(np.std([r[way][k] for r in rows],
                                                                                              ddof=1))}
                   for k in ("new_top1", "old_top1")} for way in WAYS}
  for way, s in summary.items():
    print(f"{way:10s} new {s['new_top1']['mean']:.3f} ± {s['new_top1']['sd']:.3f}   old {s['old_top1']['mean']:.3f}")
  print("wrote", common.save(FLAGS.name, {"machine": common.machine(), "draws": rows, "summary": summary}))


if __name__ == "__main__":
  flags.FLAGS.set_default("name", "enrol_later")
  app.run(main)
