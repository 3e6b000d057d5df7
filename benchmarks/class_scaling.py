"""Does training on more signs make signs never seen easier to enrol? Enrolment against what the base trains on.

The open-vocabulary protocol (benchmarks/open_vocabulary.py) trains its base on the 80 classes a draw does not
hold out, and every variant of the recipe has left new signs near 0.48 top-1. Here the draws, held-out classes
and enrolment examples stay the protocol's, and only what the base trains on changes: each draw's 80 base classes
are put in a seeded order, and bases of the recipe are trained on the first N of them (`--sizes`; 80 is
open_vocabulary.py's own base, reused from its cache), or on the first N with only as many train clips as the
first M have (`N@M`: more signs against more clips a sign, for one budget of clips). Each base enrols the 20
held-out classes from 3 train clips each through asl-enroll, and everything is scored among a fixed set of
classes every base has, the first `--common` base classes and the 20 held out (the other columns left out):
- `new_top1` / `old_top1`: top-1 of the held-out / common classes' val clips under the enrolled run;
- `ncm_new` / `ncm_old`: the nearest class mean of the unit embeddings (common classes' means from their train
  clips, held-out ones' from the 3 examples), what the embedding alone separates;
- `new_top1_more` / `ncm_new_more`: the same new-sign figures with the held-out classes' train clips that are not
  examples scored besides their val clips (1-2 a class, about as many again: no base trains on them either);
- `auroc`: the base's unknown score (its calibrated top-1 probability over all its classes), the common classes'
  val clips against the held-out classes'.
The summary pairs each base with the smallest one of the same draw and seed.

  python benchmarks/class_scaling.py --scaling_seeds=1,2,3 [--sizes=40,60,80] [--common=40] [--name=class_scaling]
  python benchmarks/class_scaling.py --scaling_seeds=1,2,3 --sizes=20,40,60,80 --common=20 --name=class_scaling_common20
  python benchmarks/class_scaling.py --scaling_seeds=1,2,3 --sizes=60,80@60,80 --name=class_scaling_budget

A base of 20 classes trains in about 50 s on 2 cores, one of 40 in 80 s, one of 60 in 100 s. Run it alone: it
shares open_vocabulary.py's draw folders. The test clips are never read. Results: benchmarks/results/NAME.json;
docs/open_vocabulary_experiments.md, "More signs in training".
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import open_vocabulary as ov  # noqa: E402  (its flags too: --draws, --epochs, --config, --override, --tag)

flags.DEFINE_string("sizes", "40,60,80", "the bases: N (its first N classes; 80: open_vocabulary.py's bases) or N@M "
                    "(its first N classes with as many train clips as the first M have)")
flags.DEFINE_integer("common", 40, "base classes every base trains on and the scores are taken over")
flags.DEFINE_string("scaling_seeds", "1", "training seeds of the bases; each seed is scored on its own")
FLAGS = flags.FLAGS


def class_order(d: dict) -> list[int]:
  """The draw's 80 base classes in a seeded order: the first FLAGS.common are in every base."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  rest = sorted({v["action"][0] for v in d["split"].values()} - set(d["held_out"]))
  return [int(c) for c in np.random.default_rng(2000 + d["draw"]).permutation(rest)]


def train_clips(split: dict) -> int:
  return sum(v["subset"] == "train" for v in split.values())


