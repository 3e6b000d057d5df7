"""A run directory read back for inference: its input spec (strict), parameters only, and the clear errors
when the inputs disagree."""

import os
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from asl_jax.errors import CheckpointError, ConfigError
from asl_jax.runs import restore, run_dir
from asl_jax.runs.checkpoints import Checkpoints
from asl_jax.runs.run_dir import InputSpec, RunDir
from asl_jax.serving import predict
from asl_jax.training import setup as run_lib, train
from conftest import tiny_config


@pytest.fixture(scope="module")
def hybrid_run(tiny_data, tmp_path_factory):
  wd = str(tmp_path_factory.mktemp("hybrid") / "run")
  cfg = tiny_config(tiny_data, epochs=1, gemma_features_dir=tiny_data["gemma_features_dir"], ema_decay=0.9,
                    visual_stream="linear", visual_standardize=True, evaluate_test=False)
  train.train_and_evaluate(cfg, wd)
  return {"workdir": wd, "config": cfg}


def test_input_spec_is_saved_and_read(hybrid_run):
  spec = RunDir(hybrid_run["workdir"]).input_spec()
  assert spec == InputSpec("seed162", 162, 1152, True, True)
  run = restore.load_run(hybrid_run["workdir"])
  assert run.spec == spec and run.model.use_visual and run.visual_norm is not None


def test_inference_restores_the_evaluated_parameters_only(hybrid_run):
  run = restore.load_run(hybrid_run["workdir"])
  model, cfg = run.model, run.config
  abstract = jax.eval_shape(lambda: run_lib.create_state(cfg, model, 1152, 1, jax.random.key(0)))
  # Exactly the model's parameter tree (same paths, shapes and dtypes), no optimiser state beside it.
  shapes = lambda tree: jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), tree)  # noqa: E731
  assert jax.tree_util.tree_structure(run.params) == jax.tree_util.tree_structure(abstract.params)
  assert shapes(run.params) == shapes(abstract.params)
  ckpt = Checkpoints(hybrid_run["workdir"], read_only=True)
  assert ckpt.latest_step("best") == ckpt.latest_step("latest") == run.step  # a 1-epoch run
  state, _ = ckpt.restore("latest", abstract)  # the training state (best holds the EMA weights alone)
  ckpt.close()
  best = ocp.PyTreeCheckpointer().metadata(os.path.join(hybrid_run["workdir"], "checkpoints", "best",
                                                        str(run.step), "state"))
  assert set(getattr(best, "item_metadata", best)) == {"ema_params"}
  # The EMA weights, exactly, and not the raw ones (which differ after a run with ema_decay < 1).
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                         state.ema_params, run.params)
  raw_differs = jax.tree_util.tree_map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                                       state.params, run.params)
  assert any(jax.tree_util.tree_leaves(raw_differs))


def test_resume_without_the_visual_features_is_one_clear_error(hybrid_run, tiny_data):
  cfg = hybrid_run["config"].copy_and_resolve_references()
  cfg.gemma_features_dir = ""
  with pytest.raises(ConfigError, match="trained with visual features: set config.gemma_features_dir"):
    train.train_and_evaluate(cfg, hybrid_run["workdir"])


def test_runs_written_before_the_spec_still_predict(hybrid_run, tiny_data, tmp_path):
  old = str(tmp_path / "old")
  shutil.copytree(hybrid_run["workdir"], old)
  os.remove(os.path.join(old, run_dir.INPUT_SPEC_FILE))
  lm = os.path.join(tiny_data["landmarks_dir"], "00001_landmarks.npy")
  rows = [predict.predict_files(w, [lm], tiny_data["gemma_features_dir"]) for w in (hybrid_run["workdir"], old)]
  assert rows[0][0]["top_k"] == rows[1][0]["top_k"]
  os.remove(os.path.join(old, "data_report.json"))
  with pytest.raises(CheckpointError, match="input_spec.json: missing or unreadable .* input format is unknown"):
    restore.load_run(old)
