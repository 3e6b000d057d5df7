import os

import pytest

from asl_jax import config as config_lib
from asl_jax.errors import ConfigError
from conftest import REPO


@pytest.mark.parametrize("k,weights,warmup,epochs", [(100, False, 5, 50), (1000, True, 10, 100)])
def test_seed_configs_carry_the_seed_settings(k, weights, warmup, epochs):
  c = config_lib.load_config_file(os.path.join(REPO, "configs", f"seed_nslt_{k}.py"))
  assert c.subset == f"nslt_{k}.json"
  assert (c.encoder, c.hidden_dim, c.dropout, c.lr, c.label_smoothing, c.batch_size) == ("lstm", 512, 0.5, 1e-4,
                                                                                        0.1, 32)
  assert (c.use_class_weights, c.warmup_epochs, c.epochs) == (weights, warmup, epochs)
  assert (c.features, c.use_z, c.num_frames) == ("pos,presence", True, 16)
  config_lib.validate(c)


@pytest.mark.parametrize("k", [100, 300, 1000, 2000])
def test_recommended_configs(k):
  c = config_lib.load_config_file(os.path.join(REPO, "configs", f"nslt_{k}.py"))
  assert c.subset == f"nslt_{k}.json"
  assert c.encoder != "lstm" and "hand" in c.features and c.trim_no_hands and c.num_frames > 16
  assert not c.use_class_weights and c.feature_dropout == 0
  config_lib.validate(c)


def test_every_config_file_is_valid_and_complete():
  fields = set(config_lib.default_config())
  for name in sorted(os.listdir(os.path.join(REPO, "configs"))):
    if name.endswith(".py"):
      c = config_lib.load_config_file(os.path.join(REPO, "configs", name))
      assert set(c) == fields, name
      config_lib.validate(c)


def test_seed_flag_names_exist():
  c = config_lib.default_config()
  for name in ("data_dir", "subset", "landmarks_dir", "gemma_features_dir", "gemma_feature_dim", "hidden_dim",
               "num_frames", "fusion_type", "dropout", "batch_size", "epochs", "lr", "weight_decay", "seed",
               "label_smoothing", "warmup_epochs", "use_class_weights", "balanced_sampling", "augmentation",
               "temporal_jitter", "feature_dropout", "feature_noise", "temporal_mask_prob", "landmark_jitter"):
    assert name in c, name
  assert (c.lr, c.weight_decay, c.seed, c.num_frames, c.feature_noise) == (1e-4, 1e-4, 42, 16, 0.05)


@pytest.mark.parametrize("field,value,match", [("encoder", "gru", "encoder"), ("dropout", 1.5, "dropout"),
                                               ("transformer_dropout", 1.0, "transformer_dropout"),
                                               ("warmup_epochs", -1, "warmup_epochs"),
                                               ("class_weights_start_epoch", 100, "class_weights_start_epoch"),
                                               ("class_weights_start_epoch", -1, "class_weights_start_epoch"),
                                               ("best_metric", "val_f1", "best_metric"),
                                               ("hidden_dim", 30, "divisible by num_heads"),
                                               ("features", "pos,depth", "features"),
                                               ("ema_decay", 1.0, "ema_decay"), ("conv_layers", 0, "conv_layers"),
                                               ("drop_path", -0.1, "drop_path"),
                                               ("mixup_prob", 1.5, "mixup_prob"), ("mixup_alpha", 0.0, "mixup_alpha"),
                                               ("supcon_weight", -0.5, "supcon_weight=-0.5"),
                                               ("supcon_temperature", 0.0, "supcon_temperature=0.0"),
                                               ("landmarks_pattern", "landmarks.npy", "with {id} once"),
                                               ("landmarks_pattern", "{id}_{id}.npy", "with {id} once"),
                                               ("gemma_pattern", "{id}.txt", "ending in .npy"),
                                               ("landmarks_pattern", "{id}_gemma.npy", "both"),
                                               ("lr", float("nan"), "lr=nan: must be a finite number"),
                                               ("weight_decay", float("inf"), "must be a finite number"),
                                               ("speed_range", 1.0, "speed_range=1.0: must be in"),
                                               ("flip_prob", 1.5, "flip_prob=1.5: a probability"),
                                               ("affine_prob", -0.1, "affine_prob=-0.1: a probability"),
                                               ("crop_min", 0.0, "crop_min=0.0: a fraction"),
                                               ("crop_min", 1.2, "crop_min=1.2: a fraction"),
                                               ("landmark_jitter", -0.01, "landmark_jitter=-0.01: must be >= 0")])
