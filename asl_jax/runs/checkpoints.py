"""Orbax checkpoints of a run: `DIR/checkpoints/latest` (every epoch, `max_to_keep`) and
`DIR/checkpoints/best` (the best epoch by the configured validation metric).

Each checkpoint holds the TrainState pytree (parameters, optimiser state, step, running epoch sums) and a
JSON dict (epoch, best value so far, ...). Orbax writes to a temporary directory and renames it when
complete, so a process killed mid-save leaves the previous checkpoint restorable.

After each save, `STEP/asl_jax_files.json` records every file's size and SHA-256; a read checks them first, so
a damaged checkpoint is named before Orbax touches it (a failed Orbax read leaves TensorStore threads that
print tracebacks of their own). A checkpoint without that file (older runs) is read unchecked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

import jax
import orbax.checkpoint as ocp

from asl_jax import models
from asl_jax.errors import CheckpointError
from asl_jax.runs import run_dir

KINDS = ("latest", "best")


def eval_params_name(config) -> str:
  """The TrainState field holding the weights to evaluate (what `best` holds under that name, and what
  inference restores): `ema_params` with an EMA, else `params`."""
  return "ema_params" if config.ema_decay > 0 else "params"
DIGEST = "asl_jax_files.json"


class _QuietOrbaxReads(logging.Filter):
  """Drops Orbax's absl warnings about metadata that these checkpoints do not write (every read of a
  Composite checkpoint would print two lines that ask nothing of the user)."""

  NOISE = ("Metadata file does not exist", "Failed to get item metadata")

  def filter(self, record):
    return not str(record.msg).startswith(self.NOISE)


logging.getLogger("absl").addFilter(_QuietOrbaxReads())


def _file_digests(step_dir: str) -> dict[str, list]:
  """{relative path: [size, sha256]} of every file under `step_dir` but the digest file itself."""
  out = {}
  for root, _, files in os.walk(step_dir):
    for name in files:
      path = os.path.join(root, name)
      rel = os.path.relpath(path, step_dir)
      if rel in (DIGEST, DIGEST + ".tmp"):
        continue
      h = hashlib.sha256()
      with open(path, "rb") as f:
        for block in iter(lambda f=f: f.read(1 << 20), b""):
          h.update(block)
      out[rel] = [os.path.getsize(path), h.hexdigest()]
  return dict(sorted(out.items()))


def write_digest(step_dir: str) -> None:
  """Records the files of a finished checkpoint (atomically: a kill leaves no digest, i.e. an unchecked read).
  The main process only, in a multi-process run (they share the directory)."""
  if jax.process_index() != 0:
    return
  tmp = os.path.join(step_dir, DIGEST + ".tmp")
  with open(tmp, "w") as f:
    json.dump(_file_digests(step_dir), f, indent=0)
  os.replace(tmp, os.path.join(step_dir, DIGEST))


def check_digest(step_dir: str) -> str | None:
  """None when `step_dir`'s files match its digest (or it has none); else what differs, in a few words."""
  path = os.path.join(step_dir, DIGEST)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      expected = json.load(f)
    if not isinstance(expected, dict):
      raise ValueError("not a dict")
  except (OSError, ValueError) as e:
    return f"its file list {DIGEST} is unreadable ({e})"
  actual = _file_digests(step_dir)
  missing = sorted(set(expected) - set(actual))
  if missing:
    return f"{len(missing)} file(s) missing, e.g. {missing[0]}"
  changed = sorted(k for k in expected if list(expected[k]) != actual[k])
  if changed:
    return f"{len(changed)} file(s) changed since it was written, e.g. {changed[0]}"
  return None


def _manager(workdir: str, kind: str, max_to_keep: int, read_only: bool = False,
             async_saves: bool = False) -> ocp.CheckpointManager:
  path = os.path.abspath(os.path.join(workdir, run_dir.CHECKPOINTS_DIR, kind))
  if read_only:
    options = ocp.CheckpointManagerOptions(create=False, enable_async_checkpointing=False)
  else:
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=async_saves,
                                           cleanup_tmp_directories=True)
  return ocp.CheckpointManager(path, options=options, item_names=("state", "info"))


def _damaged(directory, step: int, error: Exception | str) -> str:
  """One line for a checkpoint that cannot be read: which folder, the first line of the cause, what to do."""
  cause = (str(error).strip().splitlines() or [""])[0][:160]
  if isinstance(error, Exception):
    cause = f"{type(error).__name__}: {cause}"
  other = "best" if os.path.basename(str(directory)) == "latest" else "latest"
  return (f"{directory}/{step}: cannot restore this checkpoint, it is damaged or incomplete ({cause}); use "
          f"--checkpoint={other} or another step, or remove {directory}/{step} to fall back to the previous one")


