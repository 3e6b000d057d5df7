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
5. matching in time instead of pooling every frame, at the first convolution, the first Transformer block and
   the final frames: the nearest class mean of S segment means (S = 1-4), and the nearest class or clip by
   dynamic time warping of the frames, beside the nearest clip by the pooled cosine;
6. built vectors (3 examples) over the embedding extended by the first convolution's 3 segment means (weights
   0, 0.5, 1 of the embedding's norm), their scale and bias refitted on the base classes as calibration does.

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
  from asl_jax.evaluation import class_vectors  # pylint: disable=import-outside-toplevel
  from asl_jax.serving import predict  # pylint: disable=import-outside-toplevel
  p = predict.Predictor(d["workdir"])
  names, split = ov.class_names(d), d["split"]
  emb = lambda ks: p.embed_clips([p.load_clip(ov.landmarks(k)) for k in ks]).astype(np.float64)  # noqa: E731
  train = ov.base_train_clips(d)
  val = ov.val_clips(d)
  used = ov.example_clips(d, SHOTS)
  glosses = list(p.glosses)
  column = lambda ks: np.array([glosses.index(names[str(split[k]["action"][0])]) if names[str(split[k]["action"][0])]  # noqa: E731
                                in glosses else -1 for k in ks])
  head = p.run.params["head"]["logits"]
  kernel = np.asarray(head["kernel"], np.float64)
  if "log_scale" in head:  # a cosine layer (its embeddings are unit vectors): the Dense layer it equals
    kernel = np.exp(float(head["log_scale"])) * class_vectors.unit(kernel.T).T
  return {"train": emb(train), "train_col": column(train), "val": emb(val),
          "val_class": np.array([split[k]["action"][0] for k in val]), "val_col": column(val),
          "examples": {c: emb([k for k in used if split[k]["action"][0] == c]) for c in d["held_out"]},
          "kernel": kernel, "bias": np.asarray(head["bias"], np.float64),
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


def block_outputs(d: dict, reduce) -> dict:
  """The draw's reduce(blocks, mask) for the base train clips, the val clips and the examples (V, N, ...), with
  their classes: `blocks` are the landmark encoder's sub-modules' outputs (B, T, H) in call order (those whose
  output is frame tokens, dropout left out: the identity here), `mask` the clips' valid frames (B, T)."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from asl_jax.data import landmark_features  # pylint: disable=import-outside-toplevel
  from asl_jax.evaluation import inference  # pylint: disable=import-outside-toplevel
  from asl_jax.serving import predict  # pylint: disable=import-outside-toplevel
  p = predict.Predictor(d["workdir"])
  model, config = p.run.model, p.run.config
  names = []

  def apply(params, batch):
    _, state = model.apply({"params": params}, batch, method=model.embed, capture_intermediates=True)
    blocks = [(k, v["__call__"][0]) for k, v in state["intermediates"]["landmark_encoder"].items()
              if "__call__" in v and v["__call__"][0].ndim == 3 and not k.startswith("Dropout")]
    names[:] = [k for k, _ in blocks]
    return reduce([t for _, t in blocks], batch["mask"].astype(jnp.float32))

  features = landmark_features.FeatureConfig.from_config(config)
  p._embed = jax.jit(lambda params, data, idx: inference._apply_views(  # pylint: disable=protected-access
      model, params, data, idx, config.num_frames, features, bool(config.tta_flip), p.run.visual_norm, apply))
  split = d["split"]
  used = ov.example_clips(d, SHOTS)
  keys = {"train": ov.base_train_clips(d), "val": ov.val_clips(d), "examples": sorted(used)}
  out = {name: p.embed_clips([p.load_clip(ov.landmarks(k)) for k in ks]).astype(np.float64)
         for name, ks in keys.items()}
  out.update({f"{name}_class": np.array([split[k]["action"][0] for k in ks]) for name, ks in keys.items()})
  return {**out, "blocks": list(names), "held": list(d["held_out"])}


def depth_embeddings(d: dict) -> dict:
  """(V, N, L, H): the masked mean of each of the encoder's L blocks' frame tokens."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  def pooled(blocks, mask):
    m = mask[..., None]
    return jnp.stack([(t * m).sum(1) / jnp.maximum(m.sum(1), 1.0) for t in blocks], 1)
  return block_outputs(d, pooled)


def class_sources(e: dict) -> dict:
  """{class: where its clips are}, in class order: a held-out class's in "examples", a base class's in "train"."""
  return {c: ("examples" if c in e["held"] else "train") for c in sorted(set(e["train_class"]) | set(e["examples_class"]))}


def depth_ncm(e: dict) -> dict:
  """{block: (new top-1, old top-1)} of the nearest class mean on each block's pooled output."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from asl_jax.evaluation import class_vectors  # pylint: disable=import-outside-toplevel
  out = {}
  refs = class_sources(e)
  classes = np.array(list(refs))
  for j, block in enumerate(e["blocks"]):
    means = [class_vectors.prototype(e[src][:, e[f"{src}_class"] == c, j]) for c, src in refs.items()]
    sims = (class_vectors.unit(e["val"][:, :, j]) @ np.stack(means).T).mean(0)
    correct = classes[sims.argmax(-1)] == e["val_class"]
    new = np.isin(e["val_class"], e["held"])
    out[block] = (float(correct[new].mean()), float(correct[~new].mean()))
  return out


TEMPORAL_BLOCKS = (2, 3, -1)  # the first convolution's, the first Transformer block's and the final frame tokens
EXTENDED_WEIGHTS = (0.5, 1.0)  # the weight of the first convolution's 3 segments in the extended embedding


def temporal_embeddings(d: dict, blocks=TEMPORAL_BLOCKS) -> list[dict]:
  """For each of `blocks` (indices; -1: the final frames, which the embedding pools), the draw's frame tokens
  with the mask last, (V, N, T, H + 1), from one pass over the clips."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  out = block_outputs(d, lambda tokens, mask: jnp.stack([jnp.concatenate([tokens[b], mask[..., None]], -1)
                                                         for b in blocks], 1))
  return [{**out, **{k: out[k][:, :, i] for k in ("train", "val", "examples")}, "block": out["blocks"][b]}
          for i, b in enumerate(blocks)]


