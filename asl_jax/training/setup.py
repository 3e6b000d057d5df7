"""Building a run from its config: the data split, the model, the optimiser and its schedule, the TrainState.
Training (train.py) builds on it, and so do the commands that evaluate a run on its data (serving/evaluate.py).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from asl_jax import config as config_lib, models
from asl_jax.data import landmark_features, packed as packed_lib, splits as splits_lib
from asl_jax.evaluation.evaluator import EVAL_BATCH
from asl_jax.models import losses
from asl_jax.sharding import DataParallel
from asl_jax.training import optim


class TrainState(train_state.TrainState):
  # Running sums over the current epoch: [loss numerator, loss denominator, correct, samples].
  epoch_sums: jnp.ndarray = flax.struct.field(default_factory=lambda: jnp.zeros(4, jnp.float32))
  # Exponential moving average of params (config.ema_decay > 0), else None.
  ema_params: Any = None

  @property
  def eval_params(self):
    """The weights to validate, test and export: the moving average when there is one."""
    return self.params if self.ema_params is None else self.ema_params


def ema_update(ema, params, decay: float, step):
  """One EMA step with the usual warm-up of the decay (min(decay, (1 + step) / (10 + step))), so early
  averages are not dominated by the random initialisation."""
  d = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
  return jax.tree_util.tree_map(lambda e, p: d * e + (1 - d) * p, ema, params)


def make_schedule(config, steps_per_epoch: int) -> optax.Schedule:
  """Linear warmup from ~0 to lr over warmup_epochs, then cosine to lr * min_lr_ratio, per batch.

  Step s (0-based) uses the value at s + 1, so the first batch already learns (the seed's ran at lr 0).
  """
  total = max(1, config.epochs * steps_per_epoch)
  warmup = min(config.warmup_epochs * steps_per_epoch, total)
  peak, end = config.lr, config.lr * config.min_lr_ratio

  def schedule(step):
    s = jnp.asarray(step, jnp.float32) + 1
    progress = jnp.clip((s - warmup) / max(total - warmup, 1), 0.0, 1.0)
    cosine = end + (peak - end) * 0.5 * (1 + jnp.cos(jnp.pi * progress))
    return jnp.where(s < warmup, peak * s / max(warmup, 1), cosine)

  return schedule


def make_optimizer(config, schedule) -> optax.GradientTransformation:
  """AdamW with global-norm clipping (the seed's), fused into one pass per parameter (asl_jax.training.optim); with
  weight_decay_on=matrices the decay skips biases and LayerNorm scales."""
  mask = optim.decay_mask if config.weight_decay_on == "matrices" else None
  return optim.clipped_adamw(schedule, config.grad_clip, weight_decay=config.weight_decay, mask=mask)


@dataclasses.dataclass
class Setup:
  """Everything a run derives from the config and the data before the first step."""

  packed: packed_lib.Packed
  train_idx: np.ndarray
  val_idx: np.ndarray
  test_idx: np.ndarray
  model: models.HybridModel
  class_weights: np.ndarray | None
  steps_per_epoch: int
  # (mean, std) of the training visual features; set by training only (evaluation reads the run's saved ones).
  visual_norm: tuple[np.ndarray, np.ndarray] | None = None
  outlier: int | None = None  # the class index of config.outlier_gloss


def prepare(config) -> Setup:
  """Loads the data (cached), checks the splits, builds the model; no devices touched."""
  config_lib.validate(config)
  subsets = splits_lib.train_subsets(config.train_subsets)
  spec = packed_lib.DataSpec.from_config(config)
  packed = packed_lib.load_packed(spec, subsets)
  train_idx = packed_lib.require_nonempty(packed, subsets)
  val_idx = packed.indices(["val"]) if config.train_subsets == "train" else np.zeros(0, np.int32)
  test_idx = packed.indices(["test"])
  cap_batch(config, len(train_idx))
  model = models.create_model(config, packed.num_classes, use_landmarks=config.use_landmarks,
                              use_visual=packed.visual_dim > 0)
  weights = losses.class_weights(packed.labels[train_idx], packed.num_classes) if config.use_class_weights else None
  steps = math.ceil(len(train_idx) / config.batch_size)
  return Setup(packed, train_idx, val_idx, test_idx, model, weights, steps, outlier=outlier_index(config, packed))


def outlier_index(config, packed) -> int | None:
  """The class index of config.outlier_gloss (None when unset)."""
  if not config.outlier_gloss:
    return None
  if config.outlier_gloss not in packed.split.glosses:
    raise config_lib.ConfigError(f"config.outlier_gloss={config.outlier_gloss!r}: no such class in "
                                 f"{packed_lib.DataSpec.from_config(config).split_path}")
  return packed.split.glosses.index(config.outlier_gloss)


def cap_batch(config, n_train: int) -> None:
  """A batch larger than the training set would repeat clips within a batch: it is capped (in `config`,
  so config.json records it) at the training-set size, rounded down to a multiple of the devices."""
  if config.batch_size <= n_train:
    return
  devices = jax.device_count()
  capped = max(devices, n_train - n_train % devices)
  print(f"warning: config.batch_size={config.batch_size} is larger than the {n_train} training clips; using "
        f"batch_size={capped}", file=sys.stderr, flush=True)
  config.batch_size = capped


def create_state(config, model: models.HybridModel, visual_dim: int, steps_per_epoch: int, key) -> TrainState:
  """A fresh TrainState (works under jit and jax.eval_shape)."""
  feature_dim = landmark_features.FeatureConfig.from_config(config).dim
  batch = models.hybrid.example_batch(1, config.num_frames, feature_dim, visual_dim)
  params = model.init({"params": key, "dropout": key}, batch, train=False)["params"]
  tx = make_optimizer(config, make_schedule(config, steps_per_epoch))
  ema = params if config.ema_decay > 0 else None
  return TrainState.create(apply_fn=model.apply, params=params, tx=tx, ema_params=ema)


def init_state(config, setup: Setup, parallel: DataParallel) -> TrainState:
  key = jax.random.fold_in(jax.random.key(config.seed), 0)
  create = lambda k: create_state(config, setup.model, setup.packed.visual_dim, setup.steps_per_epoch, k)  # noqa: E731
  return jax.jit(create, out_shardings=parallel.replicated)(key)


def eval_batch_size(config, setup: Setup) -> int:
  """config.eval_batch_size, or when 0 the larger of val and test rounded up to a multiple of 8, at most
  EVAL_BATCH (a 94-clip val set padded to 256 clips would cost 2.7x its clips every epoch)."""
  return config.eval_batch_size or min(EVAL_BATCH, -(-eval_size(setup) // 8) * 8)


def eval_size(setup: Setup) -> int:
  """The clip count val and test are padded to, so the final test reuses validation's compiled step."""
  return max(len(setup.val_idx), len(setup.test_idx), 1)


def with_visual_norm(config, setup: Setup) -> Setup:
  """The setup with the training set's visual statistics when the run standardises its visual features."""
  if setup.model.use_visual and config.visual_standardize:
    return dataclasses.replace(setup, visual_norm=packed_lib.visual_stats(setup.packed, setup.train_idx))
  return setup


def epoch_order(config, train_labels: np.ndarray, epoch: int, steps: int) -> np.ndarray:
  """(steps, batch_size) indices into the training set for one epoch (a function of seed and epoch)."""
  rng = np.random.default_rng([config.seed, epoch])
  n, b = len(train_labels), config.batch_size
  if config.balanced_sampling:  # class-balanced, with replacement (the seed's WeightedRandomSampler)
    counts = np.bincount(train_labels)
    p = 1.0 / counts[train_labels]
    return rng.choice(n, size=(steps, b), p=p / p.sum()).astype(np.int32)
  perm = rng.permutation(n)
  reps = math.ceil(steps * b / n)
  return np.concatenate([perm] + [rng.permutation(n) for _ in range(reps - 1)])[:steps * b].reshape(steps, b).astype(np.int32)
