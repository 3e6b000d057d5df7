"""A trained run directory, restored for inference: its saved config, class names, input spec, visual
statistics and the parameters it evaluates (read alone from the checkpoint, without the optimiser state)."""

from __future__ import annotations

import dataclasses
import os

import jax
import ml_collections

from asl_jax import config as config_lib, models
from asl_jax.data import landmark_features
from asl_jax.errors import CheckpointError, ConfigError
from asl_jax.runs.checkpoints import Checkpoints, eval_params_name
from asl_jax.runs.run_dir import CONFIG_FILE, HEAD_WEIGHTS_FILE, InputSpec, RunDir


@dataclasses.dataclass
class TrainedRun:
  workdir: str
  config: ml_collections.ConfigDict
  model: models.HybridModel
  params: dict  # the weights to evaluate (the EMA ones when the run keeps them)
  step: int
  glosses: tuple[str, ...]
  spec: InputSpec
  visual_norm: tuple | None = None  # (mean, std) standardising the visual features, if the run used it
  calibration: dict | None = None  # DIR/calibration.json (its temperature is the model's already), if any

  @property
  def layout(self) -> str:
    return self.spec.layout

  @property
  def visual_dim(self) -> int:
    return self.spec.visual_dim

  @property
  def unknown_threshold(self) -> float | None:
    """The top-1 probability under which a prediction is an unknown sign (None: the run has no threshold)."""
    return None if self.calibration is None else self.calibration.get("unknown_threshold")