def sized(d: dict, size: str, seed: int) -> dict:
  """The draw's facts for a base of its first N classes (`size` "N"), or of its first N classes with only as many
  train clips as the first M classes have ("N@M": clips dropped at random, never below 3 a class): its folder
  (the split of those classes' train and val clips) and the run of `seed`. "80" is open_vocabulary.py's folder
  and runs."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  workdir = lambda folder: os.path.join(folder, "base" if seed == 1 else f"base_s{seed}")  # noqa: E731
  n, _, budget_of = size.partition("@")
  order = class_order(d)
  if int(n) == len(order) and not budget_of:
    return dict(d, workdir=workdir(d["folder"]))
  of_classes = lambda m: {k: v for k, v in d["split"].items()  # noqa: E731
                          if v["action"][0] in set(order[:m]) and v["subset"] != "test"}
  base = of_classes(int(n))
  if budget_of:
    budget, count = train_clips(of_classes(int(budget_of))), collections.Counter(
        v["action"][0] for v in base.values() if v["subset"] == "train")
    for k in np.random.default_rng(3000 + d["draw"]).permutation(sorted(base)):
      if train_clips(base) <= budget:
        break
      c = base[k]["action"][0]
      if base[k]["subset"] == "train" and count[c] > 3:
        del base[k]
        count[c] -= 1
  folder = f"{d['folder']}_n{n}" + (f"_clips{budget_of}" if budget_of else "")
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, "split.json"), "w", encoding="utf-8") as f:
    json.dump(base, f)
  shutil.copy(os.path.join(d["folder"], "wlasl_class_list.txt"), folder)
  return dict(d, folder=folder, workdir=workdir(folder), train_clips=train_clips(base))


def unused_train_clips(d: dict, used: list[str]) -> list[str]:
  """The held-out classes' train clips that are not enrolment examples: more clips of signs the base never saw
  (no base trains on them), to halve the noise of the new-sign figures."""
  return sorted(k for k, v in d["split"].items()
                if v["subset"] == "train" and v["action"][0] in d["held_out"] and k not in used)


def score(dn: dict, common: list[int]) -> dict:
  """One base (`dn`, from `sized`): its unknown AUROC, then asl-enroll of the held-out classes from 3 examples and
  the new / old top-1 of the enrolled run among the common and held-out classes, with the nearest class mean
  (new top-1 on val, and on val with the unused train clips besides)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from asl_jax.evaluation import calibration  # pylint: disable=import-outside-toplevel
  from asl_jax.serving import predict  # pylint: disable=import-outside-toplevel
  ov.calibrate_base(dn["workdir"])
  base = predict.Predictor(dn["workdir"])
  names = ov.class_names(dn)
  keep_glosses = {names[str(c)] for c in common} | {names[str(c)] for c in dn["held_out"]}
  probs, truth, new, _, _ = ov.val_predictions(base, dn)
  rows = np.isin(truth, list(keep_glosses))
  s = calibration.unknown_scores(probs)[rows]
  row = {"auroc": ov.auroc(s[~new[rows]], s[new[rows]])}
  out, seconds = ov.enrol(dn, 3, dn["workdir"])
  probs, truth, new, glosses, _ = ov.val_predictions(out, dn)
  cols = [i for i, g in enumerate(glosses) if g in keep_glosses]
  rows = np.isin(truth, list(keep_glosses))
  pred = np.array(glosses)[cols][probs[rows][:, cols].argmax(-1)]
  right, new = pred == truth[rows], new[rows]
  row.update(new_top1=float(right[new].mean()), old_top1=float(right[~new].mean()), val_new=int(new.sum()),
             val_old=int((~new).sum()), seconds=seconds)
  used = ov.example_clips(dn, 3)
  extra = unused_train_clips(dn, used)
  enrolled = predict.Predictor(out)
  probs = enrolled.predict_clips([enrolled.load_clip(ov.landmarks(k)) for k in extra])
  extra_right = np.array(glosses)[cols][probs[:, cols].argmax(-1)] == np.array(
      [names[str(dn["split"][k]["action"][0])] for k in extra])
  row["new_top1_more"] = float(np.concatenate([right[new], extra_right]).mean())
  row["more_new"] = len(extra)
  right, new = ov.nearest_class_mean(base, dn, used, common, extra)
  on_val = np.arange(len(right)) < len(right) - len(extra)
  row.update(ncm_new=float(right[new & on_val].mean()), ncm_old=float(right[~new].mean()),
             ncm_new_more=float(right[new].mean()))
  return row


def summarize(rows: list[dict], sizes: list[str]) -> dict:
  """Per base size, the mean and sd over draws and seeds; and each larger base's difference from the smallest,
  paired by draw and seed (which cancels the draws' and seeds' own spread), with how many pairs gained."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  keys = ("new_top1", "new_top1_more", "ncm_new", "ncm_new_more", "old_top1", "ncm_old", "auroc")
  stat = lambda v: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0}  # noqa: E731
  of = lambda n: [r for r in rows if str(r["classes"]) == str(n)]  # noqa: E731
  summary = {str(n): {k: stat([r[k] for r in of(n)]) for k in keys} for n in sizes}
  first = {(r["draw"], r["seed"]): r for r in of(sizes[0])}
  for n in sizes[1:]:
    for k in keys:
      v = [r[k] - first[r["draw"], r["seed"]][k] for r in of(n)]
      summary[str(n)].setdefault(f"minus_{sizes[0]}", {})[k] = {**stat(v), "gained": int(np.sum(np.array(v) > 0)),
                                                                 "lost": int(np.sum(np.array(v) < 0))}
  return summary


def main(argv):
  del argv
  import common as bench  # pylint: disable=import-outside-toplevel
  sizes = FLAGS.sizes.split(",")
  seeds = [int(x) for x in FLAGS.scaling_seeds.split(",")]
  draws = [ov.prepare_draw(int(x)) for x in FLAGS.draws.split(",")]
  for d in draws:  # train first, so that a long run can be left to itself
    for seed in seeds:
      for n in sizes:
        ov.train_base(sized(d, n, seed), seed)
  rows = []
  for d in draws:
    common = class_order(d)[:FLAGS.common]
    for seed in seeds:
      for n in sizes:
        dn = sized(d, n, seed)
        row = {"draw": d["draw"], "seed": seed, "classes": n, "train_clips": dn.get("train_clips"), **score(dn, common)}
        print(json.dumps(row), flush=True)
        rows.append(row)
  summary = summarize(rows, sizes)
  for n in sizes:
    print(n, " ".join(f"{k} {v['mean']:.3f} ± {v['sd']:.3f}" for k, v in summary[str(n)].items() if "mean" in v))
  payload = {"machine": bench.machine(), "config": FLAGS.config, "seeds": seeds, "epochs": FLAGS.epochs,
             "common": FLAGS.common, "sizes": sizes, "rows": rows, "summary": summary}
  print("wrote", bench.save(FLAGS.name, payload))


if __name__ == "__main__":
  flags.FLAGS.set_default("name", "class_scaling")
  app.run(main)
