"""Train-step throughput: asl_jax vs the PyTorch seed model, same shapes, same run, alternating.

  python benchmarks/train_throughput.py [--repeats 5] [--steps 20] [--configs lstm100,lstm1000,transformer1000]
      [--batches 32,256] [--torch_device cpu|cuda] [--torch_bf16] [--name train_throughput]

On a GPU: `--torch_device cuda --torch_bf16 --batches 32,256 --configs lstm100,lstm1000,recommended100
--name gpu_throughput` puts both trainers on the GPU (JAX uses its default backend) and adds PyTorch with
bfloat16 autocast (`torch_bf16`).

For each config it times `steps` train steps per repeat, alternating PyTorch and JAX, and reports the
median samples/s. The JAX step is the real training step: it gathers the batch from the on-device
dataset, augments it (all augmentations on) and updates the TrainState; `jax_noaug` is the same step with
augmentation off (the PyTorch step gets ready tensors and augments nothing); `jax_bf16` is the real step
with `lstm_matmul_dtype=bfloat16` (float32 parameters, bfloat16 LSTM matmuls). Writes
benchmarks/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from asl_jax import allocator, models  # noqa: E402
from asl_jax.config import default_config, load_config_file  # noqa: E402
from asl_jax.data import input_pipeline  # noqa: E402
from asl_jax.sharding import DataParallel  # noqa: E402
from asl_jax.training import train  # noqa: E402
from asl_jax.training import setup as run_lib  # noqa: E402

CONFIGS = {"lstm100": ("lstm", 100), "lstm1000": ("lstm", 1000), "transformer1000": ("transformer", 1000),
           # The recommended WLASL100 recipe (configs/nslt_100.py): landmarks only, its own frames and features.
           "recommended100": ("recommended", 100)}


def jax_stepper(encoder: str, classes: int, batch: int, frames: int, gdim: int, augmentation: bool, n_clips=512,
                matmul_dtype: str = "float32"):
  if encoder == "recommended":
    cfg = load_config_file(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                                        f"nslt_{classes}.py"))
    frames, gdim = cfg.num_frames, 0
  else:
    cfg = default_config()
    cfg.encoder, cfg.hidden_dim, cfg.dropout, cfg.num_frames = encoder, 512, 0.5, frames
  cfg.batch_size, cfg.augmentation, cfg.lstm_matmul_dtype = batch, augmentation, matmul_dtype
  n_clips = max(n_clips, 4 * batch)
  rng = np.random.default_rng(0)
  parallel = DataParallel()
  data = input_pipeline.DeviceData(
      points=rng.normal(size=(n_clips, frames, 54, 3)).astype(np.float32),
      parts=np.ones((n_clips, frames, 4), bool), lengths=np.full(n_clips, frames, np.int32),
      labels=rng.integers(0, classes, n_clips).astype(np.int32),
      visual=rng.normal(size=(n_clips, frames, gdim)).astype(np.float32) if gdim else None,
      visual_lengths=np.full(n_clips, frames, np.int32) if gdim else None)
  data = parallel.replicate(data)
  model = models.create_model(cfg, classes, use_landmarks=True, use_visual=gdim > 0)
  steps = n_clips // batch
  state = jax.jit(lambda k: run_lib.create_state(cfg, model, gdim, steps, k),
                  out_shardings=parallel.replicated)(jax.random.key(0))
  weights = parallel.replicate(rng.uniform(0.1, 10, classes).astype(np.float32))
  order = parallel.shard_order(rng.permutation(steps * batch).reshape(steps, batch).astype(np.int32))
  step_fn = train.make_train_step(cfg, model, steps, parallel)
  box = {"state": state}

  def run(n):
    s = box["state"]
    for _ in range(n):
      s, loss = step_fn(s, data, order, weights)
    jax.block_until_ready(loss)
    box["state"] = s

  return run, models.count_params(state.params)


def torch_stepper(classes, batch, frames, gdim, device="cpu", bf16=False):
  import torch  # pylint: disable=import-outside-toplevel
  import torch_seed  # pylint: disable=import-outside-toplevel
  step, n_params = torch_seed.make_step(classes, gdim, class_weights=np.random.default_rng(0).uniform(0.1, 10, classes),
                                        device=device, autocast_dtype=torch.bfloat16 if bf16 else None)
  vis, lm = torch.randn(batch, frames, gdim, device=device), torch.randn(batch, frames, 162, device=device)
  y = torch.randint(0, classes, (batch,), device=device)

  def run(n):
    for _ in range(n):
      step(vis, lm, y)

  return run, n_params


def timed(run, n):
  t0 = time.perf_counter()
  run(n)
  return time.perf_counter() - t0


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--configs", default=",".join(CONFIGS))
  ap.add_argument("--batches", default="32", help="comma-separated batch sizes")
  ap.add_argument("--frames", type=int, default=16)
  ap.add_argument("--gemma_dim", type=int, default=1152)
  ap.add_argument("--steps", type=int, default=20)
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--no_torch", action="store_true")
  ap.add_argument("--torch_device", default="cpu")
  ap.add_argument("--torch_bf16", action="store_true", help="also time PyTorch under bfloat16 autocast")
  ap.add_argument("--name", default="train_throughput")
  a = ap.parse_args()
  try:
    import torch  # pylint: disable=import-outside-toplevel
    torch.set_num_threads(os.cpu_count())
    have_torch = not a.no_torch
  except ImportError:
    have_torch = False
  results = {"machine": common.machine(), "frames": a.frames, "gemma_dim": a.gemma_dim, "torch_device": a.torch_device,
             "steps_per_repeat": a.steps, "repeats": a.repeats, "rows": []}
  print(f"{'config':18s}{'batch':>6s} {'impl':12s}{'params':>12s}{'samples/s':>12s}{'step ms':>10s}")
  for batch in (int(b) for b in a.batches.split(",")):
    for name in a.configs.split(","):
      measure(name, batch, a, have_torch, results)
  print("wrote", common.save(a.name, results))


def measure(name: str, batch: int, a, have_torch: bool, results: dict) -> None:
  """Times every implementation of one config at one batch size, alternating; appends rows and ratios."""
  encoder, classes = CONFIGS[name]
  runners = {}
  runners["jax"] = jax_stepper(encoder, classes, batch, a.frames, a.gemma_dim, True)
  runners["jax_noaug"] = jax_stepper(encoder, classes, batch, a.frames, a.gemma_dim, False)
  if encoder == "lstm":
    runners["jax_bf16"] = jax_stepper(encoder, classes, batch, a.frames, a.gemma_dim, True, matmul_dtype="bfloat16")
  if have_torch and encoder == "lstm":
    runners["torch"] = torch_stepper(classes, batch, a.frames, a.gemma_dim, a.torch_device)
    if a.torch_bf16:
      runners["torch_bf16"] = torch_stepper(classes, batch, a.frames, a.gemma_dim, a.torch_device, bf16=True)
  times = {k: [] for k in runners}
  for run, _ in runners.values():
    run(3)  # compile / warm up
  for _ in range(a.repeats):
    for k, (run, _) in runners.items():  # alternating, so drifts hit every implementation alike
      times[k].append(timed(run, a.steps))
  for k, (run, n_params) in runners.items():
    dt = common.median(times[k]) / a.steps
    row = {"config": name, "batch": batch, "impl": k, "encoder": encoder, "classes": classes, "params": n_params,
           "samples_per_s": round(batch / dt, 1), "step_ms": round(dt * 1e3, 2)}
    results["rows"].append(row)
    print(f"{name:18s}{batch:6d} {k:12s}{n_params:12d}{row['samples_per_s']:12.1f}{row['step_ms']:10.2f}")
  key = name if batch == 32 else f"{name}@{batch}"
  for jax_impl, torch_impl, field in (("jax", "torch", "speedup_vs_torch"), ("jax_bf16", "torch", "speedup_bf16_vs_torch"),
                                      ("jax", "torch_bf16", "speedup_vs_torch_bf16")):
    if jax_impl in times and torch_impl in times:
      ratio = common.median(times[torch_impl]) / common.median(times[jax_impl])
      results.setdefault(field, {})[key] = round(ratio, 2)
      print(f"{name} batch {batch}: {jax_impl} is {ratio:.2f}x the {torch_impl} step")


if __name__ == "__main__":
  allocator.use_caching_allocator()  # as the entry points run (PyTorch gets it too: one process)
  main()
