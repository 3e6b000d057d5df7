"""Class weights on fixed features: where do they help? A linear softmax and a 2-layer MLP on the clips'
flattened, standardised eval-view landmark features (16 frames), weighted vs unweighted, full train split.

  python benchmarks/class_weights_probe.py --data_dir D [--subset nslt_1000.json] [--epochs 30]
      [--dropout 0.5] [--label_smoothing 0.1]

Same loss as the trainer (asl_jax.models.losses.weighted_cross_entropy with the seed's weights), AdamW + warmup-cosine
+ clip 1.0, batch 32, one jitted scan per epoch. Prints and saves validation per-instance and per-class
top-1 to benchmarks/results/class_weights_probe.json (--out names another). Not a model to use: it isolates
the loss from the encoder, the augmentation and the schedule of the real runs (benchmarks/class_weights.py).
"""

from __future__ import annotations

import argparse
import os
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from asl_jax.config import default_config  # noqa: E402
from asl_jax.data import input_pipeline  # noqa: E402
from asl_jax.data import packed as packed_lib  # noqa: E402
from asl_jax.models import losses  # noqa: E402


def features(data_dir: str, subset: str, num_frames: int):
  c = default_config()
  c.data_dir, c.subset, c.gemma_features_dir = data_dir, subset, ""
  packed = packed_lib.load_packed(packed_lib.DataSpec.from_config(c))
  data = input_pipeline.select(packed, np.arange(len(packed.labels)))

  def view(idx):
    batch = input_pipeline.make_batch(data, jnp.asarray(idx), jax.random.key(0), num_frames, None)
    x = np.asarray(batch["landmarks"])
    return x.reshape(len(idx), -1), np.asarray(batch["labels"])

  (x_tr, y_tr), (x_va, y_va) = view(packed.indices(["train"])), view(packed.indices(["val"]))
  mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
  return (x_tr - mu) / sd, y_tr, (x_va - mu) / sd, y_va, packed.num_classes


class Probe(nn.Module):
  num_classes: int
  hidden: int  # 0: linear
  dropout: float

  @nn.compact
  def __call__(self, x, train: bool):
    for _ in range(2 if self.hidden else 0):
      x = nn.Dropout(self.dropout, deterministic=not train)(nn.gelu(nn.Dense(self.hidden)(x)))
    return nn.Dense(self.num_classes)(x)


def fit(x_tr, y_tr, x_va, y_va, num_classes, weighted, hidden, args) -> dict:
  model = Probe(num_classes, hidden, args.dropout)
  params = model.init(jax.random.key(args.seed), x_tr[:1], False)["params"]
  w = jnp.asarray(losses.class_weights(y_tr, num_classes)) if weighted else None
  steps = len(y_tr) // args.batch_size
  sched = optax.warmup_cosine_decay_schedule(0.0, args.lr, 2 * steps, args.epochs * steps)
  tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(sched, weight_decay=1e-4))
  opt_state, x, y = tx.init(params), jnp.asarray(x_tr), jnp.asarray(y_tr)

  @jax.jit
  def epoch(params, opt_state, key):
    order = jax.random.permutation(key, len(y_tr))[: steps * args.batch_size].reshape(steps, -1)

    def body(carry, idx):
      params, opt_state, k = carry
      k, k_drop = jax.random.split(k)
      loss = lambda p: losses.weighted_cross_entropy(  # noqa: E731
          model.apply({"params": p}, x[idx], True, rngs={"dropout": k_drop}), y[idx], w, args.label_smoothing)
      updates, opt_state = tx.update(jax.grad(loss)(params), opt_state, params)
      return (optax.apply_updates(params, updates), opt_state, k), None

    return jax.lax.scan(body, (params, opt_state, key), order)[0][:2]

  key = jax.random.key(args.seed + 1)
  for _ in range(args.epochs):
    key, k = jax.random.split(key)
    params, opt_state = epoch(params, opt_state, k)
  ok = np.asarray(jnp.argmax(model.apply({"params": params}, jnp.asarray(x_va), False), -1)) == y_va
  per_class = np.mean([ok[y_va == c].mean() for c in np.unique(y_va)])
  return {"val_top1": round(float(ok.mean()), 4), "val_class_top1": round(float(per_class), 4)}


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--data_dir", required=True)
  p.add_argument("--subset", default="nslt_1000.json")
  p.add_argument("--num_frames", type=int, default=16)
  p.add_argument("--epochs", type=int, default=30)
  p.add_argument("--batch_size", type=int, default=32)
  p.add_argument("--lr", type=float, default=1e-3)
  p.add_argument("--hidden", type=int, default=512, help="MLP width")
  p.add_argument("--dropout", type=float, default=0.5, help="MLP dropout (the seed's 0.5)")
  p.add_argument("--label_smoothing", type=float, default=0.1)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="class_weights_probe", help="results file name")
  args = p.parse_args()
  data = features(args.data_dir, args.subset, args.num_frames)
  results = {}
  for probe, hidden in (("linear", 0), (f"mlp{args.hidden}_dropout{args.dropout}", args.hidden)):
    for weighted in (False, True):
      name = f"{probe}_{'weighted' if weighted else 'unweighted'}"
      results[name] = fit(*data, weighted, hidden, args)
      r = results[name]
      print(f"{name:34s} val P-I top1 {r['val_top1']:.4f}  P-C top1 {r['val_class_top1']:.4f}", flush=True)
  payload = {"machine": common.machine(), "args": vars(args), "results": results}
  print("wrote", common.save(args.out, payload))


if __name__ == "__main__":
  main()
