"""WLASL1000 (nslt_1000.json): the seed's recommended settings."""

from asl_jax.config import default_config


def get_config():
  c = default_config()
  c.subset = "nslt_1000.json"
  c.hidden_dim = 512
  c.dropout = 0.5
  c.label_smoothing = 0.1
  c.use_class_weights = True
  c.warmup_epochs = 10
  c.epochs = 100
  c.batch_size = 32
  return c