def test_invalid_values_are_rejected(field, value, match):
  c = config_lib.default_config()
  c[field] = value
  with pytest.raises(ConfigError, match=match):
    config_lib.validate(c)


def test_supcon_needs_a_head_over_an_embedding():
  c = config_lib.default_config()
  c.supcon_weight, c.use_landmarks, c.visual_stream = 0.5, False, "linear"
  with pytest.raises(ConfigError, match="visual_stream=linear has none"):
    config_lib.validate(c)
  c.use_landmarks = True
  config_lib.validate(c)


def test_resume_check_treats_fields_added_later_as_their_default():
  c = config_lib.default_config()
  saved = c.to_dict()
  del saved["class_weights_start_epoch"]  # a workdir written before the field existed
  assert config_lib.resume_conflicts(saved, c) == []
  c.class_weights_start_epoch = 3
  assert config_lib.resume_conflicts(saved, c) == ["class_weights_start_epoch: saved 0, now 3"]
  saved["hidden_dim"] = 64
  assert "hidden_dim: saved 64, now 512" in config_lib.resume_conflicts(saved, c)


# Consumers of the flat config: dataclasses whose fields (and defaults) come from it.
def _consumers():
  import dataclasses  # pylint: disable=import-outside-toplevel
  from asl_jax.data import augment, landmark_features  # pylint: disable=import-outside-toplevel
  from asl_jax.data import packed  # pylint: disable=import-outside-toplevel
  from asl_jax.models import hybrid  # pylint: disable=import-outside-toplevel
  out = {}
  for cls, renames in ((packed.DataSpec, {}), (augment.AugmentConfig, augment.AugmentConfig.CONFIG_NAMES),
                       (landmark_features.FeatureConfig, landmark_features.FeatureConfig.CONFIG_NAMES)):
    out[cls.__name__] = {f.name: (renames.get(f.name, f.name), f.default) for f in dataclasses.fields(cls)}
  out["HybridModel"] = {f.name: (f.name, f.default) for f in dataclasses.fields(hybrid.HybridModel)
                        if f.name not in hybrid.DERIVED_FIELDS and f.name not in ("parent", "name")}
  return out


def test_every_consumer_field_is_a_config_field_with_the_same_default():
  for consumer, fields in _consumers().items():
    for mine, (field, default) in fields.items():
      assert field in config_lib.FIELDS, f"{consumer}.{mine} has no config field {field}"
      if consumer == "FeatureConfig" and mine == "blocks":
        default = ",".join(default)
      if consumer != "DataSpec" or mine != "data_dir":
        assert default == config_lib.default(field), (consumer, mine)


def test_every_config_field_reaches_a_consumer():
  """Each field is read by a consumer dataclass or by name in the library (config.FIELD / config["FIELD"]),
  so none is silently ignored."""
  import re  # pylint: disable=import-outside-toplevel
  consumed = {field for fields in _consumers().values() for field, _ in fields.values()}
  root = os.path.join(REPO, "asl_jax")
  source = ""
  for d, _, files in os.walk(root):
    source += "".join(open(os.path.join(d, f)).read() for f in files
                      if f.endswith(".py") and f != "config.py")
  consumed |= set(re.findall(r"\b(?:config|cfg)\.(\w+)", source))
  consumed |= set(re.findall(r"\b(?:config|cfg)(?:\.get\(|\[)\"(\w+)\"", source))
  missing = sorted(set(config_lib.FIELDS) - consumed)
  assert not missing, f"config fields no code reads: {missing}"


def test_allowed_values_are_the_consumers():
  from asl_jax.data import layouts, packed  # pylint: disable=import-outside-toplevel
  from asl_jax.models import fusion, hybrid  # pylint: disable=import-outside-toplevel
  assert hybrid.ENCODERS == config_lib.choices("encoder")
  assert hybrid.VISUAL_STREAMS == config_lib.choices("visual_stream")
  assert fusion.FUSIONS == config_lib.choices("fusion_type")
  assert packed.ON_BAD_FILE == config_lib.choices("on_bad_file")
  assert config_lib.choices("landmark_layout") == ("auto", *layouts.LAYOUT_DIMS)
