"""Class vectors built from a few examples: the arithmetic of enrolment (asl_jax/serving/enroll.py has the command).

A run's last layer is one vector per class over the clip's embedding (models.HybridModel.embed, the input of
`head/logits`; the flip views as in inference). A class built from k examples gets

    w = (a_k / r) * p,   b = c_k

where p is the unit mean of its examples' unit embeddings (every view of every example), r the typical
embedding norm, and (a_k, c_k) a scale and bias for k examples fitted on the base run's **val** clips when the
run is calibrated (`fit_scales`): in several draws, a fifth of the base classes have their trained vector
replaced by one built from k of their train clips, and (a_k, c_k) minimise the val clips' NLL. So a built
vector competes with the trained ones on the scale the val clips show, neither swamping the old classes nor
drowned by them.

A sign given more examples later (a further enrolment on top) is rebuilt from all of them, as if they had been
given at once: p depends on the examples only through the sum of their unit embeddings (`example_sum`), which a
run keeps for each enrolled sign with the count k ("earlier" below). A sign the base trained keeps its trained
vector there too, so that its refinement is always the trained vector mixed with one built from every example.
"""

from __future__ import annotations

import numpy as np

from asl_jax.evaluation import calibration

SHOTS = (1, 2, 3, 5)  # example counts the scale and bias are fitted for (more examples use the largest)
_SCALE_GRID = np.exp(np.linspace(np.log(0.5), np.log(200.0), 36))
_BIAS_GRID = np.linspace(-15.0, 10.0, 51)
REFINE_WEIGHT = 0.5  # a refined sign's vector: this much of the built one, the rest of the trained one
_MAX_FIT_CLIPS = 512  # val clips the fit reads at most (a seeded subset of larger splits)


def unit(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


def prototype(emb: np.ndarray) -> np.ndarray:
  """(V, k, E) embeddings of a sign's k examples -> its unit prototype (E,)."""
  return unit(example_sum(emb))


def example_sum(emb: np.ndarray) -> np.ndarray:
  """(V, k, E) embeddings of k examples -> the sum (E,) of their unit embeddings (every view), whose direction
  is the prototype: the sums of two sets of examples add to that of both."""
  return unit(np.asarray(emb).reshape(-1, np.shape(emb)[-1])).sum(0)


def _views_lse(x: np.ndarray) -> np.ndarray:
  m = x.max(-1, keepdims=True)
  return (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))[..., 0]


def head_logits(emb: np.ndarray, head: dict) -> np.ndarray:
  """The last layer's logits (..., C) of embeddings (..., E): a Dense layer (kernel, bias), or a cosine one
  (models.heads.CosineDense: it also has log_scale, and its embeddings are unit vectors already)."""
  kernel, bias = np.asarray(head["kernel"], np.float64), np.asarray(head["bias"], np.float64)
  if "log_scale" in head:
    return np.exp(float(head["log_scale"])) * np.asarray(emb, np.float64) @ unit(kernel.T).T + bias
  return np.asarray(emb, np.float64) @ kernel + bias


def fit_scales(train_emb: np.ndarray, train_labels: np.ndarray, val_emb: np.ndarray, val_labels: np.ndarray,
               head: dict, shots=SHOTS, draws: int = 8, frac: float = 0.2, seed: int = 0) -> dict:
  """The scale and bias of a built class vector for each example count in `shots` (see the module doc).
  Embeddings are (V, N, E) (views, clips, E); `head` the trained last layer's parameters (a cosine layer's
  scale is its own: only the bias is fitted). Returns {"shots", "scale", "bias", "embedding_norm", "draws",
  "val_clips"} (JSON-ready)."""
  rng = np.random.default_rng(seed)
  train_labels, val_labels = np.asarray(train_labels), np.asarray(val_labels)
  if len(val_labels) > _MAX_FIT_CLIPS:
    keep = np.sort(rng.choice(len(val_labels), _MAX_FIT_CLIPS, replace=False))
    val_emb, val_labels = val_emb[:, keep], val_labels[keep]
  r = float(np.linalg.norm(np.asarray(val_emb, np.float64), axis=-1).mean())
  logits = head_logits(val_emb, head)  # (V, n, C)
  num_classes = logits.shape[-1]
  scale_grid = np.array([np.exp(float(head["log_scale"]))]) if "log_scale" in head else _SCALE_GRID
  n = len(val_labels)
  candidates = [c for c in range(num_classes) if (train_labels == c).any()]
  out = {"shots": [], "scale": [], "bias": []}
  for k in shots:
    total = np.zeros((len(scale_grid), len(_BIAS_GRID)))
    for _ in range(draws):
      pseudo = rng.choice(candidates, max(1, int(round(frac * len(candidates)))), replace=False)
      protos = []
      for c in pseudo:
        idx = np.flatnonzero(train_labels == c)
        idx = rng.choice(idx, min(k, len(idx)), replace=False)
        protos.append(prototype(train_emb[:, idx]))
      cos = np.einsum("vne,ce->vnc", val_emb / r, np.stack(protos))  # (V, n, P)
      rest = np.setdiff1d(np.arange(num_classes), pseudo)
      lse_rest = _views_lse(logits[..., rest])  # (V, n)
      pos = {c: i for i, c in enumerate(pseudo)}
      is_pseudo = np.array([y in pos for y in val_labels])
      true_base = logits[:, np.arange(n), val_labels]  # (V, n)
      true_cos = np.stack([cos[:, i, pos[y]] if y in pos else np.zeros(cos.shape[0])
                           for i, y in enumerate(val_labels)], 1)  # (V, n)
      for i, a in enumerate(scale_grid):
        lse_new = _views_lse(a * cos)[None] + _BIAS_GRID[:, None, None]  # (B, V, n)
        lse = np.logaddexp(lse_rest[None], lse_new)
        true = np.where(is_pseudo[None, None], a * true_cos[None] + _BIAS_GRID[:, None, None], true_base[None])
        p = np.exp(true - lse).mean(1)  # (B, n): the views' mean probability of the true class
        total[i] += -np.log(np.maximum(p, 1e-30)).mean(-1)
    i, j = np.unravel_index(int(np.argmin(total)), total.shape)
    out["shots"].append(int(k))
    out["scale"].append(float(scale_grid[i]))
    out["bias"].append(float(_BIAS_GRID[j]))
  return {**out, "embedding_norm": r, "draws": draws, "val_clips": int(n)}


