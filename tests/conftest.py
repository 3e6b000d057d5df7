"""Shared fixtures: tiny synthetic WLASL-shaped data dirs built by the tests themselves."""

import atexit
import os
import shutil
import tempfile

# One XLA compilation cache for the session, this process and every CLI subprocess the tests start: the
# same tiny models are compiled by many tests (a hit skips XLA, not tracing, so what is tested is unchanged).
# Set before JAX is imported; a fresh directory per session keeps the runs independent of each other.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="asl_jax_test_xla_")
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import pytest  # noqa: E402  pylint: disable=wrong-import-position

from asl_jax.config import default_config  # noqa: E402  pylint: disable=wrong-import-position
from asl_jax.data.synthetic import make_synthetic  # noqa: E402  pylint: disable=wrong-import-position

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
  c.checkpoint_min_interval_s = 0.0  # latest after every epoch (checkpoint_every), as the fault tests expect
  for k, v in overrides.items():
    c[k] = v
  return c
