"""Open vocabulary on real data: enrolment of signs the base model never saw, and the unknown-sign decision.

The protocol (issue "Your own signs, and I don't know this sign"), on wlasl_real (the official nslt_100 split of
the real WLASL100 clips):
1. a draw holds out 20 classes of the **train** split (drawn among the classes with >= 3 train clips and a val
   clip), and a base model of the recipe (configs/nslt_100.py) is trained on the other 80 through
   scripts/train.py;
2. the 20 are enrolled from 3 (and 1) of their train clips each, with `asl_jax.serving.enroll`;
3. everything is scored on the **val** clips of all 100 classes: top-1 of the new signs among all 100, top-1
   of the old signs against the base model's, and for the base model alone the AUROC of its unknown score
   (the 80 classes' val clips against the 20 held-out classes' val clips) and the share of unknown signs it
   rejects at the run's stored threshold.
The test clips are never read. Each method here is compared with the naive baseline of the issue (nearest
class mean of the normalised embeddings, the flip averaged; the top-1 probability as the unknown score).

  python benchmarks/open_vocabulary.py [--draws 0,1,2] [--epochs 150]   # trains 3 bases (~3 min each), scores
  python benchmarks/open_vocabulary.py --seeds=1,2,3 --name=open_vocabulary_ensemble3   # a 3-seed ensemble a draw
  python benchmarks/open_vocabulary.py --retrain --name=open_vocabulary_retrain   # the ceiling: retrained on the shots

`--retrain` asks how far enrolment is from training the whole model on the same examples: for 3 (and 1)
shots, the recipe is trained from scratch on the base classes' clips plus the held-out classes' enrolment
clips (the same files asl-enroll reads), and scored like enrolment. Its val clips include the held-out
classes', so no epoch is chosen on them: it is scored at its last epoch, beside the base at its last epoch.
With `--finetune_epochs=30`, each run starts from the draw's base instead (a new last layer, 30 epochs).

Base runs are kept under $ASL_JAX_CACHE/open_vocabulary (or ~/.cache/asl_jax/open_vocabulary) and reused by
folder name alone (draw<N><tag>/): after the recipe changes, clear that folder or give a new --tag.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import time

from absl import app, flags

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

DATA = os.path.join(ROOT, "..", "shared", "data")
flags.DEFINE_string("draws", "0,1,2", "which draws of held-out classes (each its own base model)")
flags.DEFINE_integer("held_out", 20, "classes held out of training per draw")
flags.DEFINE_integer("epochs", 150, "the base models' epochs (the recipe's 150)")
flags.DEFINE_string("config", "configs/nslt_100.py", "the base models' config")
flags.DEFINE_string("name", "open_vocabulary", "results file benchmarks/results/NAME.json")
flags.DEFINE_bool("train_only", False, "train the base runs and stop")
flags.DEFINE_multi_string("override", [], "FIELD=VALUE config overrides of the base runs (a variant of the recipe)")
flags.DEFINE_string("tag", "", "a name for the variant: its base runs live in draw<N><tag>/")
flags.DEFINE_bool("outside_classes", False, "train the bases with wlasl_real's 46 train clips outside WLASL100 as "
                  "classes of their own (one clip each; never a held-out class), scored without their columns: "
                  "do more classes in training make a better embedding for signs never seen?")
flags.DEFINE_bool("other_class", False, "train the bases with one more class, OTHER: wlasl_real's train clips "
                  "outside WLASL100 (other glosses); scored without it (its probability is unknown mass)")
flags.DEFINE_string("seeds", "1", "the base's training seeds: several make an ensemble per draw (each member "
                    "enrolled alike, probabilities averaged, the unknown threshold fitted on the average)")
flags.DEFINE_bool("retrain", False, "instead of enrolling, train the recipe from scratch on the base clips and "
                  "the enrolment clips (the ceiling of enrolment without retraining); see the module doc")
flags.DEFINE_integer("finetune_epochs", 0, "with --retrain: instead of from scratch, fine-tune the base "
                     "(init_from; a new last layer) for this many epochs, 2 of them warm-up")
FLAGS = flags.FLAGS


def cache_root() -> str:
  base = os.environ.get("ASL_JAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "asl_jax")
  return os.path.join(base, "open_vocabulary")


def real_clips() -> tuple[dict, set]:
  split = json.load(open(os.path.join(DATA, "wlasl", "nslt_100.json"), encoding="utf-8"))
  have = {f[:-len("_landmarks.npy")] for f in os.listdir(os.path.join(DATA, "wlasl_real", "landmarks"))
          if f.endswith("_landmarks.npy")}
  return {k: v for k, v in split.items() if k in have}, have


def landmarks(k: str) -> str:
  """The landmark file of wlasl_real's clip `k`."""
  return os.path.join(DATA, "wlasl_real", "landmarks", f"{k}_landmarks.npy")


