"""The built-in demo: synthetic WLASL-shaped data (50 classes), a small model, minutes on a CPU."""

from asl_jax.config import default_config


def get_config():
  c = default_config()
  c.data_dir = "demo_data"
  c.subset = "nslt_50.json"
  c.hidden_dim = 128
  c.dropout = 0.2
  c.num_frames = 24
  c.epochs = 40
  c.warmup_epochs = 2
  c.lr = 2e-3
  c.weight_decay = 1e-4
  c.batch_size = 32
  c.log_every = 10
  return c
