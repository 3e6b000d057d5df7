"""The trained model that ships with asl_jax, used when `asl-live`, `asl-predict` and `asl-enroll` get no run.

`wlasl100/` is a run directory holding only what inference reads (config.json, label_mapping.json,
input_spec.json, calibration.json, the evaluation weights): the recommended nslt_100 recipe trained on the
train and val clips of the real WLASL100 landmarks (seed 1), calibrated on held-out folds. docs/results.md, "A model
to try" gives its test accuracy, the command that rebuilds it (benchmarks/ship_model.py, which ends with
`package`), and its licence: WLASL is under C-UDA 1.0; trained models are Results
under that agreement, which section 2.2 does not restrict. WLASL: Li et al., "Word-level Deep Sign Language
Recognition from Video", WACV 2020.
"""

from __future__ import annotations

import json
import os
import shutil

from asl_jax.errors import CheckpointError
from asl_jax.runs import restore
from asl_jax.runs.checkpoints import Checkpoints, eval_params_name
from asl_jax.runs.run_dir import CONFIG_FILE, RunDir, TEST_SUMMARY_FILE

HERE = os.path.dirname(os.path.abspath(__file__))
WLASL100 = os.path.join(HERE, "wlasl100")
NAMES = {"wlasl100": WLASL100}


def resolve(workdir: str | None) -> str:
  """A --workdir value, or the shipped model for an empty one (or its name, `wlasl100`)."""
  if workdir and workdir not in NAMES:
    return workdir
  path = NAMES.get(workdir or "wlasl100")
  if not os.path.isfile(os.path.join(path, CONFIG_FILE)):
    raise CheckpointError(f"{path}: the shipped model is missing from this installation; pass --workdir")
  return path


def is_shipped(workdir: str) -> bool:
  """Whether `workdir` is (inside) the installed shipped model, where nothing may be written."""
  return os.path.abspath(workdir).startswith(os.path.join(os.path.abspath(HERE), ""))


def write_run(trained, dst: str, params, info: dict, files: dict | None = None) -> None:
  """`dst` (which must not exist) as a run directory for inference: the run files of `trained` (a
  restore.TrainedRun), with `files` ({name: JSON value}) written over or beside them, and a best checkpoint
  of `params` alone (no optimiser state) at the run's step with `info`. It is written beside `dst` and then
  renamed, so a failure leaves nothing. What package (the shipped model) and asl-enroll write."""
  tmp = dst + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  try:
    RunDir(trained.workdir).copy_for_inference(tmp, files)
    ckpts = Checkpoints(tmp, max_to_keep=1)
    ckpts.save("best", trained.step, {eval_params_name(trained.config): params}, info)
    ckpts.close()
    os.replace(tmp, dst)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def package(src: str, dst: str, checkpoint: str = "best") -> dict:
  """Copies the inference part of run `src` to `dst` (which must not exist): the run files and a checkpoint
  of `checkpoint`'s evaluation weights alone (no optimiser state). Returns the test report's numbers."""
  if os.path.exists(dst):
    raise CheckpointError(f"{dst}: exists; remove it first")
  trained = restore.load_run(src, checkpoint)
  r = RunDir(src).test_report(trained.step)
  summary = {}
  if r is not None:
    summary = {"test_top1": r["per_instance"]["top1"], "test_top5": r["per_instance"]["top5"],
               "test_clips": r["num_samples"], "step": trained.step}
  files = {CONFIG_FILE: portable_config(trained.config)}
  if summary:
    files[TEST_SUMMARY_FILE] = summary
  write_run(trained, dst, trained.params, {"packaged_from": os.path.basename(os.path.abspath(src)),
                                           "step": trained.step}, files)
  return summary


DATA_PATH_FIELDS = ("data_dir", "landmarks_dir", "gemma_features_dir")


def portable_config(config) -> dict:
  """config.json for a run that travels: the data paths of the machine it was trained on left out (a user
  evaluating it names their own with --data_dir / --landmarks_dir)."""
  out = json.loads(json.dumps(config.to_dict()))
  for key in DATA_PATH_FIELDS:
    out[key] = ""
  return out