def draw_classes(split: dict, draw: int, n: int) -> list[int]:
  """The held-out classes of draw `draw`: n of those with >= 3 train clips and >= 1 val clip, seeded."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  counts = collections.defaultdict(collections.Counter)
  for v in split.values():
    counts[v["action"][0]][v["subset"]] += 1
  eligible = sorted(c for c, k in counts.items() if k["train"] >= 3 and k["val"] >= 1)
  rng = np.random.default_rng(1000 + draw)
  return sorted(int(c) for c in rng.choice(eligible, n, replace=False))


OTHER_ID, OTHER = 2000, "(other sign)"
OPERATING_POINTS = (0.95, 0.9, 0.8, 0.7)  # shares of known val clips accepted: the stored threshold's, and stricter


def prepare_draw(draw: int) -> dict:
  """The draw's folder: split.json with the base classes' clips only, the class list; returns its facts."""
  split, _ = real_clips()
  held = draw_classes(split, draw, FLAGS.held_out)
  folder = os.path.join(cache_root(), f"draw{draw}{FLAGS.tag}")
  os.makedirs(folder, exist_ok=True)
  base = {k: v for k, v in split.items() if v["action"][0] not in held and v["subset"] != "test"}
  if FLAGS.other_class or FLAGS.outside_classes:  # never a held-out class: these glosses are outside WLASL100
    real = json.load(open(os.path.join(DATA, "wlasl_real", "nslt_real.json"), encoding="utf-8"))
    base.update({k: {"subset": "train", "action": [OTHER_ID] + v["action"][1:] if FLAGS.other_class else v["action"]}
                 for k, v in real.items() if k not in split and v["subset"] == "train"})
  with open(os.path.join(folder, "split.json"), "w", encoding="utf-8") as f:
    json.dump(base, f)
  shutil.copy(os.path.join(DATA, "wlasl", "wlasl_class_list.txt"), folder)
  if FLAGS.other_class:
    with open(os.path.join(folder, "wlasl_class_list.txt"), "a", encoding="utf-8") as f:
      f.write(f"{OTHER_ID}\t{OTHER}\n")
  seeds = [int(x) for x in FLAGS.seeds.split(",")]
  members = [os.path.join(folder, "base" if s == 1 else f"base_s{s}") for s in seeds]
  return {"draw": draw, "held_out": held, "folder": folder, "workdir": members[0], "members": members,
          "seeds": seeds, "split": split}


def train_base(d: dict, seed: int = 1, workdir: str | None = None, data_dir: str | None = None,
               extra: tuple[str, ...] = ()) -> None:
  d = dict(d, workdir=workdir or d["workdir"], folder=data_dir or d["folder"])
  done = d["workdir"] + ".done"
  if os.path.isfile(done):
    return
  t0 = time.time()
  cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"), f"--config={FLAGS.config}",
         f"--workdir={d['workdir']}", f"--config.data_dir={d['folder']}", "--config.subset=split.json",
         f"--config.landmarks_dir={os.path.join(DATA, 'wlasl_real', 'landmarks')}", "--config.gemma_features_dir=",
         f"--config.seed={seed}", f"--config.epochs={FLAGS.epochs}", "--config.progress_bar=False",
         "--config.evaluate_test=False"] + [f"--config.{o}" for o in [*FLAGS.override, *extra]]
  with open(d["workdir"] + ".log", "a", encoding="utf-8") as log:
    subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
  with open(done, "w", encoding="utf-8") as f:
    f.write(f"{time.time() - t0:.0f}\n")
  print(f"draw {d['draw']}: base trained in {time.time() - t0:.0f} s", flush=True)


def calibrate_base(workdir: str) -> None:
  """Bases trained before training calibrated itself get calibration.json the same way (on val)."""
  if not os.path.isfile(os.path.join(workdir, "calibration.json")):
    from asl_jax.serving import evaluate  # pylint: disable=import-outside-toplevel
    evaluate.calibrate_workdir(workdir)


def auroc(known, unknown) -> float:
  """P(a known clip scores above an unknown one), ties counting half (calibration.auroc)."""
  from asl_jax.evaluation import calibration  # pylint: disable=import-outside-toplevel
  return calibration.auroc(known, unknown)


def class_names(d: dict) -> dict[str, str]:
  """{class id: gloss} of the class list beside the draw's split."""
  with open(os.path.join(d["folder"], "wlasl_class_list.txt"), encoding="utf-8") as f:
    return dict(line.rstrip("\n").split("\t") for line in f if "\t" in line)


