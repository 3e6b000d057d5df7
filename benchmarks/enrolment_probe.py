"""What limits enrolment on the open-vocabulary bases: the embedding, or the arithmetic that builds class vectors?

On each draw's base of benchmarks/open_vocabulary.py (80 classes trained, 20 held out, the same examples
asl-enroll reads), with the embeddings of the base's train clips, the val clips of all 100 classes and the
examples (the flip views, as inference):
1. where the new signs' errors go with the built vectors (`class_vectors.class_vector`, 3 examples): to an old
   class or to another new one, and the top-1 among the 20 new signs alone;
2. the trade-off the built vectors allow: over a grid of scale multipliers and bias offsets of every new
   vector, the most new-sign top-1 with the old signs at or above each floor. It is scored on the protocol's
   val clips, so it is an upper bound for that embedding, never a method;
3. two other ways to build vectors: the old classes' trained vectors given one common norm (the grid again),
   and a ridge regression from k-example prototypes to the trained vectors (fitted on the base classes' train
   clips, its output scaled as a built vector is);
4. the embedding at every depth of the encoder: the nearest class mean (the naive baseline: old classes' means
   from their train clips, new ones' from the examples) on each block's masked-mean-pooled frames, to see
   whether a shallower, less class-specific layer transfers better to signs never trained on.

  python benchmarks/open_vocabulary.py --train_only     # the bases, if not cached
  python benchmarks/enrolment_probe.py                  # benchmarks/results/enrolment_probe.json
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
SHOTS = 3
SCALES = (0.8, 1.0, 1.2, 1.5)
BIAS_OFFSETS = tuple(x / 2 for x in range(-6, 7))  # -3 to +3
OLD_FLOORS = (0.70, 0.72, 0.74, 0.76)
RIDGE = (1e-3, 1e-2, 1e-1)


def embeddings(d: dict) -> dict:
  """The draw's embeddings (V, N, E) and facts, under its seed-1 base."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from asl_jax.serving import predict  # pylint: disable=import-outside-toplevel
  p = predict.Predictor(d["workdir"])
  names, split = ov.class_names(d), d["split"]
  emb = lambda ks: p.embed_clips([p.load_clip(ov.landmarks(k)) for k in ks]).astype(np.float64)  # noqa: E731
  train = ov.base_train_clips(d)
  val = ov.val_clips(d)
  _, used = ov.signs_folder(d, SHOTS)
  glosses = list(p.glosses)
  column = lambda ks: np.array([glosses.index(names[str(split[k]["action"][0])]) if names[str(split[k]["action"][0])]  # noqa: E731
                                in glosses else -1 for k in ks])
  head = p.run.params["head"]["logits"]
  return {"train": emb(train), "train_col": column(train), "val": emb(val),
          "val_class": np.array([split[k]["action"][0] for k in val]), "val_col": column(val),
          "examples": {c: emb([k for k in used if split[k]["action"][0] == c]) for c in d["held_out"]},
          "kernel": np.asarray(head["kernel"], np.float64), "bias": np.asarray(head["bias"], np.float64),
          "scales": p.run.calibration["enrol"], "held": list(d["held_out"])}


