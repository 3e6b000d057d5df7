"""WLASL2000 (nslt_2000.json): the recommended settings, see asl_jax.config.nslt_config."""

from asl_jax.config import nslt_config


def get_config():
  return nslt_config(2000)
