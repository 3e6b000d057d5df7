"""WLASL2000 (nslt_2000.json): the recommended settings, see asl_jax.config.nslt_config
(configs/seed_nslt_1000.py with subset=nslt_2000.json is the seed's own recipe)."""

from asl_jax.config import nslt_config


def get_config():
  return nslt_config(2000)