def segment_means(frames: np.ndarray, segments: int) -> np.ndarray:
  """(..., T, H + 1) frames with their mask last -> (..., S, H): the unit means of S equal parts of each clip's
  valid frames, in order."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from asl_jax.evaluation import class_vectors  # pylint: disable=import-outside-toplevel
  x, m = frames[..., :-1], frames[..., -1]
  rank = np.cumsum(m, -1) - 1
  part = np.floor(rank / np.maximum(m.sum(-1, keepdims=True), 1) * segments).clip(0, segments - 1)
  out = [class_vectors.unit((((part == s) * m)[..., None] * x).sum(-2)) for s in range(segments)]
  return np.stack(out, -2)


def dtw_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """(N, T, H + 1), (M, T, H + 1) frames with their masks -> (N, M): the dynamic-time-warping cost of the cosine
  distances of unit frames, steps (1, 0), (0, 1), (1, 1), over the valid frames, divided by n + m."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from asl_jax.evaluation import class_vectors  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  ua, ub = class_vectors.unit(a[..., :-1]), class_vectors.unit(b[..., :-1])
  na, nb = a[..., -1].sum(-1).astype(int), b[..., -1].sum(-1).astype(int)

  @jax.jit
  def run(ua, ub, na, nb):
    cost = 1.0 - jnp.einsum("nth,msh->nmts", ua, ub)  # (N, M, T, T)
    t = cost.shape[-1]

    def row(prev, c):  # prev: (N, M, T) the accumulated costs of row i - 1
      def cell(left, j):
        up, diag = prev[..., j], jnp.where(j > 0, prev[..., jnp.maximum(j - 1, 0)], jnp.inf)
        v = c[..., j] + jnp.minimum(jnp.minimum(up, diag), left)
        return v, v
      _, cur = jax.lax.scan(cell, jnp.full(c.shape[:-1], jnp.inf), jnp.arange(t))
      return jnp.moveaxis(cur, 0, -1), jnp.moveaxis(cur, 0, -1)

    first = jnp.cumsum(cost[:, :, 0], -1)
    _, rows = jax.lax.scan(row, first, jnp.moveaxis(cost[:, :, 1:], 2, 0))
    acc = jnp.concatenate([first[None], rows], 0)  # (T, N, M, T)
    end = acc[na[:, None] - 1, jnp.arange(na.shape[0])[:, None], jnp.arange(nb.shape[0])[None], nb[None] - 1]
    return end / (na[:, None] + nb[None])
  return np.asarray(run(jnp.asarray(ua, jnp.float32), jnp.asarray(ub, jnp.float32), jnp.asarray(na), jnp.asarray(nb)))


