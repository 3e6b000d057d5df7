"""Every field of asl_jax's configuration with its default and meaning, flat (the seed's flag names where
it had one), grouped in sections; `scripts/train.py --list_config` prints this table.

Config files in configs/ start from `default_config()`; override any field on the command line with
`--config.FIELD=VALUE`. Unknown fields are rejected.
"""

from __future__ import annotations

import difflib
from typing import Any, NamedTuple

import ml_collections

from asl_jax.data.layouts import LAYOUT_DIMS
from asl_jax.errors import ConfigError

# Per-frame landmark feature blocks (asl_jax/data/landmark_features.py), in their canonical order.
FEATURE_BLOCKS = ("pos", "hand", "shape", "vel", "acc", "presence")
# The scalar metrics of an evaluation (metrics.jsonl keys are prefix_NAME, e.g. val_top1).
METRICS = ("loss", "top1", "top5", "class_top1", "class_top5")


class Field(NamedTuple):
  name: str
  default: Any
  help: str
  choices: tuple | None = None


SECTIONS: dict[str, tuple[Field, ...]] = {
    "data (seed: --data_dir, --subset, --landmarks_dir, --gemma_features_dir, --gemma_feature_dim, "
    "--num_frames)": (
        Field("dataset", "wlasl", "wlasl: an nslt split file and per-clip feature files; kaggle_islr: Google's "
              "ISLR 2023 layout in data_dir as it comes (train.csv, train_landmark_files/, "
              "sign_to_prediction_index_map.json), split by signer; asl_citizen: ASL Citizen's splits/{train,val,test}.csv, landmarks extracted from its videos "
              "(scripts/extract_landmarks.py --dataset=asl_citizen)", ("wlasl", "kaggle_islr", "asl_citizen")),
        Field("data_dir", "data/wlasl", "directory of the split file and wlasl_class_list.txt"),
        Field("subset", "nslt_100.json", "the split file: {video_id: {subset, action: [class, start, end]}}"),
        Field("landmarks_dir", "", "directory of the landmark files (empty: DATA_DIR/landmarks)"),
        Field("landmarks_pattern", "{id}_landmarks.npy", "landmark file name of a clip ({id}: its video id; "
              "{id}.npy for sets named by id alone)"),
        Field("gemma_pattern", "{id}_gemma.npy", "visual feature file name of a clip ({id}: its video id)"),
        Field("gemma_features_dir", "", "directory of {id}_gemma.npy visual features (empty: landmarks only)"),
        Field("gemma_feature_dim", 0, "visual feature size (0: from extraction_metadata.json or the files)"),
        Field("val_participants", "", "kaggle_islr: the signers (participant_id, comma-separated) held out "
              "for val (empty: a seeded tenth of them, data/splits.py)"),
        Field("test_participants", "", "kaggle_islr: the signers held out for test (empty: a seeded 15 %)"),
        Field("landmark_layout", "auto", "layout of the landmark files (auto: from their width)",
              ("auto", *LAYOUT_DIMS)),
        Field("num_frames", 16, "frames the model sees per clip"),
        Field("max_frames", 64, "frames stored per clip (longer clips are resampled uniformly when packed)"),
        Field("features", "pos,presence", "per-frame landmark features derived on device after augmentation: "
              "a comma-separated subset of pos, hand, vel, acc, presence (pos,presence with use_z = the "
              "seed's 166 values)"),
        Field("use_z", True, "include MediaPipe's relative depth in every feature block"),
        Field("trim_no_hands", False, "sample frames only between the first and last frame with a hand"),
        Field("train_subsets", "train", "what to train on (train+val: the I3D convention)", ("train", "train+val")),
        Field("on_bad_file", "error", "unreadable / NaN / wrong-shape clips: stop, or skip them (listed in "
              "the data report)", ("error", "skip")),
        Field("cache_dir", "", "packed-array cache (empty: $ASL_JAX_CACHE or ~/.cache/asl_jax; none: off)"),
    ),
    "model (seed: --hidden_dim, --fusion_type, --dropout)": (
        Field("encoder", "lstm", "landmark encoder", ("lstm", "transformer", "conv_transformer")),
        Field("hidden_dim", 512, "width of the encoders, fusion and head"),
        Field("dropout", 0.5, "dropout outside the Transformer layers"),
        Field("fusion_type", "concat", "how the landmark and visual streams are combined",
              ("concat", "attention", "gated")),
        Field("use_landmarks", True, "False with gemma_features_dir: a visual-only model"),
        Field("visual_stream", "seed", "seed: projections + self-attention; linear: the time-mean of the "
              "features itself (a linear probe when visual-only)", ("seed", "linear")),
        Field("visual_standardize", False, "standardise visual features with training-set statistics (saved "
              "with the run)"),
        Field("visual_dropout", 0.1, "linear stream: dropout on the input features"),
        Field("aux_loss_weight", 0.0, "> 0 with both streams: a linear head per stream, its loss added with "
              "this weight; predictions multiply the three heads"),
        Field("fit_head_weights", False, "with per-stream heads: after training, weigh the three heads' "
              "log-probabilities to minimise the val loss (DIR/head_weights.json; a stream without signal "
              "gets ~0)"),
        Field("modality_dropout", 0.0, "training with both streams: per clip, drop one stream (p/2 each)"),
        Field("fusion_residual", False, "fused = landmark vector + zero-initialised projection of the fusion"),
        Field("lstm_layers", 2, "lstm: bidirectional layers"),
        Field("transformer_layers", 2, "transformer / conv_transformer: Transformer blocks"),
        Field("num_heads", 4, "attention heads (hidden_dim must be divisible by it)"),
        Field("ff_mult", 4, "Transformer feed-forward width / hidden_dim"),
        Field("pooling", "mean", "transformer: how the sequence is pooled", ("mean", "cls")),
        Field("transformer_dropout", 0.1, "dropout inside the Transformer layers"),
        Field("lstm_matmul_dtype", "float32", "lstm: bfloat16 matmuls with float32 accumulation (faster on "
              "CPUs with AVX512-BF16 and on GPUs)", ("float32", "bfloat16")),
        Field("conv_kernel", 17, "conv_transformer: temporal kernel of the depthwise convolutions"),
        Field("conv_layers", 3, "conv_transformer: convolution blocks before each Transformer block"),
        Field("drop_path", 0.1, "conv_transformer: stochastic depth of the last block (linear from 0)"),
        Field("head_norm", "none", "the classifier's last layer: none (a Dense layer) or cosine (the cosine of "
              "the unit embedding and unit class vectors, times a learned scale, plus a bias)", ("none", "cosine")),
        Field("head_layers", 0, "hidden layers of the classifier head (0: by class count, 1 up to 500 "
              "classes, 2 above; -1: none, the last layer on the encoder's pooled output itself; asl-enroll "
              "fixes it so that added classes keep the base's head)"),
    ),
    "optimisation (seed: --batch_size, --epochs, --lr, --weight_decay, --seed, --label_smoothing, "
    "--warmup_epochs, --use_class_weights, --balanced_sampling)": (
        Field("batch_size", 32, "global batch (split over the devices; capped at the training-set size)"),
        Field("epochs", 100, "training epochs"),
        Field("lr", 1e-4, "peak learning rate (AdamW)"),
        Field("weight_decay", 1e-4, "AdamW decoupled weight decay"),
        Field("weight_decay_on", "all", "what the weight decay shrinks: all parameters (the seed's) or the "
              "weight matrices only (no biases or LayerNorm scales)", ("all", "matrices")),
        Field("grad_clip", 1.0, "global gradient-norm clip (0: off)"),
        Field("warmup_epochs", 5, "linear warmup epochs before the cosine decay (clamped to epochs)"),
        Field("min_lr_ratio", 0.0, "the cosine decays to lr * min_lr_ratio"),
        Field("label_smoothing", 0.1, "label smoothing of the cross-entropy"),
        Field("supcon_weight", 0.0, "> 0: each training batch is seen in two augmented views, and this weight "
              "times the supervised contrastive loss of their embeddings (the last layer's input) is added to the "
              "cross-entropy of both views (a step costs about twice as much)"),
        Field("supcon_temperature", 0.1, "the temperature of the supervised contrastive loss"),
        Field("outlier_gloss", "", "a class whose clips are outliers: trained towards the uniform distribution "
              "over the other classes (outlier exposure) instead of towards their own label (its column stays in the "
              "run, with next to no probability); '' for none"),
        Field("use_class_weights", False, "weight the loss by inverse class frequency (the seed's weights)"),
        Field("class_weights_start_epoch", 0, "epochs trained without the class weights before they apply "
              "(0: from the start, as the seed; deferred re-weighting, docs/results.md, \"Class weights\")"),
        Field("balanced_sampling", False, "sample training clips class-balanced instead of shuffling"),
        Field("ema_decay", 0.0, "> 0: keep an exponential moving average of the weights; validate, test, "
              "predict and export it"),
        Field("seed", 42, "seeds initialisation, data order, augmentation and dropout"),
        Field("dropout_rng", "threefry", "the generator of the dropout masks: threefry (jax's default) or rbg "
              "(XLA's RngBitGenerator: the same kind of masks, other draws, a cheaper step on CPU)",
              ("threefry", "rbg")),
        Field("init_from", "", "start from a trained run's parameters: its directory, or wlasl100 (the shipped "
              "model); the classifier is new when the classes differ (fine-tuning)"),
    ),
    "augmentation (seed: --no_augmentation, --temporal_jitter, --feature_dropout, --feature_noise, "
    "--temporal_mask_prob, --landmark_jitter; 0 disables one)": (
        Field("augmentation", True, "False: no augmentation at all"),
        Field("temporal_jitter", True, "swap adjacent sampled frames at random"),
        Field("temporal_crop_prob", 0.3, "probability of training on a random temporal crop"),
        Field("crop_min", 0.7, "shortest crop, as a fraction of the clip"),
        Field("speed_range", 0.2, "random playback speed change, +-"),
        Field("temporal_mask_prob", 0.1, "probability per frame of masking it out"),
        Field("feature_dropout", 0.1, "probability per coordinate of zeroing it for the whole clip"),
        Field("feature_noise", 0.05, "Gaussian noise on the visual features (standard deviations when "
              "standardised)"),
        Field("landmark_jitter", 0.02, "Gaussian noise on the landmark points (body units)"),
        Field("flip_prob", 0.0, "probability of mirroring a clip (left- <-> right-handed signer)"),
        Field("affine_prob", 0.5, "probability of a random affine transform of the points"),
        Field("affine_scale", 0.1, "affine: scale change, +-"),
        Field("affine_rotate", 10.0, "affine: rotation, +- degrees"),
        Field("affine_shear", 0.05, "affine: shear, +-"),
        Field("affine_shift", 0.05, "affine: shift, +- body units"),
        Field("mixup_prob", 0.0, "probability per training batch of mixup: every clip's features are blended "
              "with another clip's of the batch, and so are their losses"),
        Field("mixup_alpha", 0.4, "mixup: the blend weight lambda ~ Beta(alpha, alpha), folded to >= 0.5"),
    ),
    "run": (
        Field("eval_batch_size", 0, "batch size of validation and evaluation (0: the larger of the val and test "
              "splits rounded up to a multiple of 8, at most 256, in training; 256 elsewhere)"),
        Field("tta_flip", False, "evaluation and prediction average the clip and its mirror image"),
        Field("best_metric", "val_top1", "the metric that picks the best checkpoint (higher is better except "
              "val_loss)", tuple(f"val_{m}" for m in METRICS)),
        Field("max_to_keep", 2, "latest checkpoints kept"),
        Field("checkpoint_every", 1, "epochs between saves of the latest checkpoint, the best epoch's weights "
              "written with it (the last epoch and a SIGTERM / Ctrl-C always save)"),
        Field("checkpoint_min_interval_s", 60.0, "and at least this many seconds between them (a kill -9 costs "
              "the training since the last save: at most max(checkpoint_every epochs, this + 1 epoch))"),
        Field("async_checkpoints", True, "checkpoints are written in the background while the next epoch trains"),
        Field("best_checkpoint", "weights", "what the best checkpoint holds: the weights inference reads, or the "
              "whole training state (optimiser moments too: 4x the bytes)", ("weights", "state")),
        Field("background_validation", True, "an epoch that saves no checkpoint is validated on a worker thread "
              "while the next one trains (one device, one process, best_checkpoint=weights; the same results)"),
        Field("eval_every", 1, "epochs between validations (the last epoch is always validated; the best "
              "checkpoint is chosen among the validated epochs)"),
        Field("log_every", 50, "steps between progress-bar refreshes (each one waits for the device)"),
        Field("progress_bar", True, "show a progress bar per epoch"),
        Field("evaluate_test", True, "evaluate the best checkpoint on the test split at the end"),
        Field("distributed", False, "multi-host: call jax.distributed.initialize (docs/training.md)"),
        Field("coordinator_address", "", "multi-host: the coordinator's host:port"),
        Field("num_processes", 0, "multi-host: processes (0: from the environment, e.g. SLURM)"),
        Field("process_id", -1, "multi-host: this process (-1: from the environment)"),
    ),
}
FIELDS: dict[str, Field] = {f.name: f for fields in SECTIONS.values() for f in fields}
CHOICES = {f.name: f.choices for f in FIELDS.values() if f.choices}


