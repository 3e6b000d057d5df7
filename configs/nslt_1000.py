"""WLASL1000 (nslt_1000.json): the recommended settings, see asl_jax.config.nslt_config
(configs/seed_nslt_1000.py is the seed's own recipe)."""

from asl_jax.config import nslt_config


def get_config():
  return nslt_config(1000)
