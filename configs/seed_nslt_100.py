"""WLASL100 (nslt_100.json) with the seed project's exact recommendations (BiLSTM, hidden 512, dropout
0.5, lr 1e-4): see asl_jax.config.seed_nslt_config. For comparison with configs/nslt_100.py."""

from asl_jax.config import seed_nslt_config


def get_config():
  return seed_nslt_config(100)
