"""A trained run directory, restored for inference: its saved config, class names, input spec, visual
statistics and the parameters it evaluates (read alone from the checkpoint, without the optimiser state)."""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import ml_collections

from asl_jax import config as config_lib
from asl_jax import models
from asl_jax import run as run_lib
from asl_jax.checkpoints import Checkpoints
from asl_jax.errors import CheckpointError, ConfigError


@dataclasses.dataclass
class TrainedRun:
  workdir: str
  config: ml_collections.ConfigDict
  model: models.HybridModel
  params: dict  # the weights to evaluate (the EMA ones when the run keeps them)
  step: int
  glosses: tuple[str, ...]
  spec: run_lib.InputSpec
  visual_norm: tuple | None = None  # (mean, std) standardising the visual features, if the run used it

  @property
  def layout(self) -> str:
    return self.spec.layout

  @property
  def visual_dim(self) -> int:
    return self.spec.visual_dim


def split_workdirs(workdirs) -> list[str]:
  """"a,b" or ["a", "b"] -> ["a", "b"] (an ensemble); one workdir -> [it]."""
  items = workdirs.split(",") if isinstance(workdirs, str) else list(workdirs)
  return [w.strip() for w in items if w.strip()]


def _read_json(path: str, what: str):
  if not os.path.isfile(path):
    raise CheckpointError(f"{path}: missing ({what}); is this a training workdir?")
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The run's saved config, on top of today's defaults (fields added since keep their defaults)."""
  saved = _read_json(os.path.join(workdir, "config.json"), "the run's configuration")
  config = config_lib.default_config()
  unknown = sorted(set(saved) - set(config))
  if unknown:
    raise ConfigError(f"{workdir}/config.json: unknown fields {unknown}")
  config.update(saved)
  return config


def parse_checkpoint(spec: str) -> tuple[str, int | None]:
  """"best" | "latest" | a step number -> (kind, step)."""
  if spec in ("best", "latest"):
    return spec, None
  if str(spec).isdigit():
    return "step", int(spec)
  raise ConfigError(f"--checkpoint={spec!r}: expected best, latest or a step number")


def load_run(workdir: str, checkpoint: str = "best", data_overrides: dict | None = None) -> TrainedRun:
  """Restores the parameters of `checkpoint` (best, latest or a step) of the run in workdir.

  `data_overrides` replaces where the run's data is ({"data_dir": ..., "landmarks_dir": ...,
  "gemma_features_dir": ...}; empty values keep the saved ones), for data that moved since training."""
  if not os.path.isdir(workdir):
    raise CheckpointError(f"{workdir}: workdir not found")
  config = load_config(workdir)
  for key, value in (data_overrides or {}).items():
    if value:
      if key == "gemma_features_dir" and not config[key]:
        raise ConfigError(f"--{key}: the run in {workdir} was trained without visual features")
      config[key] = value
  mapping = _read_json(os.path.join(workdir, "label_mapping.json"), "the class names")
  glosses = tuple(mapping[str(i)] for i in range(len(mapping)))
  spec = run_lib.InputSpec.load(workdir)
  model = models.create_model(config, len(glosses), use_landmarks=spec.use_landmarks, use_visual=spec.use_visual)
  name = run_lib.eval_params_name(config)
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                                    run_lib.abstract_params(config, model, spec))
  ckpts = Checkpoints(workdir, read_only=True)
  try:
    kind, step = parse_checkpoint(checkpoint)
    if kind == "step":
      kind = next((k for k in ("latest", "best") if step in ckpts.all_steps(k)), None)
      if kind is None:
        raise CheckpointError(f"{workdir}: no checkpoint at step {step} (latest: {ckpts.all_steps('latest')}, "
                              f"best: {ckpts.all_steps('best')})")
    params, step = ckpts.restore_subtree(kind, name, abstract, step)
  finally:
    ckpts.close()
  model = run_lib.with_head_weights(config, model, workdir, step)
  norm = run_lib.load_visual_norm(workdir) if spec.use_visual and config.visual_standardize else None
  return TrainedRun(workdir, config, model, params, step, glosses, spec, norm)
