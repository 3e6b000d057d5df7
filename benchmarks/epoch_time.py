"""End-to-end epoch on a synthetic nslt_1000-shaped data dir: asl_jax vs the seed-style PyTorch pipeline.

  python benchmarks/epoch_time.py [--data_dir /tmp/asl_jax_bench/nslt1000] [--batches 40]

Measures, in one run:
  - synthetic data generation (when the dir is new), asl_jax's first pack and its cached start;
  - input pipeline alone (load + augment + batch, no model): asl_jax's jitted gather+augment vs the seed's
    Dataset/DataLoader with 0 and 2 workers, in samples/s;
  - training: asl_jax's full step (gather + augment + update) vs the seed pipeline (DataLoader + model step),
    samples/s over `batches` batches, extrapolated to an epoch of the train split (plus asl_jax's start-up);
  - asl_jax's pipeline overhead: full step time / model-only step time on a ready batch.
Writes benchmarks/results/epoch_time.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from asl_jax import allocator, models  # noqa: E402
from asl_jax.config import default_config  # noqa: E402
from asl_jax.data import augment, input_pipeline  # noqa: E402
from asl_jax.data import packed as packed_lib  # noqa: E402
from asl_jax.data.synthetic import make_synthetic  # noqa: E402
from asl_jax.models import losses  # noqa: E402
from asl_jax.sharding import DataParallel  # noqa: E402
from asl_jax.training import train  # noqa: E402
from asl_jax.training import setup as run_lib  # noqa: E402


def config_for(data_dir):
  c = default_config()
  c.data_dir, c.subset = data_dir, "nslt_1000.json"
  c.gemma_features_dir = os.path.join(data_dir, "gemma_features")
  c.hidden_dim, c.dropout, c.num_frames, c.batch_size, c.use_class_weights = 512, 0.5, 16, 32, True
  c.cache_dir = os.path.join(data_dir, ".cache")
  return c


def torch_pipeline(items, gdir, ldir, batches, workers, model_step=None):
  import torch_seed  # pylint: disable=import-outside-toplevel
  loader = torch_seed.seed_loader(items, gdir, ldir, 32, workers)
  it = iter(loader)
  for _ in range(3):
    g, lm, y = next(it)
    if model_step:
      model_step(g, lm, y)
  t0 = time.perf_counter()
  for _ in range(batches):
    g, lm, y = next(it)
    if model_step:
      model_step(g, lm, y)
  return batches * 32 / (time.perf_counter() - t0)


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--data_dir", default="/tmp/asl_jax_bench/nslt1000")
  ap.add_argument("--batches", type=int, default=40)
  ap.add_argument("--pipeline_batches", type=int, default=200)
  ap.add_argument("--no_torch", action="store_true")
  a = ap.parse_args()
  out = {"machine": common.machine(), "data_dir": a.data_dir}
  split_file = os.path.join(a.data_dir, "nslt_1000.json")
  if not os.path.exists(split_file):
    t0 = time.perf_counter()
    info = make_synthetic(a.data_dir, 1000, seed=0, with_visual=True)
    out["generate_s"] = round(time.perf_counter() - t0, 1)
    out["sizes"] = info["sizes"]
    print(f"generated {info['sizes']} in {out['generate_s']} s")
  cfg = config_for(a.data_dir)
  spec = packed_lib.DataSpec.from_config(cfg)
  cache_exists = os.path.isdir(cfg.cache_dir) and os.listdir(cfg.cache_dir)
  t0 = time.perf_counter()
  setup = run_lib.prepare(cfg)
  key = "cached_start_s" if cache_exists else "first_pack_s"
  out[key] = round(time.perf_counter() - t0, 2)
  if not cache_exists:
    t0 = time.perf_counter()
    packed_lib.load_packed(spec)
    out["cached_start_s"] = round(time.perf_counter() - t0, 2)
  print(f"start-up: {out.get('first_pack_s', '-')} s first pack, {out['cached_start_s']} s from cache")
  n_train = len(setup.train_idx)
  out["train_clips"] = n_train
  parallel = DataParallel()
  t0 = time.perf_counter()
  data = parallel.replicate(input_pipeline.select(setup.packed, setup.train_idx))
  jax.block_until_ready(data.points)
  out["device_put_s"] = round(time.perf_counter() - t0, 2)

  # Input pipeline alone: asl_jax gathers + augments batches on device.
  aug = augment.AugmentConfig.from_config(cfg)
  make = jax.jit(lambda d, idx, k: input_pipeline.make_batch(d, idx, k, 16, aug, True, True))
  order = np.random.default_rng(0).permutation(n_train)[: a.pipeline_batches * 32].reshape(-1, 32).astype(np.int32)
  jax.block_until_ready(make(data, order[0], jax.random.key(0)))
  t0 = time.perf_counter()
  for i, idx in enumerate(order):
    b = make(data, idx, jax.random.key(i))
  jax.block_until_ready(b)
  out["pipeline_jax_sps"] = round(len(order) * 32 / (time.perf_counter() - t0), 1)

  # Training: the real step, over `batches` batches (and again with the LSTM's matmuls in bfloat16).
  steps = setup.steps_per_epoch
  weights = parallel.replicate(setup.class_weights)
  epoch_order = parallel.shard_order(run_lib.epoch_order(cfg, setup.packed.labels[setup.train_idx], 0, steps))

  def time_real_step(config, model):
    state = run_lib.init_state(config, dataclasses.replace(setup, model=model), parallel)
    step_fn = train.make_train_step(config, model, steps, parallel)
    for _ in range(3):
      state, loss = step_fn(state, data, epoch_order, weights)
    jax.block_until_ready(loss)
    t0 = time.perf_counter()
    for _ in range(a.batches):
      state, loss = step_fn(state, data, epoch_order, weights)
    jax.block_until_ready(loss)
    return state, (time.perf_counter() - t0) / a.batches

  cfg16 = config_for(a.data_dir)
  cfg16.lstm_matmul_dtype = "bfloat16"
  _, full16 = time_real_step(cfg16, models.create_model(cfg16, setup.packed.num_classes, use_visual=True))
  out["jax_bf16_train_sps"] = round(32 / full16, 1)
  out["jax_bf16_epoch_s"] = round(steps * full16 + out["cached_start_s"] + out["device_put_s"], 1)
  state, full = time_real_step(cfg, setup.model)
  # Model-only step on a ready batch: the same update without gather/augment.
  batch = jax.jit(lambda d, idx: input_pipeline.make_batch(d, idx, jax.random.key(0), 16, None, True, True))(
      data, order[0])
  model, smoothing = setup.model, cfg.label_smoothing

  def model_step(state, batch, w, key):
    def loss_fn(p):
      logits = model.apply({"params": p}, batch, train=True, rngs={"dropout": key})
      num, den = losses.weighted_ce_terms(logits, batch["labels"], w, smoothing)
      return num / den
    loss, g = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=g), loss

  pure = jax.jit(model_step, donate_argnums=(0,))
  for i in range(3):
    state, loss = pure(state, batch, weights, jax.random.key(i))
  jax.block_until_ready(loss)
  t0 = time.perf_counter()
  for i in range(a.batches):
    state, loss = pure(state, batch, weights, jax.random.key(i))
  jax.block_until_ready(loss)
  pure_t = (time.perf_counter() - t0) / a.batches
  out["jax_train_sps"] = round(32 / full, 1)
  out["jax_model_only_sps"] = round(32 / pure_t, 1)
  out["pipeline_overhead"] = round(full / pure_t - 1, 4)
  out["jax_epoch_s"] = round(steps * full + out["cached_start_s"] + out["device_put_s"], 1)

  if not a.no_torch:
    import torch  # pylint: disable=import-outside-toplevel
    import torch_seed  # pylint: disable=import-outside-toplevel
    torch.set_num_threads(os.cpu_count())
    split = json.load(open(split_file))
    ldir, gdir = os.path.join(a.data_dir, "landmarks"), os.path.join(a.data_dir, "gemma_features")
    items = [(v, d["action"][0]) for v, d in split.items() if d["subset"] == "train"]
    for w in (0, 2):
      out[f"pipeline_torch_w{w}_sps"] = round(torch_pipeline(items, gdir, ldir, a.pipeline_batches // 2, w), 1)
    step, _ = torch_seed.make_step(1000, 1152, class_weights=setup.class_weights)
    out["torch_train_sps"] = round(torch_pipeline(items, gdir, ldir, a.batches, 2, step), 1)
    out["torch_epoch_s"] = round(n_train / out["torch_train_sps"], 1)
    out["epoch_speedup"] = round(out["torch_epoch_s"] / out["jax_epoch_s"], 2)
    out["epoch_speedup_bf16"] = round(out["torch_epoch_s"] / out["jax_bf16_epoch_s"], 2)
    out["pipeline_speedup_vs_w0"] = round(out["pipeline_jax_sps"] / out["pipeline_torch_w0_sps"], 1)
    out["pipeline_speedup_vs_w2"] = round(out["pipeline_jax_sps"] / out["pipeline_torch_w2_sps"], 1)
  common.report("epoch_time", out)


if __name__ == "__main__":
  allocator.use_caching_allocator()  # as the entry points run (PyTorch gets it too: one process)
  main()