def class_vector(emb: np.ndarray, scales: dict, earlier: dict | None = None) -> tuple[np.ndarray, float]:
  """A new class's (kernel column (E,), bias) from its examples' (V, k, E) embeddings, and from the sign's
  examples enrolled `earlier` ({"sum": `example_sum` of them, "examples": their count}) as if given with these."""
  k, total = int(np.shape(emb)[1]), example_sum(emb)
  if earlier:
    k, total = k + int(earlier["examples"]), total + np.asarray(earlier["sum"], np.float64)
  shots = list(scales["shots"])
  i = max((j for j, s in enumerate(shots) if s <= k), default=0)
  a, c = scales["scale"][i], scales["bias"][i]
  return (a / scales["embedding_norm"]) * unit(total), float(c)


def grow_head(params: dict, columns: dict[int, tuple[np.ndarray, float]], num_new: int,
              refine_weight: float = REFINE_WEIGHT, earlier: dict[int, dict] | None = None) -> dict:
  """The parameters with `head/logits` grown by `num_new` columns. `columns` maps a class index to its
  built (vector, bias): an index past the base's classes is a new class; an existing one is refined (mean
  of the trained and the built vector, and of the biases). `earlier[c]`, the record of an existing class c
  with enrolled examples (whose built vector already counts them): a sign enrolled before is replaced by its
  built vector; one the base trained is refined from the trained vector it keeps ("trained"), not from its
  present, already refined, column."""
  head = params["head"]["logits"]
  kernel, bias = np.array(head["kernel"], np.float32), np.array(head["bias"], np.float32)  # copies
  c0 = kernel.shape[1]
  earlier = earlier or {}
  for c, rec in earlier.items():
    if c in columns and "trained" in rec:
      kernel[:, c], bias[c] = rec["trained"]["kernel"], rec["trained"]["bias"]
  if "log_scale" in head:  # a cosine layer compares directions: refine the unit vectors, keep the norm
    kernel = kernel / np.maximum(np.linalg.norm(kernel, axis=0, keepdims=True), 1e-9)
  kernel = np.concatenate([kernel, np.zeros((kernel.shape[0], num_new), np.float32)], 1)
  bias = np.concatenate([bias, np.zeros(num_new, np.float32)])
  for c, (w, b) in columns.items():
    if c < c0 and not (c in earlier and "trained" not in earlier[c]):
      kernel[:, c] = (1 - refine_weight) * kernel[:, c] + refine_weight * w
      bias[c] = (1 - refine_weight) * bias[c] + refine_weight * b
    else:
      kernel[:, c], bias[c] = w, b
  new = dict(params)
  new["head"] = {**params["head"], "logits": {**head, "kernel": kernel, "bias": bias}}
  return new


def check_examples(params: dict, columns: dict[int, tuple[np.ndarray, float]], num_new: int,
                   examples: dict[int, np.ndarray], scales: dict, temperature: float,
                   earlier: dict[int, dict] | None = None) -> dict[int, dict]:
  """What a signer should know about each enrolled sign before relying on it: whether its examples are told
  apart from the other signs. `examples[c]` holds the (V, k, E) embeddings of class c's examples, from which
  `columns[c]` was built (the rest as for `grow_head`); probabilities are the views' mean of the calibrated
  softmax, as the run predicts.
  - "left_out" (when the sign has another example: k >= 2, or examples enrolled before): each of the k
    examples' top-1 class when c's vector is built from the sign's other examples (the other k - 1, and those
    enrolled before, `earlier` as for `grow_head`), as if the example were a new clip of the sign. The
    examples enrolled before are kept as a sum, so they are not tried themselves: one example given to a sign
    enrolled before is tried on the sign as it was;
  - "closest", "closest_prob": the class the run would take c's examples for without c (the highest mean
    probability over them with c's logit left out), and that probability.
  Returns {c: {"examples": k, "earlier": examples enrolled before, "left_out": [classes], "closest": class,
  "closest_prob": p}}."""
  earlier = earlier or {}
  head = grow_head(params, columns, num_new, earlier=earlier)["head"]["logits"]
  out = {}
  for c, emb in examples.items():
    k, before = int(emb.shape[1]), int((earlier.get(c) or {}).get("examples", 0))
    logits = head_logits(emb, head)
    logits[..., c] = -np.inf  # what the run would take the examples for without this sign
    probs = calibration.mean_probs(logits, temperature).mean(0)  # (C,)
    closest = int(np.argmax(probs))
    left_out = []
    for i in range(k if k + before >= 2 else 0):
      others = class_vector(np.delete(emb, i, axis=1), scales, earlier.get(c))
      rebuilt = grow_head(params, {**columns, c: others}, num_new, earlier=earlier)
      p = calibration.mean_probs(head_logits(emb[:, i:i + 1], rebuilt["head"]["logits"]), temperature)[0]
      left_out.append(int(np.argmax(p)))
    out[c] = {"examples": k, "earlier": before, "left_out": left_out, "closest": closest,
              "closest_prob": float(probs[closest])}
  return out
