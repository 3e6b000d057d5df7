"""WLASL300 (nslt_300.json): the seed's recommended settings."""

from asl_jax.config import default_config


def get_config():
  c = default_config()
  c.subset = "nslt_300.json"
  c.hidden_dim = 512
  c.dropout = 0.5
  c.label_smoothing = 0.1
  c.use_class_weights = False
  c.warmup_epochs = 5
  c.epochs = 50
  c.batch_size = 32
  # Not among the seed's settings: on the real WLASL landmark sets the Transformer encoder at lr 1e-3 learns
  # far faster than the seed's LSTM at 1e-4 (README, "Results on real data"); encoder=lstm restores it.
  c.encoder = "transformer"
  c.lr = 1e-3
  return c
