"""Shared fixtures: tiny synthetic WLASL-shaped data dirs built by the tests themselves."""

import os

import pytest

from asl_jax.config import default_config
from asl_jax.data.synthetic import make_synthetic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The workplace's shared data (read-only, never copied): beside the checkout, or named by $ASL_JAX_SHARED_DATA.
SHARED = next((p for p in (os.environ.get("ASL_JAX_SHARED_DATA", ""), os.path.join(REPO, "..", "shared", "data"),
                           "/work/shared/data") if p and os.path.isdir(p)), "")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
  monkeypatch.setenv("ASL_JAX_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
  """8 classes, about 4 train clips each, landmarks + visual features."""
  out = tmp_path_factory.mktemp("tiny")
  return make_synthetic(str(out), num_classes=8, seed=1, with_visual=True, train_scale=0.3)


@pytest.fixture(scope="session")
def small_data(tmp_path_factory):
  """12 classes at the demo's density, landmarks only (for learning tests)."""
  out = tmp_path_factory.mktemp("small")
  return make_synthetic(str(out), num_classes=12, seed=2, train_scale=0.6)


def tiny_config(data: dict, **overrides):
  """A config for a tiny fast model on a synthetic data dir."""
  c = default_config()
  c.data_dir, c.subset = data["data_dir"], data["subset"]
  c.gemma_features_dir = ""
  c.hidden_dim, c.dropout, c.num_frames, c.max_frames = 32, 0.1, 12, 32
  c.batch_size, c.eval_batch_size, c.epochs, c.warmup_epochs = 8, 16, 2, 1
  c.lr, c.progress_bar, c.log_every = 3e-3, False, 1000
  for k, v in overrides.items():
    c[k] = v
  return c
