"""The run directory: every file a run keeps, how each is written and checked, and the save sequence that
keeps them consistent when a process is killed. Nothing else in asl_jax spells one of these file names.

    DIR/config.json          the resolved config (data paths absolute)
    DIR/input_spec.json      what the model takes (InputSpec)
    DIR/label_mapping.json   {"0": gloss, ...};  DIR/class_mapping.json  {split class: label}
    DIR/data_report.json     what packing found (clips, missing features, skipped files)
    DIR/visual_norm.npz      the training set's visual mean and std (runs that standardise visual features)
    DIR/head_weights.json    per-stream head weights fitted on val (runs with per-stream heads)
    DIR/calibration.json     temperature and unknown threshold fitted on val
    DIR/enrolled.json        the signs asl-enroll added;  DIR/init_from.json  what a warm start copied
    DIR/metrics.jsonl        one row per finished epoch;  DIR/tensorboard/
    DIR/checkpoints/{latest,best}/   Orbax checkpoints (runs/checkpoints.py)
    DIR/eval_<split>/        evaluation reports;  DIR/.lock  held by the training process

Reading: `RunDir(path)` and its methods; a missing, truncated, corrupt or foreign file is one error naming it
and what to do, never a traceback. Training: `open_for_training` (refuse a foreign directory, create, lock),
`RunDir.record_inputs`, and `SaveSequence` (resume after a crash, the end-of-epoch saves, the epoch rows).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil

import numpy as np

from asl_jax import atomic, config as config_lib
from asl_jax.data import layouts
from asl_jax.errors import CheckpointError, ConfigError, DataError, WorkdirBusyError

CONFIG_FILE = "config.json"
INPUT_SPEC_FILE = "input_spec.json"
LABELS_FILE = "label_mapping.json"
CLASSES_FILE = "class_mapping.json"
DATA_REPORT_FILE = "data_report.json"
VISUAL_NORM_FILE = "visual_norm.npz"
HEAD_WEIGHTS_FILE = "head_weights.json"
CALIBRATION_FILE = "calibration.json"
ENROLLED_FILE = "enrolled.json"
INIT_FILE = "init_from.json"
METRICS_FILE = "metrics.jsonl"
TEST_SUMMARY_FILE = "test_report.json"  # a packaged run's test numbers (pretrained.package)
REPORT_FILE = "report.json"  # in DIR/eval_<split>/
LOCK_FILE = ".lock"
CHECKPOINTS_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"
# The files inference reads beside the checkpoint: what a copy of a run for inference carries.
INFERENCE_FILES = (CONFIG_FILE, LABELS_FILE, INPUT_SPEC_FILE, CLASSES_FILE, HEAD_WEIGHTS_FILE, VISUAL_NORM_FILE,
                   CALIBRATION_FILE, ENROLLED_FILE)
# Config fields holding data paths: saved absolute, so evaluate / predict work from any directory.
DATA_PATH_FIELDS = ("data_dir", "landmarks_dir", "gemma_features_dir")


# ---------------------------------------------------------------------------------------------- checked reads

def read_json(path: str, what: str, kind: type = dict):
  """The JSON value of `path` (a `kind`); `what` says what the file holds, for the message."""
  if not os.path.isfile(path):
    raise CheckpointError(f"{path}: missing ({what}); is this a training workdir?")
  try:
    with open(path, encoding="utf-8") as f:
      value = json.load(f)
  except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
    raise CheckpointError(f"{path}: not valid JSON ({e}); the file is damaged: restore it from a copy, or train "
                          "the run again") from None
  except OSError as e:
    raise CheckpointError(f"{path}: cannot be read ({e.strerror or e})") from None
  if not isinstance(value, kind):
    raise CheckpointError(f"{path}: expected a JSON {kind.__name__} ({what}), found a {type(value).__name__}")
  return value


def read_jsonl(path: str) -> list[dict]:
  """The rows of a metrics.jsonl. A last line cut short (a process killed while appending it) is dropped
  with a warning; a damaged line elsewhere is an error naming the file and the line."""
  with open(path, encoding="utf-8", errors="replace") as f:
    lines = [line for line in f.read().split("\n") if line.strip()]
  rows = []
  for n, line in enumerate(lines, 1):
    try:
      row = json.loads(line)
      if not isinstance(row, dict):
        raise ValueError("not an object")
      rows.append(row)
    except ValueError as e:
      if n == len(lines):
        logging.warning("%s: ignoring its last line, cut short (%s)", path, e)
        break
      raise DataError(f"{path}: line {n} is not a JSON object ({e}); remove or repair that line") from None
  return rows


@dataclasses.dataclass(frozen=True)
class InputSpec:
  """What a run's model takes, saved once per run (DIR/input_spec.json) and read back strictly: the
  landmark layout of its files and their width, the visual feature size (0: none), and which streams the
  model has. Evaluation, prediction and export rebuild the model from it; a resumed run must match it."""

  layout: str
  landmark_dim: int
  visual_dim: int
  use_landmarks: bool
  use_visual: bool

  @classmethod
  def of(cls, config, packed) -> "InputSpec":
    """The spec of a run of `config` on `packed` (data.packed.Packed)."""
    layout = packed.report["landmark_layout"]
    return cls(layout, layouts.LAYOUT_DIMS[layout], packed.visual_dim, bool(config.use_landmarks),
               packed.visual_dim > 0)

  def check_resume(self, saved: "InputSpec", path: str) -> None:
    """A resumed run must take the same inputs as the saved one (the checkpoint's shapes depend on it)."""
    if self == saved:
      return
    diffs = [f"{f.name}: saved {getattr(saved, f.name)!r}, now {getattr(self, f.name)!r}"
             for f in dataclasses.fields(self) if getattr(saved, f.name) != getattr(self, f.name)]
    hint = ""
    if saved.use_visual and not self.use_visual:
      hint = "; the run was trained with visual features: set config.gemma_features_dir to them"
    elif self.use_visual and not saved.use_visual:
      hint = "; the run was trained without visual features: leave config.gemma_features_dir empty"
    raise ConfigError(f"{path}: this run's inputs differ from the saved ones ({'; '.join(diffs)}){hint}")


class RunDir:
  """One run directory, by path. Reads are checked; writes are atomic (a killed process leaves the old file
  or the new one). Creating nothing by itself: training creates the directory (`open_for_training`)."""

  def __init__(self, path: str):
    self.path = str(path)

  def __repr__(self) -> str:
    return f"RunDir({self.path!r})"

  def file(self, name: str) -> str:
    return os.path.join(self.path, name)

  def require(self) -> None:
    """One error when the path is no run: missing, a file, or a folder without the run's config.json."""
    if os.path.isfile(self.path):
      raise CheckpointError(f"{self.path}: a file, not a run directory (give the folder a training run wrote)")
    if not os.path.isdir(self.path):
      raise CheckpointError(f"{self.path}: workdir not found")
    if not self.has_config():
      raise CheckpointError(f"{self.file(CONFIG_FILE)}: missing (the run's configuration); is this a training "
                            "workdir?")

  # -- what the run is
  def has_config(self) -> bool:
    return os.path.isfile(self.file(CONFIG_FILE))

  def has_checkpoints(self) -> bool:
    return os.path.isdir(os.path.join(self.checkpoints_dir, "latest"))

  @property
  def checkpoints_dir(self) -> str:
    return self.file(CHECKPOINTS_DIR)

  @property
  def metrics_path(self) -> str:
    return self.file(METRICS_FILE)

  @property
  def tensorboard_dir(self) -> str:
    return self.file(TENSORBOARD_DIR)

  def eval_dir(self, split: str, ensemble: bool = False) -> str:
    return self.file(f"eval_{split}" + ("_ensemble" if ensemble else ""))

  def report_path(self, split: str) -> str:
    return os.path.join(self.eval_dir(split), REPORT_FILE)

  # -- reads
  def config_dict(self) -> dict:
    """config.json as saved (inference applies it over today's defaults: restore.load_config)."""
    return read_json(self.file(CONFIG_FILE), "the run's configuration")

  def is_run_config(self) -> bool:
    """Whether config.json is an asl_jax config (JSON whose keys are config fields), not someone else's."""
    try:
      saved = self.config_dict()
    except CheckpointError:
      return False
    return bool(saved) and set(saved) <= set(config_lib.FIELDS)

  def glosses(self) -> tuple[str, ...]:
    """The class names of label_mapping.json ({"0": gloss, "1": ...}), in label order."""
    path = self.file(LABELS_FILE)
    mapping = read_json(path, "the class names")
    keys = [str(i) for i in range(len(mapping))]
    if sorted(mapping) != sorted(keys) or not all(isinstance(mapping[k], str) for k in keys):
      raise CheckpointError(f"{path}: expected {{\"0\": gloss, ..., \"{len(mapping) - 1}\": gloss}} with every label "
                            "once; the file was edited or damaged: restore it, or train the run again")
    return tuple(mapping[k] for k in keys)

  def input_spec(self) -> InputSpec:
    """The saved spec; a run written before input_spec.json existed gets it from data_report.json and
    config.json (which held the same facts); a workdir with neither is one error."""
    path = self.file(INPUT_SPEC_FILE)
    self.require()
    try:
      if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
          saved = json.load(f)
        return InputSpec(**{f.name: saved[f.name] for f in dataclasses.fields(InputSpec)})
      with open(self.file(DATA_REPORT_FILE), encoding="utf-8") as f:
        report = json.load(f)
      with open(self.file(CONFIG_FILE), encoding="utf-8") as f:
        saved_config = json.load(f)
      layout, visual_dim = report["landmark_layout"], int(report["visual_dim"])
      return InputSpec(layout, layouts.LAYOUT_DIMS[layout], visual_dim,
                       bool(saved_config.get("use_landmarks", True)), visual_dim > 0)
    except (OSError, KeyError, TypeError, ValueError) as e:
      raise CheckpointError(f"{path}: missing or unreadable ({type(e).__name__}: {e}); the run's input "
                            "format is unknown. Is this a training workdir?") from None

  def visual_norm(self) -> tuple[np.ndarray, np.ndarray]:
    path = self.file(VISUAL_NORM_FILE)
    if not os.path.isfile(path):
      raise CheckpointError(f"{path}: missing (the run standardises its visual features with these statistics)")
    with np.load(path) as z:
      return z["mean"], z["std"]

  def head_weights(self, num_heads: int) -> dict | None:
    """The per-stream head weights fitted on val ({"weights", "step", ...}), or None when the run has none."""
    path = self.file(HEAD_WEIGHTS_FILE)
    if not os.path.isfile(path):
      return None
    try:
      with open(path, encoding="utf-8") as f:
        fitted = json.load(f)
      weights = [float(w) for w in fitted["weights"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
      raise CheckpointError(f"{path}: unreadable ({type(e).__name__}: {e}); delete it and rerun training to fit "
                            "the head weights again") from None
    if len(weights) != num_heads or not any(weights) or min(weights) < 0:
      raise CheckpointError(f"{path}: expected {num_heads} non-negative weights, not all zero, got "
                            f"{fitted['weights']}")
    return {**fitted, "weights": weights}

  def calibration(self) -> dict | None:
    """The run's calibration (evaluation/calibration.py), or None when it has none; a damaged file is one
    error naming it."""
    path = self.file(CALIBRATION_FILE)
    if not os.path.isfile(path):
      return None
    cal = read_json(path, "the calibration temperature and the unknown threshold")
    try:
      t = float(cal["temperature"])
      threshold = cal.get("unknown_threshold")
      threshold = None if threshold is None else float(threshold)
    except (KeyError, TypeError, ValueError) as e:
      raise CheckpointError(f"{path}: unreadable ({type(e).__name__}: {e}); delete it and run "
                            "`asl-evaluate --calibrate` to fit it again") from None
    scores = cal.get("known_scores", [])
    if not isinstance(scores, list) or not all(isinstance(x, (int, float)) and 0 <= x <= 1 for x in scores):
      raise CheckpointError(f"{path}: known_scores must be a list of probabilities; delete it and run "
                            "`asl-evaluate --calibrate` to fit it again")
    if not (np.isfinite(t) and t > 0) or (threshold is not None and not 0 <= threshold <= 1):
      raise CheckpointError(f"{path}: temperature must be > 0 and unknown_threshold in [0, 1], got {t} and "
                            f"{threshold}; delete it and run `asl-evaluate --calibrate` to fit it again")
    return {**cal, "temperature": t, "unknown_threshold": threshold}

  def enrolled(self) -> dict | None:
    """What asl-enroll added to the run, or None for a trained run."""
    path = self.file(ENROLLED_FILE)
    return read_json(path, "what was enrolled into the run") if os.path.isfile(path) else None

  def metrics(self) -> list[dict]:
    """The rows of metrics.jsonl (none when the run has not finished an epoch)."""
    return read_jsonl(self.metrics_path) if os.path.isfile(self.metrics_path) else []

  def test_report(self, step) -> dict | None:
    """DIR/eval_test/report.json if it is a readable report of checkpoint `step`, else None."""
    if step is None:
      return None
    try:
      with open(self.report_path("test"), encoding="utf-8") as f:
        report = json.load(f)
    except (OSError, ValueError):
      return None
    return report if report.get("checkpoint_step") == step else None

  # -- writes
  def write_json(self, name: str, value) -> None:
    atomic.write_json(self.file(name), value)

  def save_calibration(self, cal: dict) -> None:
    self.write_json(CALIBRATION_FILE, cal)

  def save_head_weights(self, fitted: dict) -> None:
    """The head weights fitted on val (evaluator.fit_head_weights, plus the checkpoint step they belong to)."""
    self.write_json(HEAD_WEIGHTS_FILE, fitted)

  def save_init_report(self, report: dict) -> None:
    self.write_json(INIT_FILE, report)

  def check_resume(self, config, spec: InputSpec) -> None:
    """When the directory holds a run to resume: refuses other inputs than its input_spec.json, or a config
    that conflicts with its config.json (config.resume_conflicts; `epochs` may change)."""
    if not self.has_checkpoints():
      return
    if os.path.isfile(self.file(INPUT_SPEC_FILE)):
      spec.check_resume(self.input_spec(), self.file(INPUT_SPEC_FILE))
    if self.has_config():
      conflicts = config_lib.resume_conflicts(self.config_dict(), config)
      if conflicts:
        raise ConfigError(f"{self.file(CONFIG_FILE)}: this workdir holds a run with another configuration; use a "
                          "new --workdir or the same settings to resume:\n  " + "\n  ".join(conflicts))

  def record_inputs(self, config, spec: InputSpec, split, data_report: dict, visual_norm) -> None:
    """What a training run records before its first step (after `check_resume`): config.json, the input
    spec, the label mappings (`split`: data.splits.Split), the data report and the visual statistics."""
    saved = config.to_dict()
    for key in DATA_PATH_FIELDS:
      if saved.get(key):
        saved[key] = os.path.abspath(saved[key])
    self.write_json(CONFIG_FILE, saved)
    self.write_json(INPUT_SPEC_FILE, dataclasses.asdict(spec))
    self.write_json(LABELS_FILE, split.label_mapping())
    self.write_json(CLASSES_FILE, split.class_mapping())
    self.write_json(DATA_REPORT_FILE, data_report)
    if visual_norm is not None:
      atomic.save_npz(self.file(VISUAL_NORM_FILE), mean=visual_norm[0], std=visual_norm[1])

  def saved_epochs(self) -> int | None:
    """config.json's `epochs` when the run has checkpoints (a resume), else None."""
    if not (self.has_checkpoints() and self.has_config()):
      return None
    return self.config_dict().get("epochs")

  def copy_for_inference(self, dst: str, files: dict | None = None) -> None:
    """The inference files of this run copied into directory `dst`, with `files` ({name: JSON value})
    written instead of or beside them."""
    files = files or {}
    for name in INFERENCE_FILES:
      if name not in files and os.path.exists(self.file(name)):
        shutil.copy2(self.file(name), os.path.join(dst, name))
    for name, value in files.items():
      atomic.write_json(os.path.join(dst, name), value)


# ---------------------------------------------------------------------------------------- training's side

class WorkdirLock:
  """An exclusive OS lock (flock) on DIR/.lock for the life of a training process: a second writer fails
  at once with the holder's PID; the kernel releases the lock when the holder dies, so a stale lock file
  from a killed run never blocks."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_FILE)
    self._fd = None

  def __enter__(self):
    try:
      self._fd = atomic.lock_pid_file(self.path)
    except atomic.LockHeld as e:
      raise WorkdirBusyError(f"{os.path.dirname(self.path)}: workdir in use by another training process "
                             f"(PID {e.holder}); wait for it to finish or use another --workdir") from None
    return self

  def __exit__(self, *exc):
    if self._fd is not None:
      os.close(self._fd)  # releases the flock
      self._fd = None




def check_writable(workdir: str) -> None:
  """Refuses a --workdir that training must not write to, before anything is written: an existing file, or
  a directory whose config.json is someone else's (unreadable JSON, or fields asl_jax does not have)."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ConfigError(f"{workdir}: --workdir is an existing file, not a directory; choose another path")
  run = RunDir(workdir)
  if run.has_config() and not run.is_run_config():
    raise ConfigError(f"{run.file(CONFIG_FILE)}: not an asl_jax run's config (unreadable JSON, or fields asl_jax "
                      "does not have), and training would overwrite it: choose another --workdir, or remove the "
                      "file if it is a damaged copy of this run's (nothing was written)")


@contextlib.contextmanager
def open_for_training(workdir: str, is_main: bool = True):
  """The run directory, created and locked for one training process (the main one; others get it unlocked)."""
  if not is_main:
    yield RunDir(workdir)
    return
  check_writable(workdir)
  os.makedirs(workdir, exist_ok=True)
  with WorkdirLock(workdir):
    yield RunDir(workdir)


def crash_point(name: str) -> None:
  """A named point of the save sequence (and of the final test); tests replace this to simulate a kill
  exactly there."""
  del name


class SaveSequence:
  """The end-of-epoch saves of a training run and their repair after a crash.

  At the end of an epoch the state is saved to `latest` first (its info carries the epoch's metrics row and
  which step is the best), then to `best` if the epoch improved, then the row is appended to metrics.jsonl.
  A process killed anywhere in that sequence resumes (`resume`) from the newest complete checkpoint and
  repairs what the sequence had not written yet, so a rerun ends with exactly the metrics of an
  uninterrupted run.

  `ckpt` is the run's runs.checkpoints.Checkpoints; `best_tree(state)` is what `best` holds (the weights
  inference reads, or the whole state); `metric` the validation metric that decides the best (None: every
  epoch is the best, as without validation); `writes_files` False on all but the main process."""

  def __init__(self, run: RunDir, ckpt, best_tree, metric: str | None, writes_files: bool = True):
    self.run, self.ckpt, self.best_tree, self.metric = run, ckpt, best_tree, metric
    self.writes_files = writes_files
    self._pending: dict = {}  # a best epoch not written yet: {"step", "tree" (a copy), "info"}

  def resume(self, state, steps_per_epoch: int):
    """(state, info) to resume from, after repairing an interrupted save sequence:

    - resume from the newest latest checkpoint (a fresh start when there is none);
    - best checkpoints newer than it are removed: training from there repeats those epochs exactly and
      saves them again (with checkpoint_every > 1, or a latest folder lost);
    - a latest whose info names itself as the best step, with no best checkpoint at that step yet (killed
      between the two saves), is copied to best;
    - metrics.jsonl keeps the rows of the epochs up to that checkpoint only, and gets its epoch's row back
      from the checkpoint when the process died before appending it."""
    ckpt = self.ckpt
    info = {"epoch": 0, "best_value": None, "best_epoch": None}
    latest = ckpt.latest_step("latest")
    for step in ckpt.all_steps("best"):
      if latest is None or step > latest:
        ckpt.delete("best", step)
    if latest is None:
      self._truncate_metrics(0, steps_per_epoch)
      return state, info
    state, info = ckpt.restore("latest", state)
    if info.get("best_step") == latest and latest not in ckpt.all_steps("best"):
      ckpt.save("best", latest, self.best_tree(state), info)
    if info.get("best_step") is not None:  # epochs are 1-based (runs written long ago counted from 0)
      info["best_epoch"] = info["best_step"] // steps_per_epoch
    step = int(state.step)
    self._truncate_metrics(step, steps_per_epoch)
    row = info.get("row")
    if self.writes_files and row is not None and row["step"] == step and not self._has_row(step):
      with open(self.run.metrics_path, "a", encoding="utf-8") as f:
        f.write(json.dumps({**row, "epoch": step // steps_per_epoch}) + "\n")
    return state, info

  def record(self, info: dict, row: dict, step: int, best_copy) -> dict:
    """The info after a finished epoch (its row; the best so far). If the epoch improved on the best
    validated epoch, `best_copy()` (a copy of what `best` holds: the next train step donates the state's
    buffers) becomes the pending best, written just before the next latest (`save`). Best is never newer
    than latest on disk but for a moment: a kill there leaves a best that `resume` removes and writes again."""
    metric = self.metric
    improved = metric is None or (metric in row and _better(metric, row[metric], info["best_value"]))
    info = {**info, "epoch": row["epoch"], "row": row}
    if improved:
      info.update(best_value=row.get(metric), best_epoch=row["epoch"], best_step=step)
      self._pending.update(step=step, tree=best_copy(), info=info)
    return info

  def save(self, state, info: dict) -> None:
    """The save sequence: the pending best (if any), then latest."""
    if self._pending:
      self.ckpt.save("best", self._pending["step"], self._pending["tree"], self._pending["info"])
      self._pending.clear()
    crash_point("between_saves")
    self.ckpt.save("latest", int(state.step), state, info)
    crash_point("after_saves")

  def append_row(self, row: dict) -> None:
    """The epoch's row, last in the sequence (main process only)."""
    if self.writes_files:
      with open(self.run.metrics_path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")

  def _truncate_metrics(self, up_to_step: int, steps_per_epoch: int) -> None:
    """Keeps the rows of epochs that ended at or before `up_to_step`, numbered 1-based from their step."""
    if not self.writes_files or not os.path.exists(self.run.metrics_path):
      return
    rows = read_jsonl(self.run.metrics_path)
    kept = [{**r, "epoch": r["step"] // steps_per_epoch} for r in rows if r["step"] <= up_to_step]
    with atomic.atomic_open(self.run.metrics_path) as f:
      f.writelines(json.dumps(r) + "\n" for r in kept)

  def _has_row(self, step: int) -> bool:
    return any(row.get("step") == step for row in self.run.metrics())


def _better(metric: str, value: float, best: float | None) -> bool:
  if best is None:
    return True
  return value < best if metric == "val_loss" else value > best
