"""Which unknown score separates signs a model never saw: candidates on the open-vocabulary bases.

On each draw's base model of benchmarks/open_vocabulary.py (80 classes trained, 20 held out), every candidate
score is computed for the val clips of all 100 classes, and its AUROC (known val clips against the held-out
classes' val clips) is reported, with the share of held-out clips rejected where 95 % of known ones are
accepted. Besides, the same AUROC against **auxiliary outliers**: the WLASL clips of wlasl_real outside
WLASL100 (70 other glosses, their nslt_2000 test clips left out). They are signs no base ever trained on and
disjoint from every held-out class, so a score can be chosen on them without the held-out classes.
Candidates (all from the calibrated probabilities or the last layer's input):
  max_prob   the top-1 probability (what the runs store today)
  margin     top-1 minus top-2 probability
  neg_entropy  minus the entropy of the probabilities
  cos_mean   the largest cosine of the clip's unit embedding to the base classes' train-clip means
  maha       minus the smallest squared Mahalanobis distance of the embedding (the views' mean) to a base
             class's train-clip mean, under the classes' shared covariance (shrunk 10 % towards its mean variance)
  rel_maha   the same less the distance to the train clips' overall mean under their own covariance
             (relative Mahalanobis: calibration.rel_mahalanobis; both from calibration.mahalanobis_distances)
  knn        the cosine of the clip's unit embedding to the nearest base train clip's (Sun et al. 2022, k = 1)
  prob+rel_maha  the sum of max_prob and rel_maha, each standardised by its mean and sd over the known val
             clips (the clips the threshold is fitted on)

  python benchmarks/open_vocabulary.py --train_only     # the bases, if not cached
  python benchmarks/unknown_scores.py                   # benchmarks/results/unknown_scores.json
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import open_vocabulary as ov  # noqa: E402  pylint: disable=wrong-import-position

FLAGS = flags.FLAGS
SCORES = ("max_prob", "margin", "neg_entropy", "cos_mean", "maha", "rel_maha", "knn", "prob+rel_maha")


def outlier_clips() -> list[str]:
  """wlasl_real's clips outside WLASL100, without nslt_2000's test clips."""
  real = json.load(open(os.path.join(ov.DATA, "wlasl_real", "nslt_real.json"), encoding="utf-8"))
  split, _ = ov.real_clips()
  return sorted(k for k, v in real.items() if k not in split and v["subset"] != "test")


def scores(p, keys: list[str], class_means, g, train_emb):
  """{score name: (N,)} for the clips `keys` under predictor `p`."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from asl_jax.evaluation import calibration, class_vectors  # pylint: disable=import-outside-toplevel
  clips = [p.load_clip(ov.landmarks(k)) for k in keys]
  probs = p.predict_clips(clips)
  top = np.sort(probs, -1)
  raw = p.embed_clips(clips).mean(0).astype(np.float64)
  emb = class_vectors.unit(raw)
  nearest, overall = calibration.mahalanobis_distances(raw, g)
  return {"max_prob": top[:, -1], "margin": top[:, -1] - top[:, -2],
          "neg_entropy": (probs * np.log(np.maximum(probs, 1e-12))).sum(-1),
          "cos_mean": (emb @ class_means.T).max(-1), "maha": -nearest,
          "rel_maha": overall - nearest, "knn": (emb @ train_emb.T).max(-1)}


def score_draw(d: dict, outliers: list[str]) -> dict:
  import numpy as np  # pylint: disable=import-outside-toplevel
  from asl_jax.evaluation import calibration, class_vectors  # pylint: disable=import-outside-toplevel
  from asl_jax.serving import predict  # pylint: disable=import-outside-toplevel
  ov.calibrate_base(d["workdir"])
  p = predict.Predictor(d["workdir"])
  split = d["split"]
  train = ov.base_train_clips(d)
  val = ov.val_clips(d)
  new = np.array([split[k]["action"][0] in d["held_out"] for k in val])
  raw = p.embed_clips([p.load_clip(ov.landmarks(k)) for k in train]).mean(0).astype(np.float64)
  emb = class_vectors.unit(raw)
  labels = np.array([split[k]["action"][0] for k in train])
  means = class_vectors.unit(np.stack([emb[labels == c].mean(0) for c in sorted(set(labels))]))
  g = calibration.fit_gaussians(raw, labels)
  sv, so = scores(p, val, means, g, emb), scores(p, outliers, means, g, emb)
  z = {s: (np.mean(sv[s][~new]), np.std(sv[s][~new])) for s in ("max_prob", "rel_maha")}
  for out in (sv, so):
    out["prob+rel_maha"] = sum((out[s] - m) / sd for s, (m, sd) in z.items())
  # At the operating point: the threshold accepting 95 % of the known val clips, the share of unknowns below it.
  cut = {s: calibration.fit_threshold(sv[s][~new]) for s in SCORES}
  return {"draw": d["draw"], "outliers": len(outliers),
          "held_out_auroc": {s: ov.auroc(sv[s][~new], sv[s][new]) for s in SCORES},
          "held_out_rejected": {s: float((sv[s][new] < cut[s]).mean()) for s in SCORES},
          "outlier_rejected": {s: float((so[s] < cut[s]).mean()) for s in SCORES},
          "outlier_auroc": {s: ov.auroc(sv[s][~new], so[s]) for s in SCORES}}


def main(argv):
  del argv
  import numpy as np  # pylint: disable=import-outside-toplevel
  import common  # pylint: disable=import-outside-toplevel
  outliers = outlier_clips()
  rows = []
  for x in FLAGS.draws.split(","):
    d = ov.prepare_draw(int(x))
    ov.train_base(d)
    rows.append(score_draw(d, outliers))
    print(json.dumps(rows[-1]), flush=True)
  summary = {kind: {s: {"mean": float(np.mean([r[kind][s] for r in rows])),
                        "sd": float(np.std([r[kind][s] for r in rows], ddof=1)) if len(rows) > 1 else 0.0}
                    for s in SCORES} for kind in ("held_out_auroc", "held_out_rejected", "outlier_auroc", "outlier_rejected")}
  for kind, v in summary.items():
    print(kind, " ".join(f"{s} {v[s]['mean']:.3f}±{v[s]['sd']:.3f}" for s in SCORES))
  name = "unknown_scores" if FLAGS.name == "open_vocabulary" else FLAGS.name
  print("wrote", common.save(name, {"tag": FLAGS.tag, "machine": common.machine(), "draws": rows, "summary": summary}))


if __name__ == "__main__":
  app.run(main)