def scored(e: dict, vectors: dict, kernel=None, bias=None):
  """(correct, new, predicted column, probabilities, true column) of the val clips (N,) (the probabilities
  (N, C + 20)), with the new classes' (w, b) appended to the last layer `kernel`, `bias` (default: the base's)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  kernel = e["kernel"] if kernel is None else kernel
  bias = e["bias"] if bias is None else bias
  held, c0 = e["held"], kernel.shape[1]
  w = np.concatenate([kernel, np.stack([vectors[c][0] for c in held], 1)], 1)
  b = np.concatenate([bias, [vectors[c][1] for c in held]])
  logits = e["val"] @ w + b
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs = (probs / probs.sum(-1, keepdims=True)).mean(0)
  new = np.isin(e["val_class"], held)
  truth = np.where(new, c0 + np.searchsorted(held, e["val_class"]), e["val_col"])
  pred = probs.argmax(-1)
  return pred == truth, new, pred, probs, truth


def built(e: dict, scale: float = 1.0, offset: float = 0.0) -> dict:
  from asl_jax.evaluation import class_vectors  # pylint: disable=import-outside-toplevel
  out = {}
  for c in e["held"]:
    w, b = class_vectors.class_vector(e["examples"][c], e["scales"])
    out[c] = (scale * w, b + offset)
  return out


def mean_top1(draws: list[dict], vectors_of, kernel_of=lambda e: None) -> tuple[float, float]:
  """(new top-1, old top-1), means over the draws, with the new vectors `vectors_of(e)` and the old ones
  `kernel_of(e)` (None: the trained ones)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  rows = []
  for e in draws:
    correct, new, *_ = scored(e, vectors_of(e), kernel_of(e))
    rows.append((correct[new].mean(), correct[~new].mean()))
  return tuple(float(x) for x in np.mean(rows, 0))


def grid(draws: list[dict], kernel_of=lambda e: None) -> list[tuple[float, float]]:
  """`mean_top1` of the built vectors for every scale multiplier and bias offset."""
  return [mean_top1(draws, lambda e, s=s, o=o: built(e, s, o), kernel_of) for s in SCALES for o in BIAS_OFFSETS]


def frontier(points) -> dict:
  return {f"{f:.2f}": max((n for n, o in points if o >= f), default=None) for f in OLD_FLOORS}


def common_norm(e: dict):
  import numpy as np  # pylint: disable=import-outside-toplevel
  n = np.linalg.norm(e["kernel"], axis=0)
  return e["kernel"] / n * n.mean()


def ridge_vectors(e: dict, lam: float, seed: int = 0) -> dict:
  """New vectors from a ridge map [prototype, 1] -> [trained vector, bias], fitted on 20 k-example prototypes of
  each base class; the output's direction, scaled as class_vectors.class_vector scales a prototype."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from asl_jax.evaluation import class_vectors  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(seed)
  x, y = [], []
  for c in range(e["kernel"].shape[1]):
    idx = np.flatnonzero(e["train_col"] == c)
    for _ in range(20):
      pick = rng.choice(idx, min(SHOTS, len(idx)), replace=False)
      x.append(np.r_[class_vectors.prototype(e["train"][:, pick]), 1.0])
      y.append(np.r_[e["kernel"][:, c], e["bias"][c]])
  x, y = np.array(x), np.array(y)
  m = np.linalg.solve(x.T @ x + lam * len(x) * np.eye(x.shape[1]), x.T @ y)
  out = {}
  for c in e["held"]:
    w, b = class_vectors.class_vector(e["examples"][c], e["scales"])
    t = np.r_[class_vectors.prototype(e["examples"][c]), 1.0] @ m
    out[c] = (np.linalg.norm(w) * class_vectors.unit(t[:-1]), b)
  return out


def depth_embeddings(d: dict) -> dict:
  """The draw's (V, N, L, H) pooled outputs of the landmark encoder's L sub-modules (in call order, those whose
  output is frame tokens, dropout left out: the identity here) for the base train clips, the val clips and the examples, with their classes."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from asl_jax.data import landmark_features  # pylint: disable=import-outside-toplevel
  from asl_jax.evaluation import inference  # pylint: disable=import-outside-toplevel
  from asl_jax.serving import predict  # pylint: disable=import-outside-toplevel
  p = predict.Predictor(d["workdir"])
  model, config = p.run.model, p.run.config
  names = []

  def pooled_blocks(params, batch):
    _, state = model.apply({"params": params}, batch, method=model.embed, capture_intermediates=True)
    m = batch["mask"][..., None].astype(jnp.float32)
    blocks = [(k, v["__call__"][0]) for k, v in state["intermediates"]["landmark_encoder"].items()
              if "__call__" in v and v["__call__"][0].ndim == 3 and not k.startswith("Dropout")]
    names[:] = [k for k, _ in blocks]
    return jnp.stack([(t * m).sum(1) / jnp.maximum(m.sum(1), 1.0) for _, t in blocks], 1)

  features = landmark_features.FeatureConfig.from_config(config)
  p._embed = jax.jit(lambda params, data, idx: inference._apply_views(  # pylint: disable=protected-access
      model, params, data, idx, config.num_frames, features, bool(config.tta_flip), p.run.visual_norm, pooled_blocks))
  split = d["split"]
  _, used = ov.signs_folder(d, SHOTS)
  keys = {"train": ov.base_train_clips(d), "val": ov.val_clips(d), "examples": sorted(used)}
  out = {name: p.embed_clips([p.load_clip(ov.landmarks(k)) for k in ks]).astype(np.float64)
         for name, ks in keys.items()}
  out.update({f"{name}_class": np.array([split[k]["action"][0] for k in ks]) for name, ks in keys.items()})
  return {**out, "blocks": list(names), "held": list(d["held_out"])}