def example_clips(d: dict, shots: int) -> list[str]:
  """The enrolment examples: the video ids of `shots` train clips of each held-out class, seeded by the draw."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(d["draw"])
  used = []
  for c in d["held_out"]:
    ids = sorted(k for k, v in d["split"].items() if v["subset"] == "train" and v["action"][0] == c)
    used += sorted(rng.choice(ids, min(shots, len(ids)), replace=False))
  return used


def link_signs(d: dict, folder: str, clips: list[str]) -> str:
  """`folder` made anew as SIGNS/<gloss>/ holding (as links) the landmark files of `clips`."""
  names = class_names(d)
  shutil.rmtree(folder, ignore_errors=True)
  for vid in clips:
    sign = os.path.join(folder, names[str(d["split"][vid]["action"][0])])
    os.makedirs(sign, exist_ok=True)
    os.symlink(landmarks(vid), os.path.join(sign, f"{vid}_landmarks.npy"))
  return folder


def signs_folder(d: dict, shots: int) -> tuple[str, list[str]]:
  """SIGNS/<gloss>/ holding (as links) the enrolment examples of `shots` clips a held-out class; and their ids."""
  used = example_clips(d, shots)
  return link_signs(d, os.path.join(d["folder"], f"signs_{shots}"), used), used


def run_enroll(base: str, signs: str, out: str) -> float:
  """asl-enroll (a process, start-up included) of `signs` into `base`, written to `out` (made anew); seconds."""
  shutil.rmtree(out, ignore_errors=True)
  t0 = time.time()
  subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "enroll.py"), f"--from={base}",
                  f"--signs={signs}", f"--workdir={out}"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
  return time.time() - t0


def enrol(d: dict, shots: int, base: str | None = None) -> tuple[str, float]:
  """asl-enroll of the held-out classes from `shots` clips each."""
  base = base or d["workdir"]
  folder, _ = signs_folder(d, shots)
  out = os.path.join(d["folder"], f"enrolled_{shots}" + ("" if base == d["workdir"] else "_" + os.path.basename(base)))
  return out, run_enroll(base, folder, out)


def val_predictions(workdirs, d: dict, checkpoint: str = "best"):
  """(probs (N, C), true glosses, is-new, the run's glosses, its stored unknown threshold) of every val clip of
  all 100 classes under a run (a directory, or a Predictor already restored). Several runs: their averaged
  probabilities, and no stored threshold (None: it is fitted on the average), as for a run with the OTHER class,
  whose column is left out."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from asl_jax.serving import predict  # pylint: disable=import-outside-toplevel
  names = class_names(d)
  val = val_clips(d)
  workdirs = list(workdirs) if isinstance(workdirs, (list, tuple)) else [workdirs]
  probs, glosses = 0, None
  for workdir in workdirs:
    p = workdir if isinstance(workdir, predict.Predictor) else predict.Predictor(workdir, checkpoint)
    assert glosses is None or p.glosses == glosses, workdir  # the members' classes in one order
    glosses = p.glosses
    clips = [p.load_clip(landmarks(k)) for k in val]
    probs = probs + p.predict_clips(clips) / len(workdirs)
  threshold = p.unknown_threshold if len(workdirs) == 1 else None
  wlasl100 = {names[str(v["action"][0])] for v in d["split"].values()}
  if not set(glosses) <= wlasl100:  # OTHER, or classes outside WLASL100: their columns are left out, their
    # probability is mass no WLASL100 sign gets (the unknown score falls with it), and the threshold refitted
    keep = [i for i, g in enumerate(glosses) if g in wlasl100]
    probs, glosses, threshold = probs[:, keep], tuple(glosses[i] for i in keep), None
  truth = np.array([names[str(d["split"][k]["action"][0])] for k in val])
  new = np.array([d["split"][k]["action"][0] in d["held_out"] for k in val])
  return probs, truth, new, glosses, threshold


def val_clips(d: dict) -> list[str]:
  """The video ids of the draw's val clips, of all 100 classes: what every method is scored on."""
  return sorted(k for k, v in d["split"].items() if v["subset"] == "val")


def base_train_clips(d: dict) -> list[str]:
  """The video ids of the draw's base classes' train clips (what its base trained on, of WLASL100)."""
  return [k for k, v in d["split"].items() if v["subset"] == "train" and v["action"][0] not in d["held_out"]]


def nearest_class_mean(p, d: dict, used: list[str], known=None, extra=()):
  """The issue's naive baseline under the base's Predictor `p`: the nearest class mean of the unit embeddings
  (the flip averaged), the known classes' means (default: every base class) from their train clips, the held-out
  ones' from the enrolment clips `used`. Scored on the val clips of those classes, then on the `extra` clips:
  (right, new), a bool per scored clip."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from asl_jax.evaluation import class_vectors  # pylint: disable=import-outside-toplevel
  label = lambda k: d["split"][k]["action"][0]  # noqa: E731
  train = base_train_clips(d)
  known = sorted({label(k) for k in train}) if known is None else list(known)
  train = [k for k in train if label(k) in known]
  scored = [k for k in val_clips(d) if label(k) in known or label(k) in d["held_out"]] + list(extra)
  emb = lambda ks: class_vectors.unit(p.embed_clips([p.load_clip(landmarks(k)) for k in ks]).mean(0))  # noqa: E731
  tr, ex, sc = emb(train), emb(used), emb(scored)
  lt, le = np.array([label(k) for k in train]), np.array([label(k) for k in used])
  classes = known + list(d["held_out"])
  protos = class_vectors.unit(np.stack([tr[lt == c].mean(0) if c in known else ex[le == c].mean(0)
                                         for c in classes]))
  truth = np.array([label(k) for k in scored])
  return np.array(classes)[(sc @ protos.T).argmax(-1)] == truth, np.isin(truth, d["held_out"])


def naive(p, d: dict, shots: int) -> dict:
  """The naive baseline's new and old top-1 on the val clips of all 100 classes (`nearest_class_mean`)."""
  right, new = nearest_class_mean(p, d, example_clips(d, shots))
  return {"new_top1": float(right[new].mean()), "old_top1": float(right[~new].mean())}


def score_draw(d: dict) -> dict:
  import numpy as np  # pylint: disable=import-outside-toplevel
  from asl_jax.evaluation import calibration, metrics  # pylint: disable=import-outside-toplevel
  from asl_jax.serving import predict  # pylint: disable=import-outside-toplevel
  for w in d["members"]:
    calibrate_base(w)
  bases = [predict.Predictor(w) for w in d["members"]]
  probs, truth, new, glosses, threshold = val_predictions(bases, d)
  glosses = np.array(glosses)
  base_correct = glosses[probs.argmax(-1)] == truth
  score = calibration.unknown_scores(probs)
  # One run: its stored threshold. An ensemble: fitted the same way (95 % of known val clips) on its average.
  threshold = calibration.fit_threshold(score[~new]) if threshold is None else threshold
  row = {"draw": d["draw"], "held_out": d["held_out"], "val_known": int((~new).sum()), "val_new": int(new.sum()),
         "base_old_top1": float(base_correct[~new].mean()), "unknown_auroc": auroc(score[~new], score[new]),
         "unknown_threshold": threshold, "known_accepted": float((score[~new] >= threshold).mean()),
         "unknown_rejected": float((score[new] < threshold).mean()),
         "base_val_ece": calibration.expected_calibration_error(
             probs[~new], np.array([list(glosses).index(t) for t in truth[~new]]))}
  # Stricter thresholds, fitted on the base's known val clips like the stored one: what each trades.
  points = {a: calibration.fit_threshold(score[~new], a) for a in OPERATING_POINTS}
  row["operating_points"] = {str(a): {"threshold": t, "known_accepted": float((score[~new] >= t).mean()),
                                      "unknown_rejected": float((score[new] < t).mean())} for a, t in points.items()}
  for shots in (3, 1):
    outs, seconds = zip(*[enrol(d, shots, w) for w in d["members"]])
    seconds = sum(seconds)
    probs, truth, new, glosses, stored = val_predictions(list(outs), d)
    correct = np.array(glosses)[probs.argmax(-1)] == truth
    index = np.array([list(glosses).index(t) for t in truth])
    ranked = metrics.retrieval(probs[new], index[new])  # the new signs as dictionary retrieval (ASL Citizen's)
    # What a signer sees with the enrolled run: its gloss, another gloss, or "?" (the run's stored threshold; an
    # ensemble's is the one fitted on its bases' average above).
    enrolled_score = calibration.unknown_scores(probs)
    answered = enrolled_score >= (threshold if stored is None else stored)
    row[f"enrol{shots}"] = {"new_top1": float(correct[new].mean()), "old_top1": float(correct[~new].mean()),
                            "new_top10": ranked["top10"], "new_mrr": ranked["mrr"], "new_dcg": ranked["dcg"],
                            "new_right": float((answered & correct)[new].mean()),
                            "new_wrong": float((answered & ~correct)[new].mean()),
                            "old_right": float((answered & correct)[~new].mean()),
                            "old_wrong": float((answered & ~correct)[~new].mean()),
                            "seconds": seconds, "naive": naive(bases[0], d, shots)}
    for a, t in points.items():
      ok = enrolled_score >= t
      row["operating_points"][str(a)][f"enrol{shots}"] = {
          "new_right": float((ok & correct)[new].mean()), "new_wrong": float((ok & ~correct)[new].mean()),
          "old_right": float((ok & correct)[~new].mean()), "old_wrong": float((ok & ~correct)[~new].mean())}
    if len(outs) == 1:
      row[f"enrol{shots}"]["check"] = check_against_val(outs[0], truth, correct)
  print(json.dumps(row), flush=True)
  return row


def check_against_val(enrolled: str, truth, correct) -> dict:
  """Does asl-enroll's check of a sign's examples (asl_jax.serving.enroll: each example tried with the sign
  built from the others; the sign the run would take them for without it) foretell how its val clips fare?
  Per enrolled sign: the check, its val clips and how many are recognised (benchmarks/enrolment_check.py
  tabulates them)."""
  from asl_jax.runs.run_dir import RunDir  # pylint: disable=import-outside-toplevel
  check = RunDir(enrolled).enrolled()["check"]
  return {"signs": {g: {**r, "val_clips": int((truth == g).sum()), "val_correct": int(correct[truth == g].sum())}
                    for g, r in check.items()}}


def retrain_draw(d: dict) -> dict:
  """The ceiling (--retrain): for 3 and 1 shots, the recipe trained from scratch with the enrolment clips among
  its train clips, scored at its last epoch on the val clips of all 100 classes; the base at its last epoch."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  row = {"draw": d["draw"], "held_out": d["held_out"]}
  probs, truth, new, glosses, _ = val_predictions(d["workdir"], d, "latest")
  row["base_old_top1_last"] = float((np.array(glosses)[probs.argmax(-1)] == truth)[~new].mean())
  for shots in (3, 1):
    tag = f"_ft{FLAGS.finetune_epochs}" if FLAGS.finetune_epochs else ""
    folder = os.path.join(d["folder"], f"retrain_{shots}{tag}")
    os.makedirs(folder, exist_ok=True)
    used = example_clips(d, shots)
    with open(os.path.join(d["folder"], "split.json"), encoding="utf-8") as f:
      split = json.load(f)  # the base's clips (prepare_draw), and the enrolment clips besides
    split.update({k: d["split"][k] for k in used})
    with open(os.path.join(folder, "split.json"), "w", encoding="utf-8") as f:
      json.dump(split, f)
    shutil.copy(os.path.join(d["folder"], "wlasl_class_list.txt"), folder)
    workdir = os.path.join(folder, "run")
    extra = (f"init_from={d['workdir']}", f"epochs={FLAGS.finetune_epochs}", "warmup_epochs=2") if (
        FLAGS.finetune_epochs) else ()
    train_base(d, d["seeds"][0], workdir, folder, extra)
    probs, truth, new, glosses, _ = val_predictions(workdir, d, "latest")
    correct = np.array(glosses)[probs.argmax(-1)] == truth
    with open(workdir + ".done", encoding="utf-8") as f:
      seconds = float(f.read())
    row[f"retrain{shots}"] = {"new_top1": float(correct[new].mean()), "old_top1": float(correct[~new].mean()),
                              "seconds": seconds}
  print(json.dumps(row), flush=True)
  return row


def summarize(rows: list[dict]) -> dict:
  import numpy as np  # pylint: disable=import-outside-toplevel
  def stat(values):
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max())}
  if "retrain3" in rows[0]:
    return {"base_old_top1_last": stat([r["base_old_top1_last"] for r in rows]),
            **{f"retrain{n}_{k}": stat([r[f"retrain{n}"][k] for r in rows])
               for n in (3, 1) for k in ("new_top1", "old_top1", "seconds")}}
  out = {k: stat([r[k] for r in rows]) for k in ("base_old_top1", "unknown_auroc", "unknown_rejected",
                                                  "known_accepted", "base_val_ece")}
  for shots in (3, 1):
    for k in ("new_top1", "old_top1", "new_top10", "new_mrr", "new_dcg", "new_right", "new_wrong", "old_right",
              "old_wrong", "seconds"):
      out[f"enrol{shots}_{k}"] = stat([r[f"enrol{shots}"][k] for r in rows])
    for k in ("new_top1", "old_top1"):
      out[f"naive{shots}_{k}"] = stat([r[f"enrol{shots}"]["naive"][k] for r in rows])
  if "operating_points" in rows[0]:
    for a in rows[0]["operating_points"]:
      at = [r["operating_points"][a] for r in rows]
      for k in ("known_accepted", "unknown_rejected"):
        out[f"at{a}_{k}"] = stat([x[k] for x in at])
      for shots in (3, 1):
        for k in ("new_right", "new_wrong", "old_right", "old_wrong"):
          out[f"at{a}_enrol{shots}_{k}"] = stat([x[f"enrol{shots}"][k] for x in at])
  return out


def main(argv):
  del argv
  if FLAGS.other_class and FLAGS.outside_classes:
    raise app.UsageError("--other_class and --outside_classes use the same clips: choose one")
  draws = [prepare_draw(int(x)) for x in FLAGS.draws.split(",")]
  for d in draws:
    print(f"draw {d['draw']}: held out {d['held_out']}", flush=True)
    for seed, workdir in zip(d["seeds"], d["members"]):
      train_base(d, seed, workdir)
  if FLAGS.train_only:
    return
  import common  # pylint: disable=import-outside-toplevel
  rows = [(retrain_draw if FLAGS.retrain else score_draw)(d) for d in draws]
  payload = {"machine": common.machine(), "config": FLAGS.config, "seeds": FLAGS.seeds, "overrides": FLAGS.override,
             "epochs": FLAGS.epochs, "held_out": FLAGS.held_out, "other_class": FLAGS.other_class,
             "outside_classes": FLAGS.outside_classes,
             "retrain": FLAGS.retrain, "finetune_epochs": FLAGS.finetune_epochs, "draws": rows,
             "summary": summarize(rows)}
  for k, v in payload["summary"].items():
    print(f"{k:28s} {v['mean']:.3f} (sd {v['sd']:.3f}, {v['min']:.3f}-{v['max']:.3f})")
  print("wrote", common.save(FLAGS.name, payload))


if __name__ == "__main__":
  app.run(main)
