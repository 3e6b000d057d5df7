"""WLASL1000 (nslt_1000.json) with the seed project's exact recommendations (configs/seed_nslt_100.py with
class weights, 10 warmup and 100 epochs), for comparison with configs/nslt_1000.py."""

import os

from asl_jax.config import load_config_file


def get_config():
  c = load_config_file(os.path.join(os.path.dirname(__file__), "seed_nslt_100.py"))
  c.subset = "nslt_1000.json"
  c.use_class_weights = True
  c.warmup_epochs, c.epochs = 10, 100
  return c