def depth_ncm(e: dict) -> dict:
  """{block: (new top-1, old top-1)} of the nearest class mean on each block's pooled output."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from asl_jax.evaluation import class_vectors  # pylint: disable=import-outside-toplevel
  out = {}
  for j, block in enumerate(e["blocks"]):
    means, classes = [], []
    for c in sorted(set(e["train_class"]) | set(e["examples_class"])):
      src = "examples" if c in e["held"] else "train"
      means.append(class_vectors.prototype(e[src][:, e[f"{src}_class"] == c, j]))
      classes.append(c)
    sims = (class_vectors.unit(e["val"][:, :, j]) @ np.stack(means).T).mean(0)
    correct = np.array(classes)[sims.argmax(-1)] == e["val_class"]
    new = np.isin(e["val_class"], e["held"])
    out[block] = (float(correct[new].mean()), float(correct[~new].mean()))
  return out


def main(argv):
  del argv
  import numpy as np  # pylint: disable=import-outside-toplevel
  import common  # pylint: disable=import-outside-toplevel
  prepared = [ov.prepare_draw(int(x)) for x in FLAGS.draws.split(",")]
  for d in prepared:
    ov.train_base(d)
  draws = [embeddings(d) for d in prepared]
  rows = []
  for x, e in zip(FLAGS.draws.split(","), draws):
    correct, new, pred, probs, truth = scored(e, built(e))
    c0 = e["kernel"].shape[1]
    rows.append({"draw": int(x), "new_top1": float(correct[new].mean()), "old_top1": float(correct[~new].mean()),
                 "new_to_old": float((pred[new] < c0).mean()),
                 "new_to_other_new": float(((pred[new] >= c0) & ~correct[new]).mean()),
                 "new_among_new": float((probs[new][:, c0:].argmax(-1) + c0 == truth[new]).mean())})
    print(json.dumps(rows[-1]), flush=True)
  payload = {"machine": common.machine(), "shots": SHOTS, "draws": rows,
             "frontier_built": frontier(grid(draws)),
             "frontier_common_norm": frontier(grid(draws, common_norm)),
             "ridge": {str(lam): list(mean_top1(draws, lambda e, lam=lam: ridge_vectors(e, lam))) for lam in RIDGE}}
  depth = [depth_ncm(depth_embeddings(d)) for d in prepared]
  payload["depth_ncm"] = {block: [float(v) for v in np.mean([r[block] for r in depth], 0)] for block in depth[0]}
  for k in ("frontier_built", "frontier_common_norm", "ridge", "depth_ncm"):
    print(k, json.dumps(payload[k]))
  print("wrote", common.save("enrolment_probe", payload))


if __name__ == "__main__":
  app.run(main)
