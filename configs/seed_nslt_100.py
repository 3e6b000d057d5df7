"""WLASL100 (nslt_100.json) with the seed project's exact recommendations, for comparison with
configs/nslt_100.py: on real WLASL landmarks it learns far less (docs/results.md, "Results on real data")."""

from asl_jax.config import default_config


def get_config():
  c = default_config()
  c.subset = "nslt_100.json"
  c.encoder, c.lstm_layers, c.hidden_dim, c.dropout = "lstm", 2, 512, 0.5  # a 2-layer BiLSTM
  c.lr, c.weight_decay, c.label_smoothing, c.batch_size = 1e-4, 1e-4, 0.1, 32
  c.features, c.use_z, c.trim_no_hands, c.num_frames = "pos,presence", True, False, 16  # 16 frames of xyz
  c.use_class_weights = False
  c.warmup_epochs, c.epochs = 5, 50
  # The seed's augmentations only (the Kaggle ISLR ones are asl_jax's).
  c.speed_range, c.flip_prob, c.affine_prob, c.mixup_prob = 0.0, 0.0, 0.0, 0.0
  return c
