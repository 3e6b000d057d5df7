"""Why the linear visual stream is a full-rank probe on the time-mean: linear classifiers on the clip means of
the weak-visual synthetic set (benchmarks/fusion.py's, strength 0.08), trained as the trainer trains
(AdamW 1e-3, warmup-cosine, weight decay 0.05, label smoothing 0.1, batch 32, 30 epochs), with and without a
hidden projection and with its initialisation varied.

  python benchmarks/visual_probe.py [--strength 0.08] [--epochs 30] [--seed 0] [--out /tmp/asl_jax_probe]

Prints val / test top-1 per variant; docs/results.md, "Visual features and fusion", quotes it.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fusion  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from asl_jax.data.synthetic import make_synthetic  # noqa: E402

# name -> (hidden width (0: none, a direct probe), scale of the projection's initialisation)
VARIANTS = {"projection 1152 -> 192, random init (lecun normal)": (192, 1.0),
            "projection 1152 -> 192, zero init": (192, 0.0),
            "full-rank probe, zero init": (0, 0.0)}


def train_probe(feats, num_classes: int, hidden: int, init_scale: float, epochs: int, seed: int) -> dict:
  (x, y), dim = feats["train"], feats["train"][0].shape[1]
  k1, k2 = jax.random.split(jax.random.key(seed))
  if hidden:
    params = {"w1": init_scale * jax.random.normal(k1, (dim, hidden)) / np.sqrt(dim), "b1": jnp.zeros(hidden),
              "w2": jax.random.normal(k2, (hidden, num_classes)) / np.sqrt(hidden), "b2": jnp.zeros(num_classes)}
  else:
    params = {"w2": jnp.zeros((dim, num_classes)), "b2": jnp.zeros(num_classes)}

  def logits(p, x):
    h = x @ p["w1"] + p["b1"] if "w1" in p else x
    return h @ p["w2"] + p["b2"]

  batch, steps_per_epoch = 32, len(y) // 32
  total = epochs * steps_per_epoch
  tx = optax.adamw(optax.warmup_cosine_decay_schedule(0.0, 1e-3, total // 15, total), weight_decay=0.05)
  state = tx.init(params)

  @jax.jit
  def step(p, s, xb, yb):
    def loss(p):
      target = optax.smooth_labels(jax.nn.one_hot(yb, num_classes), 0.1)
      return optax.softmax_cross_entropy(logits(p, xb), target).mean()
    updates, s = tx.update(jax.grad(loss)(p), s, p)
    return optax.apply_updates(p, updates), s

  rng = np.random.default_rng(seed)
  for _ in range(epochs):
    order = rng.permutation(len(y))
    for i in range(steps_per_epoch):
      b = order[i * batch:(i + 1) * batch]
      params, state = step(params, state, jnp.asarray(x[b]), jnp.asarray(y[b]))
  return {s: float((np.asarray(logits(params, jnp.asarray(feats[s][0]))).argmax(1) == feats[s][1]).mean())
          for s in ("val", "test")}


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--strength", type=float, default=0.08)
  ap.add_argument("--epochs", type=int, default=30)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--out", default="/tmp/asl_jax_probe")
  args = ap.parse_args()
  data = make_synthetic(os.path.join(args.out, f"data_s{args.strength}"), 100, seed=0, with_visual=True,
                        train_scale=0.5, visual_strength=args.strength)
  feats = fusion.pooled_features(data)
  print(f"linear probe, L-BFGS to convergence: {fusion.linear_probe(data)}")
  for name, (hidden, scale) in VARIANTS.items():
    r = train_probe(feats, data["num_classes"], hidden, scale, args.epochs, args.seed)
    print(f"{name}: val top-1 {100 * r['val']:.1f} %, test top-1 {100 * r['test']:.1f} %", flush=True)


if __name__ == "__main__":
  main()