def temporal_ncm(e: dict) -> dict:
  """New / old top-1 of matching a block's frames in time instead of pooling them all: the nearest class
  mean of S-part segment means (S = 1 is the block's pooling), and the nearest class by dynamic time warping
  of the frames (the mean and the least distance to a class's clips) beside the nearest clip by the pooled
  cosine. Old classes from their train clips, new ones from the examples; views averaged."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from asl_jax.evaluation import class_vectors  # pylint: disable=import-outside-toplevel
  refs = class_sources(e)
  classes = np.array(list(refs))
  new = np.isin(e["val_class"], e["held"])
  top1 = lambda score: (lambda ok: (float(ok[new].mean()), float(ok[~new].mean())))(  # noqa: E731
      classes[score.argmax(-1)] == e["val_class"])
  out = {}
  for segments in (1, 2, 3, 4):
    seg = {k: segment_means(e[k], segments) for k in ("train", "examples", "val")}
    protos = np.stack([class_vectors.unit(class_vectors.unit(
        seg[src][:, e[f"{src}_class"] == c].reshape(-1, segments, seg[src].shape[-1])).mean(0)) for c, src in refs.items()])
    out[f"segments_{segments}"] = top1(np.einsum("vnsh,csh->nc", seg["val"], protos) / (seg["val"].shape[0] * segments))
  pooled = {k: segment_means(e[k], 1)[..., 0, :] for k in ("train", "examples", "val")}
  dist, cos = {}, {}
  for src in ("train", "examples"):
    dist[src] = np.mean([dtw_distances(e["val"][v], e[src][v]) for v in range(e["val"].shape[0])], 0)
    cos[src] = np.einsum("vnh,vmh->nm", pooled["val"], pooled[src]) / pooled["val"].shape[0]
  per_class = lambda m, f: np.stack([f(m[refs[c]][:, e[f"{refs[c]}_class"] == c]) for c in classes], -1)  # noqa: E731
  m = {"dtw": {s: -dist[s] for s in dist}, "cos": cos}
  out["dtw_class_mean"] = top1(per_class(m["dtw"], lambda x: x.mean(-1)))
  out["dtw_nearest_clip"] = top1(per_class(m["dtw"], lambda x: x.max(-1)))
  out["pooled_nearest_clip"] = top1(per_class(m["cos"], lambda x: x.max(-1)))
  out["pooled_class_mean_cos"] = top1(per_class(m["cos"], lambda x: x.mean(-1)))
  return out


def extended_built(e: dict, frames: dict, weight: float, segments: int = 3) -> tuple[float, float]:
  """(new, old) top-1 of built vectors (3 examples) over the embedding extended by `weight` times its typical norm
  times the unit concatenation of a block's `segments` segment means (`frames`: temporal_embeddings of the same
  draw); the trained classes' vectors get zeros there, and the scale and bias are refitted on the base classes'
  val clips (class_vectors.fit_scales, as calibration does)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from asl_jax.evaluation import class_vectors  # pylint: disable=import-outside-toplevel
  seg = {k: class_vectors.unit(segment_means(frames[k], segments).reshape(*frames[k].shape[:2], -1))
         for k in ("train", "val", "examples")}
  r = float(np.linalg.norm(e["val"], axis=-1).mean())
  ext = {k: np.concatenate([e[k], weight * r * seg[k]], -1) for k in ("train", "val")}
  examples = {c: np.concatenate([e["examples"][c], weight * r * seg["examples"][:, frames["examples_class"] == c]], -1)
              for c in e["held"]}
  kernel = np.concatenate([e["kernel"], np.zeros((seg["val"].shape[-1], e["kernel"].shape[1]))], 0)
  known = e["val_col"] >= 0
  scales = class_vectors.fit_scales(ext["train"], e["train_col"], ext["val"][:, known], e["val_col"][known],
                                    {"kernel": kernel, "bias": e["bias"]})
  grown = dict(e, val=ext["val"], kernel=kernel, examples=examples, scales=scales)
  correct, new, *_ = scored(grown, built(grown))
  return float(correct[new].mean()), float(correct[~new].mean())


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
  frames = [temporal_embeddings(d) for d in prepared]  # per draw, one entry per block of TEMPORAL_BLOCKS
  payload["temporal_ncm"] = {}
  for per_block in zip(*frames):
    temporal = [temporal_ncm(f) for f in per_block]
    payload["temporal_ncm"][per_block[0]["block"]] = {
        k: [float(v) for v in np.mean([r[k] for r in temporal], 0)] for k in temporal[0]}
  payload["extended_built"] = {  # over the first convolution's segments (TEMPORAL_BLOCKS[0])
      str(w): [float(v) for v in np.mean([extended_built(e, f[0], w) for e, f in zip(draws, frames)], 0)]
      for w in (0.0, *EXTENDED_WEIGHTS)}
  for k in ("frontier_built", "frontier_common_norm", "ridge", "depth_ncm", "temporal_ncm", "extended_built"):
    print(k, json.dumps(payload[k]))
  print("wrote", common.save("enrolment_probe", payload))


if __name__ == "__main__":
  app.run(main)