class Checkpoints:
  """The latest and best checkpoint managers of one workdir.

  With `async_saves`, `save` returns once the arrays are copied off the devices and Orbax writes them in the
  background (still into a temporary folder renamed when complete); the digest of a save is written when
  it has finished, before the next save of that kind, a read of that kind, or `close`. A write that fails in
  the background is reported (CheckpointError) at that point."""

  def __init__(self, workdir: str, max_to_keep: int = 2, read_only: bool = False, async_saves: bool = False):
    self.workdir = workdir
    if read_only and not os.path.isdir(os.path.join(workdir, run_dir.CHECKPOINTS_DIR)):
      raise CheckpointError(f"{workdir}: no checkpoints directory (train first, or check --workdir)")
    self.managers = {k: _manager(workdir, k, max_to_keep if k == "latest" else 1, read_only, async_saves)
                     for k in KINDS}
    self._checked: set[tuple[str, int]] = set()
    self.async_saves = async_saves and not read_only
    self._pending: dict[str, int] = {}  # kind -> step saved in the background, its digest not yet written

  def save(self, kind: str, step: int, state, info: dict) -> None:
    """Saves `state` (any pytree: the TrainState in latest, the inference weights in best) and `info`."""
    self.wait(kind)
    try:
      self.managers[kind].save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                              info=ocp.args.JsonSave(info)), force=True)
    except Exception as e:  # ENOSPC and friends arrive as OSError or as tensorstore's ValueError
      raise self._write_error(kind, step, e) from None
    self._pending[kind] = step
    if not self.async_saves:
      self.wait(kind)

  def wait(self, kind: str | None = None) -> None:
    """Waits for the background save of `kind` (default: both) and writes its digest."""
    for k in KINDS if kind is None else (kind,):
      step = self._pending.pop(k, None)
      if step is None:
        continue
      try:
        self.managers[k].wait_until_finished()
        write_digest(os.path.join(str(self.managers[k].directory), str(step)))
      except Exception as e:  # pylint: disable=broad-except  (a background write that failed)
        raise self._write_error(k, step, e) from None

  def _write_error(self, kind: str, step: int, e: Exception) -> CheckpointError:
    return CheckpointError(f"{self.managers[kind].directory}: cannot write checkpoint at step {step} "
                           f"({type(e).__name__}: {e}); the previous checkpoint is intact")

  def delete(self, kind: str, step: int) -> None:
    """Removes one checkpoint (a best newer than the latest a run resumes from: the run writes it again)."""
    self.wait(kind)
    self.managers[kind].delete(step)

  def latest_step(self, kind: str = "latest") -> int | None:
    return self.managers[kind].latest_step()

  def all_steps(self, kind: str = "latest") -> list[int]:
    return list(self.managers[kind].all_steps())

  def _existing_step(self, kind: str, step: int | None) -> int:
    """`step`, or the newest step of `kind` when None; a missing one is a CheckpointError."""
    self.wait(kind)
    mgr = self.managers[kind]
    step = mgr.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"{mgr.directory}: no {kind} checkpoint to restore")
    if step not in mgr.all_steps():
      raise CheckpointError(f"{mgr.directory}: no checkpoint at step {step} (have {list(mgr.all_steps())})")
    if (kind, step) not in self._checked:
      problem = check_digest(os.path.join(str(mgr.directory), str(step)))
      if problem:
        raise CheckpointError(_damaged(mgr.directory, step, problem))
      self._checked.add((kind, step))
    return step

  def restore(self, kind: str, abstract_state, step: int | None = None):
    """(state, info) of `step` (default: the newest) of `kind`."""
    mgr = self.managers[kind]
    step = self._existing_step(kind, step)
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, abstract_state)
    try:
      restored = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                            info=ocp.args.JsonRestore()))
    except Exception as e:  # a corrupt or incompatible checkpoint: one message, not Orbax internals
      raise CheckpointError(_damaged(mgr.directory, step, e)) from None
    logging.info("restored %s checkpoint at step %d", kind, step)
    return restored["state"], dict(restored["info"])

  def restore_subtree(self, kind: str, name: str, abstract, step: int | None = None):
    """(one field of the saved TrainState, e.g. its `params`, step): reads that subtree alone (no optimiser
    moments), for inference. `abstract`: arrays or ShapeDtypeStructs (their shardings are the targets)."""
    step = self._existing_step(kind, step)
    # A reader of its own: a manager that saved this kind has bound its items to StandardSave / Restore.
    mgr = _manager(self.workdir, kind, 1, read_only=True)
    try:
      item = {name: jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, abstract)}
      restored = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
          item=item, restore_args=ocp.checkpoint_utils.construct_restore_args(item), partial_restore=True)))
    except Exception as e:  # a corrupt or incompatible checkpoint: one message, not Orbax internals
      raise CheckpointError(_damaged(mgr.directory, step, e)) from None
    finally:
      mgr.close()
    return restored["state"][name], int(step)

  def param_shapes(self, kind: str, name: str, step: int | None = None) -> dict[str, tuple] | None:
    """{"a/b/kernel": shape} of one field of the saved TrainState, from the checkpoint's metadata alone;
    None where the metadata cannot be read (the restore then reports)."""
    step = self._existing_step(kind, step)
    try:
      meta = ocp.PyTreeCheckpointer().metadata(os.path.join(str(self.managers[kind].directory), str(step), "state"))
      tree = getattr(meta, "item_metadata", meta)[name]
      return {k: tuple(leaf.shape) for k, leaf in models.named_leaves(tree).items()}
    except Exception:  # pylint: disable=broad-except  (damaged metadata: the restore says what is wrong)
      return None

  def close(self) -> None:
    try:
      self.wait()
    finally:
      for m in self.managers.values():
        m.close()
