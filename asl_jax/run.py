"""Building a run from a config: the model, the data split, the optimiser and its schedule, the TrainState,
and what a run directory records about its inputs (the input spec, the visual statistics).

Training (train.py) and the workdir-level applications (evaluate.py, predict.py, export.py, through
restore.py) build on this module; it imports none of them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from asl_jax import atomic
from asl_jax import config as config_lib
from asl_jax import landmark_features, losses, models, optim
from asl_jax.data import layouts, packed as packed_lib, splits as splits_lib
from asl_jax.errors import CheckpointError, ConfigError
from asl_jax.sharding import DataParallel


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
  """AdamW with global-norm clipping (the seed's), fused into one pass per parameter (asl_jax.optim); with
  weight_decay_on=matrices the decay skips biases and LayerNorm scales."""
  mask = optim.decay_mask if config.get("weight_decay_on", "all") == "matrices" else None
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
  return Setup(packed, train_idx, val_idx, test_idx, model, weights, steps)


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
  ema = params if config.get("ema_decay", 0.0) > 0 else None
  return TrainState.create(apply_fn=model.apply, params=params, tx=tx, ema_params=ema)


def init_state(config, setup: Setup, parallel: DataParallel) -> TrainState:
  key = jax.random.fold_in(jax.random.key(config.seed), 0)
  create = lambda k: create_state(config, setup.model, setup.packed.visual_dim, setup.steps_per_epoch, k)  # noqa: E731
  return jax.jit(create, out_shardings=parallel.replicated)(key)




VISUAL_NORM_FILE = "visual_norm.npz"


def save_visual_norm(workdir: str, norm) -> None:
  """The visual standardisation statistics of a run (evaluate / predict / export read them back)."""
  atomic.save_npz(os.path.join(workdir, VISUAL_NORM_FILE), mean=norm[0], std=norm[1])

def load_visual_norm(workdir: str) -> tuple[np.ndarray, np.ndarray]:
  path = os.path.join(workdir, VISUAL_NORM_FILE)
  if not os.path.isfile(path):
    raise CheckpointError(f"{path}: missing (the run standardises its visual features with these statistics)")
  with np.load(path) as z:
    return z["mean"], z["std"]


HEAD_WEIGHTS_FILE = "head_weights.json"


def save_head_weights(workdir: str, fitted: dict) -> None:
  """The head weights fitted on val (evaluation.fit_head_weights, plus the checkpoint step they were fitted
  for); evaluate / predict / export apply them through `with_head_weights`."""
  atomic.write_json(os.path.join(workdir, HEAD_WEIGHTS_FILE), fitted)


def load_head_weights(workdir: str) -> dict | None:
  """The run's fitted head weights, or None when it has none."""
  path = os.path.join(workdir, HEAD_WEIGHTS_FILE)
  if not os.path.isfile(path):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      fitted = json.load(f)
    weights = [float(w) for w in fitted["weights"]]
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise CheckpointError(f"{path}: unreadable ({type(e).__name__}: {e}); delete it and rerun training to fit "
                          "the head weights again") from None
  if len(weights) != len(models.hybrid.HEAD_NAMES) or not any(weights) or min(weights) < 0:
    raise CheckpointError(f"{path}: expected {len(models.hybrid.HEAD_NAMES)} non-negative weights, not all zero "
                          f"({', '.join(models.hybrid.HEAD_NAMES)}), got {fitted['weights']}")
  return {**fitted, "weights": weights}


def fits_head_weights(config, model: models.HybridModel) -> bool:
  """Whether a run weighs its heads with weights fitted on val: per-stream heads and config.fit_head_weights."""
  return bool(config.fit_head_weights and model.stream_heads)


def with_head_weights(config, model: models.HybridModel, workdir: str, step: int) -> models.HybridModel:
  """The model with the run's fitted head weights, when it fits them (`fits_head_weights`) and has; they
  belong to the checkpoint they were fitted for, so another step is refused."""
  fitted = load_head_weights(workdir) if fits_head_weights(config, model) else None
  if fitted is None:
    return model
  if fitted.get("step") is not None and int(fitted["step"]) != int(step):
    raise CheckpointError(f"{os.path.join(workdir, HEAD_WEIGHTS_FILE)}: the head weights were fitted for the best "
                          f"checkpoint (step {fitted['step']}), not for step {step}: use --checkpoint=best")
  return model.clone(head_weights=tuple(fitted["weights"]))


INPUT_SPEC_FILE = "input_spec.json"
# The files of a run directory that inference reads, beside its checkpoint (what pretrained.package and
# enroll.enroll copy).
RUN_FILES = ("config.json", "label_mapping.json", "input_spec.json", "class_mapping.json", "head_weights.json",
             "visual_norm.npz", "calibration.json", "enrolled.json")


@dataclasses.dataclass(frozen=True)
class InputSpec:
  """What a run's model takes, saved once per run (DIR/input_spec.json) and read back strictly: the
  landmark layout of its files and their width, the visual feature size (0: none), and which streams the
  model has. Evaluation, prediction and export rebuild the model from it; a resumed run must match it."""

  layout: str
  landmark_dim: int
  visual_dim: int
  use_landmarks: bool
  use_visual: bool

  @classmethod
  def of(cls, config, packed: packed_lib.Packed) -> "InputSpec":
    layout = packed.report["landmark_layout"]
    return cls(layout, layouts.LAYOUT_DIMS[layout], packed.visual_dim, bool(config.use_landmarks),
               packed.visual_dim > 0)

  def save(self, workdir: str) -> None:
    atomic.write_json(os.path.join(workdir, INPUT_SPEC_FILE), dataclasses.asdict(self))

  @classmethod
  def load(cls, workdir: str) -> "InputSpec":
    """The saved spec; a run written before input_spec.json existed gets it from data_report.json and
    config.json (which held the same facts); a workdir with neither is one error."""
    path = os.path.join(workdir, INPUT_SPEC_FILE)
    try:
      if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
          saved = json.load(f)
        return cls(**{f.name: saved[f.name] for f in dataclasses.fields(cls)})
      with open(os.path.join(workdir, "data_report.json"), encoding="utf-8") as f:
        report = json.load(f)
      with open(os.path.join(workdir, "config.json"), encoding="utf-8") as f:
        saved_config = json.load(f)
      layout, visual_dim = report["landmark_layout"], int(report["visual_dim"])
      return cls(layout, layouts.LAYOUT_DIMS[layout], visual_dim, bool(saved_config.get("use_landmarks", True)),
                 visual_dim > 0)
    except (OSError, KeyError, TypeError, ValueError) as e:
      raise CheckpointError(f"{path}: missing or unreadable ({type(e).__name__}: {e}); the run's input "
                            "format is unknown. Is this a training workdir?") from None

  def check_resume(self, saved: "InputSpec", workdir: str) -> None:
    """A resumed run must take the same inputs as the saved one (the checkpoint's shapes depend on it)."""
    if self == saved:
      return
    diffs = [f"{f.name}: saved {getattr(saved, f.name)!r}, now {getattr(self, f.name)!r}"
             for f in dataclasses.fields(self) if getattr(saved, f.name) != getattr(self, f.name)]
    hint = ""
    if saved.use_visual and not self.use_visual:
      hint = "; the run was trained with visual features: set config.gemma_features_dir to them"
    elif self.use_visual and not saved.use_visual:
      hint = "; the run was trained without visual features: leave config.gemma_features_dir empty"
    raise ConfigError(f"{os.path.join(workdir, INPUT_SPEC_FILE)}: this run's inputs differ from the saved ones "
                      f"({'; '.join(diffs)}){hint}")


def abstract_params(config, model: models.HybridModel, spec: InputSpec):
  """The shapes of the weights a run evaluates (the EMA ones when it keeps them), without computing them:
  what restore.load_run reads from a checkpoint (parameters only, no optimiser state)."""
  feature_dim = landmark_features.FeatureConfig.from_config(config).dim
  batch = models.hybrid.example_batch(1, config.num_frames, feature_dim, spec.visual_dim)
  return jax.eval_shape(lambda: model.init({"params": jax.random.key(0), "dropout": jax.random.key(0)}, batch,
                                           train=False)["params"])


def eval_params_name(config) -> str:
  """The TrainState field holding the weights to evaluate: `ema_params` with an EMA, else `params`."""
  return "ema_params" if config.get("ema_decay", 0.0) > 0 else "params"
