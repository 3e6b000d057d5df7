"""WLASL300 (nslt_300.json): the recommended settings, see asl_jax.config.nslt_config
(configs/seed_nslt_100.py with subset=nslt_300.json is the seed's own recipe)."""

from asl_jax.config import nslt_config


def get_config():
  return nslt_config(300)
