"""Every field of asl_jax's configuration with its default, flat (the seed's flag names where it had one).

Config files in configs/ start from `default_config()`; override any field on the command line with
`--config.FIELD=VALUE`. Unknown fields are rejected.
"""

import ml_collections


def default_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  # Data (seed: --data_dir, --subset, --landmarks_dir, --gemma_features_dir, --gemma_feature_dim,
  # --num_frames). gemma_features_dir empty = landmarks only; gemma_feature_dim 0 = from
  # extraction_metadata.json or whatever all files agree on.
  c.data_dir = "data/wlasl"
  c.subset = "nslt_100.json"
  c.landmarks_dir = ""  # empty: {data_dir}/landmarks
  c.gemma_features_dir = ""
  c.gemma_feature_dim = 0
  c.landmark_layout = "auto"  # auto | seed162 | holistic170 | holistic543
  c.num_frames = 16  # frames the model sees per clip
  c.max_frames = 64  # frames stored per clip (longer clips are resampled uniformly when packed)
  # Per-frame landmark features, derived on device after augmentation (asl_jax/landmark_features.py):
  # a comma-separated subset of pos, hand, vel, acc, presence. "pos,presence" with use_z is the seed's
  # input (166 values); the recommended configs use "pos,hand,vel,presence" without z.
  c.features = "pos,presence"
  c.use_z = True  # MediaPipe's relative depth in every block
  c.trim_no_hands = False  # sample frames only between the first and last frame with a detected hand
  c.train_subsets = "train"  # or "train+val" (the I3D convention)
  c.on_bad_file = "error"  # or "skip": drop unreadable / NaN / wrong-shape clips, listed in the data report
  c.cache_dir = ""  # packed-array cache; empty: $ASL_JAX_CACHE or ~/.cache/asl_jax; "none" disables

  # Model (seed: --hidden_dim, --fusion_type, --dropout).
  c.encoder = "lstm"  # lstm | transformer | conv_transformer
  c.hidden_dim = 512
  c.dropout = 0.5
  c.fusion_type = "concat"  # concat | attention | gated (used when visual features are given)
  c.use_landmarks = True  # False with gemma_features_dir set: visual-only model
  # The visual stream (README, "Visual features and fusion"): seed = the seed's projections + self-attention;
  # pooled = one per-frame projection and a masked mean over time, then LayerNorm + gelu; linear = the same
  # without anything after the mean (a visual-only model's head is then one Dense layer: a linear probe on
  # the time-mean), which learns a weak signal best.
  c.visual_stream = "seed"
  c.visual_standardize = False  # standardise visual features with training-set statistics (saved with the run)
  c.visual_dropout = 0.1  # pooled stream: dropout on the (standardised) input features
  c.aux_loss_weight = 0.0  # > 0 (both streams): a linear head per stream, its loss added with this weight
  c.modality_dropout = 0.0  # training, both streams: per clip, drop the visual or the landmark stream
  c.fusion_residual = False  # fused = landmark vector + zero-initialised projection of the fusion output
  c.lstm_layers = 2
  c.transformer_layers = 2
  c.num_heads = 4
  c.ff_mult = 4
  c.pooling = "mean"  # mean | cls (transformer)
  c.transformer_dropout = 0.1  # inside the Transformer encoder's layers; `dropout` everywhere else
  # float32 | bfloat16: the LSTM's matmuls (most of its FLOPs) in bfloat16 with float32 accumulation and
  # float32 parameters; 1.9x faster steps on CPUs with AVX512-BF16 (README, "Performance").
  c.lstm_matmul_dtype = "float32"
  c.conv_kernel = 17  # conv_transformer: temporal kernel of the depthwise convolutions
  c.conv_layers = 3  # conv_transformer: convolution blocks before each Transformer block
  c.drop_path = 0.1  # conv_transformer: stochastic depth of the last block (linear from 0)

  # Optimisation (seed: --batch_size, --epochs, --lr, --weight_decay, --seed, --label_smoothing,
  # --warmup_epochs, --use_class_weights / --no_class_weights, --balanced_sampling).
  c.batch_size = 32
  c.epochs = 100
  c.lr = 1e-4
  c.weight_decay = 1e-4
  c.grad_clip = 1.0  # global gradient-norm clip; 0 turns it off
  c.warmup_epochs = 5
  c.min_lr_ratio = 0.0  # the cosine decays to lr * min_lr_ratio
  c.label_smoothing = 0.1
  c.use_class_weights = False
  # Epoch (0-based) from which the class weights apply; before it the loss is unweighted. 0 = from the
  # start, as the seed. Deferring them to the last epochs (deferred re-weighting, Cao et al. 2019) lets the
  # encoder learn from every clip at full weight first; README "Class weights: does the seed's claim hold?".
  c.class_weights_start_epoch = 0
  c.balanced_sampling = False
  c.ema_decay = 0.0  # > 0: keep an exponential moving average of the weights; validate, test, export it
  c.seed = 42

  # Augmentation (seed: --no_augmentation, --temporal_jitter, --feature_dropout, --feature_noise,
  # --temporal_mask_prob, --landmark_jitter), plus the Kaggle ISLR 2023 ones. 0 disables one.
  c.augmentation = True
  c.temporal_jitter = True
  c.temporal_crop_prob = 0.3
  c.crop_min = 0.7
  c.speed_range = 0.2
  c.temporal_mask_prob = 0.1
  c.feature_dropout = 0.1
  c.feature_noise = 0.05
  c.landmark_jitter = 0.02
  c.flip_prob = 0.0  # opt-in: mirrors signers (left-handed <-> right-handed); hurt on small real sets
  c.affine_prob = 0.5
  c.affine_scale = 0.1
  c.affine_rotate = 10.0
  c.affine_shear = 0.05
  c.affine_shift = 0.05

  # Run.
  c.eval_batch_size = 256
  c.tta_flip = False  # evaluation and prediction average the clip and its mirror image
  c.best_metric = "val_top1"  # any val_* key of metrics.jsonl; higher is better except val_loss
  c.max_to_keep = 2
  c.log_every = 50  # steps between progress-bar refreshes (each one waits for the device)
  c.progress_bar = True
  c.evaluate_test = True  # evaluate the best checkpoint on the test split at the end
  c.distributed = False  # multi-host: call jax.distributed.initialize (see README)
  c.coordinator_address = ""
  c.num_processes = 0  # 0: from the environment (SLURM, ...)
  c.process_id = -1
  return c


