"""WLASL2000 (nslt_2000.json): configs/nslt_1000.py's recipe."""

import os

from asl_jax.config import load_config_file


def get_config():
  c = load_config_file(os.path.join(os.path.dirname(__file__), "nslt_1000.py"))
  c.subset = "nslt_2000.json"
  return c