def default(name: str):
  """A field's default: what the dataclasses that consume the config (DataSpec, AugmentConfig,
  FeatureConfig, HybridModel) use as their own defaults, so every default is written once, here."""
  return FIELDS[name].default


def choices(name: str) -> tuple:
  return FIELDS[name].choices


def pick(config, names: dict[str, str]) -> dict:
  """{consumer field: config[config field]} for a consumer's {its field: config field} map. Strict: a
  missing config field is a KeyError, never a silent default (saved configs are completed with today's
  defaults when they are read)."""
  return {mine: config[theirs] for mine, theirs in names.items()}


def parse_blocks(features: str) -> tuple[str, ...]:
  """"pos, hand,vel" -> ("pos", "hand", "vel"), in the canonical order; raises ValueError on unknown or
  empty names."""
  names = [s.strip() for s in str(features).split(",") if s.strip()]
  unknown = sorted(set(names) - set(FEATURE_BLOCKS))
  if unknown or not names:
    raise ValueError(f"features={features!r}: expected a comma-separated subset of {list(FEATURE_BLOCKS)}")
  return tuple(b for b in FEATURE_BLOCKS if b in names)


def default_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  for f in FIELDS.values():
    c[f.name] = f.default
  return c


def describe(config=None) -> str:
  """Every field grouped by section: name, value (the config's, else the default), meaning, choices."""
  lines = []
  for section, fields in SECTIONS.items():
    lines.append(f"\n{section}:")
    for f in fields:
      value = f.default if config is None else config[f.name]
      changed = "" if value == f.default else f"  (default {f.default!r})"
      choices = f"  [{' | '.join(f.choices)}]" if f.choices else ""
      lines.append(f"  {f.name} = {value!r}{changed}\n      {f.help}{choices}")
  return "\n".join(lines).lstrip("\n")


