"""Default configuration (all fields, with the seed's defaults): see asl_jax/config.py."""

from asl_jax.config import default_config


def get_config():
  return default_config()