# Fields that may change when a run resumes in the same workdir; any other difference is a conflict.
RESUME_SAFE_FIELDS = frozenset({
    "cache_dir", "log_every", "progress_bar", "eval_batch_size", "evaluate_test", "distributed",
    "coordinator_address", "num_processes", "process_id", "max_to_keep", "data_dir", "landmarks_dir",
    "gemma_features_dir",
})
CHOICES = {
    "encoder": ("lstm", "transformer", "conv_transformer"), "fusion_type": ("concat", "attention", "gated"),
    "landmark_layout": ("auto", "seed162", "holistic170", "holistic543"),
    "train_subsets": ("train", "train+val"), "on_bad_file": ("error", "skip"), "pooling": ("mean", "cls"),
    "lstm_matmul_dtype": ("float32", "bfloat16"), "visual_stream": ("seed", "pooled", "linear"),
}


def validate(config) -> None:
  """Rejects impossible values with one message naming the field."""
  from asl_jax.errors import ConfigError  # pylint: disable=import-outside-toplevel
  for field, choices in CHOICES.items():
    if config[field] not in choices:
      raise ConfigError(f"config.{field}={config[field]!r}: expected one of {list(choices)}")
  for field in ("batch_size", "epochs", "num_frames", "max_frames", "hidden_dim", "eval_batch_size"):
    if int(config[field]) < 1:
      raise ConfigError(f"config.{field}={config[field]!r}: must be >= 1")
  from asl_jax import landmark_features  # pylint: disable=import-outside-toplevel
  try:
    landmark_features.parse_blocks(config.features)
  except ValueError as e:
    raise ConfigError(f"config.{e}") from None
  if not 0 <= config.ema_decay < 1:
    raise ConfigError(f"config.ema_decay={config.ema_decay}: must be in [0, 1)")
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
  if not 0 <= config.label_smoothing < 1:
    raise ConfigError(f"config.label_smoothing={config.label_smoothing}: must be in [0, 1)")
  if config.lr <= 0:
    raise ConfigError(f"config.lr={config.lr}: must be > 0")
  if config.warmup_epochs < 0 or config.warmup_epochs > config.epochs:
    raise ConfigError(f"config.warmup_epochs={config.warmup_epochs}: must be in [0, epochs={config.epochs}]")
  if not 0 <= config.class_weights_start_epoch < config.epochs:
    raise ConfigError(f"config.class_weights_start_epoch={config.class_weights_start_epoch}: must be in "
                      f"[0, epochs={config.epochs})")
  if config.hidden_dim % config.num_heads:
    raise ConfigError(f"config.hidden_dim={config.hidden_dim} must be divisible by num_heads={config.num_heads}")
  if not config.use_landmarks and not config.gemma_features_dir:
    raise ConfigError("config.use_landmarks=False needs visual features: set config.gemma_features_dir")
  metric = config.best_metric
  if not metric.startswith("val_") or metric not in ("val_loss", "val_top1", "val_top5", "val_class_top1",
                                                      "val_class_top5"):
    raise ConfigError(f"config.best_metric={metric!r}: expected one of val_top1, val_top5, val_class_top1, "
                      "val_class_top5, val_loss")


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
  from asl_jax.errors import ConfigError  # pylint: disable=import-outside-toplevel
  if not os.path.isfile(path):
    raise ConfigError(f"{path}: config file not found")
  spec = importlib.util.spec_from_file_location(f"asl_jax_config_{abs(hash(path))}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def seed_nslt_config(num_classes: int) -> ml_collections.ConfigDict:
  """The seed project's recommendations for WLASL<num_classes>, exactly: its 2-layer BiLSTM, hidden 512,
  dropout 0.5, lr 1e-4, label smoothing 0.1, batch 32, 16 frames of xyz landmarks, its augmentations
  only; class weights, 10 warmup and 100 epochs above 300 classes, else none, 5 and 50. For comparison
  (README, "Results on real data"): on real WLASL landmarks it learns far less than `nslt_config`."""
  c = default_config()
  large = num_classes > 300
  c.subset = f"nslt_{num_classes}.json"
  c.encoder, c.hidden_dim, c.dropout, c.lr, c.weight_decay = "lstm", 512, 0.5, 1e-4, 1e-4
  c.label_smoothing, c.batch_size, c.num_frames = 0.1, 32, 16
  c.features, c.use_z, c.trim_no_hands = "pos,presence", True, False
  c.use_class_weights = large
  c.warmup_epochs, c.epochs = (10, 100) if large else (5, 50)
  c.speed_range, c.flip_prob, c.affine_prob = 0.0, 0.0, 0.0  # the Kaggle ISLR augmentations are not the seed's
  return c


def nslt_config(num_classes: int) -> ml_collections.ConfigDict:
  """The recommended settings for WLASL<num_classes> (nslt_<K>.json), chosen on the validation splits of
  the real landmark sets (README, "Results on real data"; benchmarks/accuracy.py): features derived on
  device (body xy, wrist-relative hand shapes, velocities, presence; no z), frames between the first and
  last detected hand, 32 frames, a width-192 Transformer encoder with dropout 0.2 and weight decay 0.05,
  lr 1e-3, horizontal flips in training and as test-time augmentation, an EMA of the weights, no class weights (they cost 11-25 points of per-class top-1 on nslt_1000-shaped data: README,
  "Class weights"). More classes get more warmup and epochs."""
  c = default_config()
  large = num_classes > 300
  c.subset = f"nslt_{num_classes}.json"
  c.features, c.use_z, c.trim_no_hands, c.num_frames = "pos,hand,vel,presence", False, True, 32
  c.encoder, c.hidden_dim, c.ff_mult, c.dropout, c.transformer_dropout = "transformer", 192, 2, 0.2, 0.1
  c.lr, c.weight_decay, c.label_smoothing, c.batch_size = 1e-3, 0.05, 0.1, 32
  c.use_class_weights = False
  c.feature_dropout = 0.0  # it zeroes whole coordinates for a whole clip: information lost, not noise
  c.flip_prob, c.tta_flip = 0.5, True  # mirrored signers in training, and both views averaged at test
  c.ema_decay = 0.99
  c.warmup_epochs, c.epochs = (10, 100) if large else (10, 150)
  # With visual features (gemma_features_dir): the pooled, standardised visual stream, per-stream
  # auxiliary heads, modality dropout and a fusion that starts from the landmark model (README, "Visual
  # features and fusion"); none of these change a landmarks-only run.
  c.visual_stream, c.visual_standardize, c.visual_dropout = "linear", True, 0.5
  c.feature_noise = 1.0  # Gaussian noise on the standardised visual features (one standard deviation)
  c.aux_loss_weight, c.modality_dropout, c.fusion_residual = 0.5, 0.2, True
  return c