def split_workdirs(workdirs) -> list[str]:
  """"a,b" or ["a", "b"] -> ["a", "b"] (an ensemble); one workdir -> [it]."""
  items = workdirs.split(",") if isinstance(workdirs, str) else list(workdirs)
  return [w.strip() for w in items if w.strip()]


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The run's saved config, on top of today's defaults (fields added since keep their defaults); a damaged
  or edited file is one error naming it and the field."""
  run = RunDir(workdir)
  path, saved = run.file(CONFIG_FILE), run.config_dict()
  config = config_lib.default_config()
  unknown = sorted(set(saved) - set(config))
  if unknown:
    raise ConfigError(f"{path}: unknown fields {unknown}; the file was edited, or belongs to something else")
  for key, value in saved.items():
    try:
      config[key] = value
    except (TypeError, ValueError) as e:  # ml_collections refuses a value of another type
      raise ConfigError(f"{path}: field {key}={value!r} has the wrong type ({e}); set it back to a "
                        f"{type(config[key]).__name__}") from None
  try:
    config_lib.validate(config)
  except ConfigError as e:
    raise ConfigError(f"{path}: {e}") from None
  return config


def abstract_params(config, model: models.HybridModel, spec: InputSpec):
  """The shapes of the weights a run evaluates (the EMA ones when it keeps them), without computing them:
  what load_run reads from a checkpoint (parameters only, no optimiser state)."""
  feature_dim = landmark_features.FeatureConfig.from_config(config).dim
  batch = models.hybrid.example_batch(1, config.num_frames, feature_dim, spec.visual_dim)
  return jax.eval_shape(lambda: model.init({"params": jax.random.key(0), "dropout": jax.random.key(0)}, batch,
                                           train=False)["params"])


def fits_head_weights(config, model: models.HybridModel) -> bool:
  """Whether a run weighs its heads with weights fitted on val: per-stream heads and config.fit_head_weights."""
  return bool(config.fit_head_weights and model.stream_heads)


def with_head_weights(config, model: models.HybridModel, run: RunDir, step: int) -> models.HybridModel:
  """The model with the run's fitted head weights, when it fits them (`fits_head_weights`) and has; they
  belong to the checkpoint they were fitted for, so another step is refused."""
  fitted = run.head_weights(len(models.hybrid.HEAD_NAMES)) if fits_head_weights(config, model) else None
  if fitted is None:
    return model
  if fitted.get("step") is not None and int(fitted["step"]) != int(step):
    raise CheckpointError(f"{run.file(HEAD_WEIGHTS_FILE)}: the head weights were fitted for the best "
                          f"checkpoint (step {fitted['step']}), not for step {step}: use --checkpoint=best")
  return model.clone(head_weights=tuple(fitted["weights"]))


# Config fields that shape the parameters: the ones to name when a checkpoint does not fit its config.json.
SHAPE_FIELDS = ("encoder", "hidden_dim", "lstm_layers", "transformer_layers", "conv_layers", "conv_kernel",
                "num_heads", "ff_mult", "pooling", "head_layers", "head_norm", "features", "use_z", "visual_stream",
                "fusion_type", "aux_loss_weight", "fusion_residual")


def _check_shapes(ckpts: Checkpoints, kind: str, name: str, abstract, step, workdir: str, config) -> None:
  """A checkpoint whose parameter shapes differ from the model config.json describes (an edited config) is
  one error naming the first differing parameter and the fields that shape it."""
  saved = ckpts.param_shapes(kind, name, step)
  if saved is None:  # no metadata to compare: the restore itself reports
    return
  flat = {k: tuple(v.shape) for k, v in models.named_leaves(abstract).items()}
  for key in sorted(set(flat) | set(saved)):
    if flat.get(key) != saved.get(key):
      fields = ", ".join(f"{f}={config[f]!r}" for f in SHAPE_FIELDS)
      raise ConfigError(f"{os.path.join(workdir, CONFIG_FILE)} does not describe the model in its checkpoint: "
                        f"parameter {key} is {saved.get(key, 'absent')} there, {flat.get(key, 'absent')} by "
                        f"{CONFIG_FILE} ({fields}); undo the edit of {CONFIG_FILE}")


def parse_checkpoint(checkpoint: str) -> tuple[str, int | None]:
  """"best" | "latest" | a step number -> (kind, step)."""
  if checkpoint in ("best", "latest"):
    return checkpoint, None
  if str(checkpoint).isdigit():
    return "step", int(checkpoint)
  raise ConfigError(f"--checkpoint={checkpoint!r}: expected best, latest or a step number")


def load_run(workdir: str, checkpoint: str = "best", data_overrides: dict | None = None) -> TrainedRun:
  """Restores the parameters of `checkpoint` (best, latest or a step) of the run in workdir.

  `data_overrides` replaces where the run's data is ({"data_dir": ..., "landmarks_dir": ...,
  "gemma_features_dir": ...}; empty values keep the saved ones), for data that moved since training."""
  RunDir(workdir).require()
  config = load_config(workdir)
  for key, value in (data_overrides or {}).items():
    if value:
      if key == "gemma_features_dir" and not config[key]:
        raise ConfigError(f"--{key}: the run in {workdir} was trained without visual features")
      config[key] = value
  run = RunDir(workdir)
  glosses, spec = run.glosses(), run.input_spec()
  model = models.create_model(config, len(glosses), use_landmarks=spec.use_landmarks, use_visual=spec.use_visual)
  name = eval_params_name(config)
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                                    abstract_params(config, model, spec))
  ckpts = Checkpoints(workdir, read_only=True)
  try:
    kind, step = parse_checkpoint(checkpoint)
    if kind == "step":
      kind = next((k for k in ("latest", "best") if step in ckpts.all_steps(k)), None)
      if kind is None:
        raise CheckpointError(f"{workdir}: no checkpoint at step {step} (latest: {ckpts.all_steps('latest')}, "
                              f"best: {ckpts.all_steps('best')})")
    _check_shapes(ckpts, kind, name, abstract, step, workdir, config)
    params, step = ckpts.restore_subtree(kind, name, abstract, step)
  finally:
    ckpts.close()
  model = with_head_weights(config, model, run, step)
  cal = run.calibration()
  if cal is not None:
    model = model.clone(temperature=cal["temperature"])
  norm = run.visual_norm() if spec.use_visual and config.visual_standardize else None
  return TrainedRun(workdir, config, model, params, step, glosses, spec, norm, cal)