def closest_field(name: str) -> str | None:
  """The valid field closest to a misspelled one, or None."""
  match = difflib.get_close_matches(name, FIELDS, n=1, cutoff=0.6)
  return match[0] if match else None


# Fields that may change when a run resumes in the same workdir; any other difference is a conflict.
RESUME_SAFE_FIELDS = frozenset({
    "cache_dir", "log_every", "progress_bar", "eval_batch_size", "evaluate_test", "distributed",
    "coordinator_address", "num_processes", "process_id", "max_to_keep", "data_dir", "landmarks_dir",
    "checkpoint_every", "checkpoint_min_interval_s", "async_checkpoints", "best_checkpoint",
    "background_validation", "gemma_features_dir", "fit_head_weights",
    "epochs",  # may grow on a finished or interrupted run (train._check_epochs): the schedule is re-planned
})


def validate(config) -> None:
  """Rejects impossible values with one message naming the field."""
  for field, choices in CHOICES.items():
    if config[field] not in choices:
      raise ConfigError(f"config.{field}={config[field]!r}: expected one of {list(choices)}")
  for field in ("batch_size", "epochs", "num_frames", "max_frames", "hidden_dim", "checkpoint_every",
                "eval_every", "max_to_keep"):
    if int(config[field]) < 1:
      raise ConfigError(f"config.{field}={config[field]!r}: must be >= 1")
  try:
    parse_blocks(config.features)
  except ValueError as e:
    raise ConfigError(f"config.{e}") from None
  if config.eval_batch_size < 0:
    raise ConfigError(f"config.eval_batch_size={config.eval_batch_size}: must be >= 1, or 0 for automatic")
  if not 0 <= config.ema_decay < 1:
    raise ConfigError(f"config.ema_decay={config.ema_decay}: must be in [0, 1)")
  if config.head_layers not in (-1, 0, 1, 2):
    raise ConfigError(f"config.head_layers={config.head_layers}: expected 0 (by class count), 1, 2 or -1 (none)")
  for field in ("conv_kernel", "conv_layers"):
    if int(config[field]) < 1:
      raise ConfigError(f"config.{field}={config[field]!r}: must be >= 1")
  if config.aux_loss_weight < 0:
    raise ConfigError(f"config.aux_loss_weight={config.aux_loss_weight}: must be >= 0")
  for field in ("dropout", "transformer_dropout", "drop_path", "visual_dropout", "modality_dropout"):
    if not 0 <= config[field] < 1:
      raise ConfigError(f"config.{field}={config[field]}: must be in [0, 1)")
  if config.max_frames < config.num_frames:
    raise ConfigError(f"config.max_frames={config.max_frames} is below config.num_frames={config.num_frames}: "
                      "clips are stored with at most max_frames frames, so the model could never see num_frames")
  if not 0 <= config.mixup_prob <= 1:
    raise ConfigError(f"config.mixup_prob={config.mixup_prob}: must be in [0, 1]")
  if config.mixup_alpha <= 0:
    raise ConfigError(f"config.mixup_alpha={config.mixup_alpha}: must be > 0")
  if config.supcon_weight < 0 or not config.supcon_temperature > 0:
    raise ConfigError(f"config.supcon_weight={config.supcon_weight}, config.supcon_temperature="
                      f"{config.supcon_temperature}: the weight must be >= 0 and the temperature > 0")
  if config.supcon_weight > 0 and not config.use_landmarks and config.visual_stream == "linear":
    raise ConfigError("config.supcon_weight > 0 contrasts the embedding under the classifier head, and a model of "
                      "visual features alone with visual_stream=linear has none (its head is one linear layer)")
  if not 0 <= config.label_smoothing < 1:
    raise ConfigError(f"config.label_smoothing={config.label_smoothing}: must be in [0, 1)")
  import math  # pylint: disable=import-outside-toplevel
  for field in FIELDS:  # NaN passes every comparison below, so no float field may be NaN or infinite
    if isinstance(config[field], float) and not math.isfinite(config[field]):
      raise ConfigError(f"config.{field}={config[field]}: must be a finite number")
  if not config.lr > 0:
    raise ConfigError(f"config.lr={config.lr}: must be > 0")
  for field in ("temporal_crop_prob", "temporal_mask_prob", "feature_dropout", "flip_prob", "affine_prob"):
    if not 0 <= config[field] <= 1:
      raise ConfigError(f"config.{field}={config[field]}: a probability, must be in [0, 1]")
  if not 0 < config.crop_min <= 1:
    raise ConfigError(f"config.crop_min={config.crop_min}: a fraction of the clip, must be in (0, 1]")
  if not 0 <= config.speed_range < 1:
    raise ConfigError(f"config.speed_range={config.speed_range}: must be in [0, 1) (a speed of 1 - speed_range "
                      "must stay above 0)")
  for field in ("feature_noise", "landmark_jitter", "affine_scale", "affine_rotate", "affine_shear",
                "affine_shift", "weight_decay", "grad_clip", "min_lr_ratio", "checkpoint_min_interval_s"):
    if config[field] < 0:
      raise ConfigError(f"config.{field}={config[field]}: must be >= 0")
  if config.warmup_epochs < 0:  # more than `epochs` is clamped (a shortened trial run of a long recipe)
    raise ConfigError(f"config.warmup_epochs={config.warmup_epochs}: must be >= 0")
  if not 0 <= config.class_weights_start_epoch < config.epochs:
    raise ConfigError(f"config.class_weights_start_epoch={config.class_weights_start_epoch}: must be in "
                      f"[0, epochs={config.epochs})")
  if config.hidden_dim % config.num_heads:
    raise ConfigError(f"config.hidden_dim={config.hidden_dim} must be divisible by num_heads={config.num_heads}")
  for field in ("landmarks_pattern", "gemma_pattern"):
    pattern = config[field]
    if pattern.count("{id}") != 1 or "/" in pattern or not pattern.endswith(".npy") or (
        pattern.replace("{id}", "").count("{") or pattern.replace("{id}", "").count("}")):
      raise ConfigError(f"config.{field}={pattern!r}: expected a file name with {{id}} once, ending in .npy "
                        "(e.g. {id}_landmarks.npy or {id}.npy)")
  if config.landmarks_pattern == config.gemma_pattern:
    raise ConfigError(f"config.landmarks_pattern and config.gemma_pattern are both {config.gemma_pattern!r}")
  if not config.use_landmarks and not config.gemma_features_dir:
    raise ConfigError("config.use_landmarks=False needs visual features: set config.gemma_features_dir")


def resume_conflicts(saved: dict, config) -> list[str]:
  """Fields whose value differs between a workdir's saved config and the new one. A field the saved
  config lacks (written before the field existed) counts as its default, which is what that run used."""
  new = config.to_dict()
  saved = {**{k: v for k, v in default_config().to_dict().items() if k not in saved}, **saved}
  out = []
  for k in sorted(set(saved) | set(new)):
    if k in RESUME_SAFE_FIELDS:
      continue
    if saved.get(k, "<missing>") != new.get(k, "<missing>"):
      out.append(f"{k}: saved {saved.get(k, '<missing>')!r}, now {new.get(k, '<missing>')!r}")
  return out


def load_config_file(path: str):
  """`get_config()` of a config file given by path (what `--config=path` does in the scripts)."""
  import importlib.util  # pylint: disable=import-outside-toplevel
  import os  # pylint: disable=import-outside-toplevel
  if not os.path.isfile(path):
    raise ConfigError(f"{path}: config file not found")
  spec = importlib.util.spec_from_file_location(f"asl_jax_config_{abs(hash(path))}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()
