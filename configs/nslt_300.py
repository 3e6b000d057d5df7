"""WLASL300 (nslt_300.json): configs/nslt_100.py's recipe (not measured on 300 real classes)."""

import os

from asl_jax.config import load_config_file


def get_config():
  c = load_config_file(os.path.join(os.path.dirname(__file__), "nslt_100.py"))
  c.subset = "nslt_300.json"
  return c
