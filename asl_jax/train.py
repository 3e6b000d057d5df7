"""Training: the jitted data-parallel step, the epoch loop, validation, checkpoints, logs (building the
run itself — model, data, optimiser, TrainState — is asl_jax/run.py).

Determinism: every random number derives from `config.seed` and the step (dropout, augmentation) or the
epoch (data order), so a run restored from a checkpoint continues exactly as if it had not stopped.
"""

from __future__ import annotations

from concurrent import futures
import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from asl_jax import allocator, atomic, calibration
from asl_jax import augment as aug_lib
from asl_jax import config as config_lib
from asl_jax import evaluation, input_pipeline, landmark_features, losses, models
from asl_jax import run as run_lib
from asl_jax import run_files, warm_start
from asl_jax.checkpoints import Checkpoints
from asl_jax.data import packed as packed_lib
from asl_jax.data import splits as splits_lib
from asl_jax.errors import CheckpointError, ConfigError, TrainingDivergedError, WorkdirBusyError
from asl_jax.sharding import DataParallel, initialize_distributed


MIXUP_STREAM = 7  # fold_in index of the mixup key


def make_train_step(config, model, steps_per_epoch: int, parallel: DataParallel, visual_norm=None):
  """The jitted step: (state, data, order (S, B), class_weights) -> (state, loss).

  With per-stream heads (aux_loss_weight > 0), the loss is the fused head's plus aux_loss_weight times the
  mean of the two streams' own losses, so each stream learns to classify by itself. With mixup
  (`mixup_prob` > 0, `augment.mixup`) every one of these losses is blended over both clips' labels."""
  aug = aug_lib.AugmentConfig.from_config(config)
  features = landmark_features.FeatureConfig.from_config(config)
  base_key = jax.random.fold_in(jax.random.key(config.seed), 1)
  # rbg: the masks from XLA's RngBitGenerator, keyed by seed and step (the augmentation keeps threefry).
  dropout_key = (None if config.dropout_rng == "threefry" else
                 jax.random.fold_in(jax.random.key(config.seed, impl=config.dropout_rng), 2))
  smoothing, num_frames, ema_decay = config.label_smoothing, config.num_frames, config.ema_decay
  aux_weight = config.aux_loss_weight

  def step(state: run_lib.TrainState, data, order, class_weights):
    key = jax.random.fold_in(base_key, state.step)
    k_batch, k_dropout = jax.random.split(key)
    if dropout_key is not None:
      k_dropout = jax.random.fold_in(dropout_key, state.step)
    idx = jax.lax.with_sharding_constraint(order[state.step % steps_per_epoch], parallel.batch)
    batch = input_pipeline.make_batch(data, idx, k_batch, num_frames, aug, model.use_landmarks, model.use_visual,
                                      features, visual_norm=visual_norm)
    k_mix = jax.random.fold_in(k_batch, MIXUP_STREAM)  # a key of its own: runs without mixup draw as before
    batch, partner, lam = aug_lib.mixup(k_mix, batch, aug)
    ce = lambda lg: losses.mixed_ce_terms(lg, batch["labels"], partner, lam, class_weights, smoothing)  # noqa: E731

    def loss_fn(params):
      logits, aux = model.apply({"params": params}, batch, train=True, aux=True, rngs={"dropout": k_dropout})
      num, den = ce(logits)
      loss = num / den
      if aux:
        terms = [ce(a) for a in aux.values()]
        loss = loss + aux_weight * sum(n / d for n, d in terms) / len(terms)
      return loss, (logits, num, den)

    (loss, (logits, num, den)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    new_state = state.apply_gradients(grads=grads)
    if ema_decay > 0:
      new_state = new_state.replace(ema_params=run_lib.ema_update(state.ema_params, new_state.params, ema_decay, state.step))
    state = new_state
    correct = (jnp.argmax(logits, -1) == batch["labels"]).sum()
    sums = jnp.stack([num, den, correct.astype(jnp.float32), jnp.float32(idx.shape[0])])
    return state.replace(epoch_sums=state.epoch_sums + sums), loss

  return jax.jit(step, out_shardings=(parallel.replicated, parallel.replicated), donate_argnums=(0,))


def epoch_order(config, train_labels: np.ndarray, epoch: int, steps: int) -> np.ndarray:
  """(steps, batch_size) indices into the training set for one epoch (a function of seed and epoch)."""
  rng = np.random.default_rng([config.seed, epoch])
  n, b = len(train_labels), config.batch_size
  if config.balanced_sampling:  # class-balanced, with replacement (the seed's WeightedRandomSampler)
    counts = np.bincount(train_labels)
    p = 1.0 / counts[train_labels]
    return rng.choice(n, size=(steps, b), p=p / p.sum()).astype(np.int32)
  perm = rng.permutation(n)
  reps = math.ceil(steps * b / n)
  return np.concatenate([perm] + [rng.permutation(n) for _ in range(reps - 1)])[:steps * b].reshape(steps, b).astype(np.int32)


class _StopFlag:
  """Set by SIGTERM or SIGINT (Ctrl-C); the loop checkpoints at the next step boundary and returns.
  `signum` is the signal received (the CLI exits with 128 + signum)."""

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.requested = False
    self.signum = None
    self._previous = {}

  def __enter__(self):
    for sig in self.SIGNALS:
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread: no handler
        pass
    return self

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    if self.requested:  # a second Ctrl-C / SIGTERM: leave now, without saving
      print(f"{signal.Signals(signum).name} again: exiting without saving", file=sys.stderr, flush=True)
      raise SystemExit(128 + signum)
    self.requested = True
    self.signum = signum

  def __exit__(self, *exc):
    for sig, previous in self._previous.items():
      signal.signal(sig, previous)


def _fault(point: str) -> None:
  """A named point of the save sequence; tests replace this to simulate a kill exactly there."""
  del point


class WorkdirLock:
  """An exclusive OS lock (flock) on DIR/.lock for the life of a training process: a second writer fails
  at once with the holder's PID; the kernel releases the lock when the holder dies, so a stale lock file
  from a killed run never blocks."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, ".lock")
    self._fd = None

  def __enter__(self):
    import fcntl  # pylint: disable=import-outside-toplevel
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
      os.close(fd)
      raise WorkdirBusyError(f"{os.path.dirname(self.path)}: workdir in use by another training process "
                             f"(PID {holder}); wait for it to finish or use another --workdir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    self._fd = fd
    return self

  def __exit__(self, *exc):
    if self._fd is not None:
      os.close(self._fd)  # releases the flock
      self._fd = None


DATA_PATH_FIELDS = ("data_dir", "landmarks_dir", "gemma_features_dir")


def _make_workdir(workdir: str) -> None:
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ConfigError(f"{workdir}: --workdir is an existing file, not a directory; choose another path")
  os.makedirs(workdir, exist_ok=True)


def _prepare_workdir(config, workdir: str) -> None:
  """Saves the resolved config; on resume, refuses a config that conflicts with the saved one."""
  path = os.path.join(workdir, "config.json")
  if os.path.exists(path) and _has_checkpoints(workdir):
    saved = run_files.read_json(path, "the run's configuration")
    conflicts = config_lib.resume_conflicts(saved, config)
    if conflicts:
      raise ConfigError(f"{path}: this workdir holds a run with another configuration; use a new --workdir "
                        "or the same settings to resume:\n  " + "\n  ".join(conflicts))
  saved = config.to_dict()
  for key in DATA_PATH_FIELDS:  # absolute, so evaluate / predict work from any directory
    if saved.get(key):
      saved[key] = os.path.abspath(saved[key])
  atomic.write_json(path, saved)


def _refuse_foreign_workdir(workdir: str) -> None:
  """A config.json that is not an asl_jax run's is someone else's file: refused before anything is written."""
  path = os.path.join(workdir, "config.json")
  if os.path.exists(path) and not _is_run_config(path):
    raise ConfigError(f"{path}: not an asl_jax run's config (unreadable JSON, or fields asl_jax does not have), "
                      "and training would overwrite it: choose another --workdir, or remove the file if it is a "
                      "damaged copy of this run's (nothing was written)")


def _is_run_config(path: str) -> bool:
  """Whether `path` holds an asl_jax config (JSON whose keys are config fields), not someone else's file."""
  try:
    saved = run_files.read_json(path, "the run's configuration")
  except CheckpointError:
    return False
  return bool(saved) and set(saved) <= set(config_lib.FIELDS)


def _truncate_jsonl(path: str, up_to_step: int, steps_per_epoch: int) -> None:
  """Keeps the rows of epochs that ended at or before `up_to_step`, numbered 1-based from their step (which
  also renumbers rows of runs written when metrics.jsonl counted epochs from 0)."""
  if not os.path.exists(path):
    return
  rows = run_files.read_jsonl(path)
  kept = [{**r, "epoch": r["step"] // steps_per_epoch} for r in rows if r["step"] <= up_to_step]
  with atomic.atomic_open(path) as f:
    f.writelines(json.dumps(r) + "\n" for r in kept)


def _better(metric: str, value: float, best: float | None) -> bool:
  if best is None:
    return True
  return value < best if metric == "val_loss" else value > best


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains (resuming from workdir when it holds a checkpoint), validates each epoch, evaluates the best
  checkpoint on test. Returns {"status": "done"|"interrupted", "best_epoch", "best_value", "num_params",
  "test_report": path|None, "test": its metrics, "signal": signum when interrupted by a signal}.

  Crash consistency: at the end of an epoch the state is saved to `latest` first (its info carries the
  epoch's metrics row and which step is the best), then to `best` if the epoch improved, then the row is
  appended to metrics.jsonl. A process killed anywhere in that sequence resumes from the newest complete
  checkpoint of either kind and repairs what the sequence had not written yet (`_reconcile`), so a rerun
  ends with exactly the metrics of an uninterrupted run. One process at a time: the workdir is locked."""
  with _StopFlag() as stop:
    initialize_distributed(config)
    is_main = jax.process_index() == 0
    _say(is_main, f"loading the data: {packed_lib.DataSpec.from_config(config).split_path} (packed once, then "
         "read from the cache)")
    setup = run_lib.prepare(config)
    if is_main:
      _refuse_foreign_workdir(workdir)
      _make_workdir(workdir)
    with WorkdirLock(workdir) if is_main else contextlib.nullcontext():
      return _train(config, workdir, setup, stop)


def _train(config, workdir: str, setup: run_lib.Setup, stop: _StopFlag) -> dict:
  """The steps of a run: record its inputs, build or restore the state, train the remaining epochs, test."""
  parallel = DataParallel()
  parallel.check_batch(config.batch_size)
  is_main = jax.process_index() == 0
  setup = _with_visual_norm(config, setup)
  if is_main:
    _write_run_files(config, workdir, setup)
  state = run_lib.init_state(config, setup, parallel)
  n_params = models.count_params(state.params)
  _describe(config, setup, parallel, n_params, is_main)
  if config.init_from and not _has_checkpoints(workdir):  # a new run from a trained one (fine-tuning)
    params, report = warm_start.warm_start(config, jax.device_get(state.params), setup.packed.split.glosses)
    state = jax.device_put(state.replace(params=params, ema_params=None if state.ema_params is None else params),
                           parallel.replicated)
    if is_main:
      atomic.write_json(os.path.join(workdir, warm_start.INIT_FILE), report)
    _say(is_main, warm_start.init_summary(report))
  ckpt = Checkpoints(workdir, config.max_to_keep, async_saves=config.async_checkpoints)
  try:
    state, info = _reconcile(config, ckpt, state, setup.steps_per_epoch,
                             _metrics_path(workdir) if is_main else None)
    state = jax.device_put(state, parallel.replicated)
    saved_report = _announce(config, workdir, setup, int(state.step), info, is_main)
    if saved_report is not None and ("head_weights" in saved_report) != _fits_head_weights(config, setup):
      saved_report = None  # fit_head_weights was switched since that report: test again
    # One evaluator (one jitted eval step) for validation and the final test.
    evaluator = evaluation.Evaluator.from_config(config, setup.model, parallel, setup.class_weights,
                                                 batch_size=_eval_batch(config, setup),
                                                 visual_norm=setup.visual_norm)
    state, info, interrupted = _train_epochs(config, workdir, setup, parallel, evaluator, state, info, ckpt, stop,
                                             is_main)
    if not interrupted:  # the best checkpoint's weights, read once for the calibration and the test
      params, step = ckpt.restore_subtree("best", run_lib.eval_params_name(config), state.eval_params)
      _calibrate(config, workdir, setup, parallel, evaluator, params, step, is_main)
    result = {"status": "interrupted" if interrupted else "done", "best_epoch": info["best_epoch"],
              "best_value": info["best_value"], "num_params": n_params, "test_report": None}
    if interrupted:
      result["signal"] = stop.signum
      name = signal.Signals(stop.signum).name if stop.signum else "stop request"
      _say(is_main, f"{name}: saved a checkpoint at step {int(state.step)} in {os.path.abspath(workdir)}; rerun "
           "the same command to resume")  # (the same command: its config and overrides are the user's)
    elif config.evaluate_test and len(setup.test_idx):
      result.update(_test_result(_test_report_path(workdir), saved_report) if saved_report else
                    _test(config, workdir, setup, parallel, evaluator, params, step, is_main))
    elif config.evaluate_test:
      _say(is_main, f"no test report: none of the test clips of {setup.packed.split.path} has features "
           "(see data_report.json)")
    return result
  finally:
    ckpt.close()


def _eval_batch(config, setup: run_lib.Setup) -> int:
  """config.eval_batch_size, or when 0 the larger of val and test rounded up to a multiple of 8, at most
  evaluation.EVAL_BATCH (a 94-clip val set padded to 256 clips would cost 2.7x its clips every epoch)."""
  return config.eval_batch_size or min(evaluation.EVAL_BATCH, -(-_eval_size(setup) // 8) * 8)


def _with_visual_norm(config, setup: run_lib.Setup) -> run_lib.Setup:
  """The setup with the training set's visual statistics when the run standardises its visual features."""
  if setup.model.use_visual and config.visual_standardize:
    return dataclasses.replace(setup, visual_norm=packed_lib.visual_stats(setup.packed, setup.train_idx))
  return setup


def _write_run_files(config, workdir: str, setup: run_lib.Setup) -> None:
  """config.json (refusing a conflicting resume), input_spec.json (refusing different inputs), the label
  mappings, the data report and the visual statistics."""
  packed = setup.packed
  spec = run_lib.InputSpec.of(config, packed)
  if _has_checkpoints(workdir) and os.path.exists(os.path.join(workdir, run_lib.INPUT_SPEC_FILE)):
    spec.check_resume(run_lib.InputSpec.load(workdir), workdir)
  _check_epochs(config, workdir, setup.steps_per_epoch)
  _prepare_workdir(config, workdir)
  spec.save(workdir)
  atomic.write_json(os.path.join(workdir, "label_mapping.json"), packed.split.label_mapping())
  atomic.write_json(os.path.join(workdir, "class_mapping.json"), packed.split.class_mapping())
  atomic.write_json(os.path.join(workdir, "data_report.json"), packed.report)
  if setup.visual_norm is not None:
    run_lib.save_visual_norm(workdir, setup.visual_norm)


def _check_epochs(config, workdir: str, steps: int) -> None:
  """`epochs` may differ from the saved run's: more (continue a finished or interrupted run; the
  learning-rate schedule is then the new plan's from the current step on), or fewer but not below what
  the run has trained."""
  path = os.path.join(workdir, "config.json")
  if not (_has_checkpoints(workdir) and os.path.exists(path)):
    return
  saved = run_files.read_json(path, "the run's configuration").get("epochs")
  if saved is None or saved == config.epochs:
    return
  ckpts = Checkpoints(workdir, read_only=True)
  try:
    step = max([ckpts.latest_step(k) or 0 for k in ("latest", "best")])
  finally:
    ckpts.close()
  done = step // steps
  if config.epochs * steps < step:
    raise ConfigError(f"config.epochs={config.epochs}: the run in {workdir} has trained {done} epochs already; "
                      f"epochs can grow, or shrink to no fewer than {math.ceil(step / steps)}")
  _say(jax.process_index() == 0, f"epochs {saved} -> {config.epochs}: continuing from epoch {done} (step {step}); "
       f"the learning-rate schedule is now the {config.epochs}-epoch plan's from this step on")


def _has_checkpoints(workdir: str) -> bool:
  return os.path.isdir(os.path.join(workdir, "checkpoints", "latest"))


def _metrics_path(workdir: str) -> str:
  return os.path.join(workdir, "metrics.jsonl")


def _describe(config, setup: run_lib.Setup, parallel: DataParallel, n_params: int, is_main: bool) -> None:
  packed, model = setup.packed, setup.model
  streams = ("landmarks+visual (" + config.fusion_type + " fusion)" if model.use_visual and model.use_landmarks
             else "visual only" if model.use_visual else "landmarks only")
  _say(is_main, f"data: {packed.report['packed']} clips with features from {packed.split.path} "
       f"({len(packed.report['missing_features'])} without features, {len(packed.report['skipped'])} skipped)")
  _say(is_main, f"model: {config.encoder} encoder, {streams}, {packed.num_classes} classes, "
       f"{n_params / 1e6:.2f} M parameters; {parallel.num_devices} device(s), {setup.steps_per_epoch} steps/epoch")
  note = allocator.advice() if jax.default_backend() == "cpu" else None
  if note:
    _say(is_main, f"note: {note}")


def _test_report_path(workdir: str) -> str:
  return os.path.join(workdir, "eval_test", "report.json")


def _announce(config, workdir: str, setup: run_lib.Setup, start_step: int, info: dict, is_main: bool):
  """Says whether the run starts, resumes or is finished (and the warmup notice); returns the finished
  run's test report when it is already there for its best checkpoint, else None."""
  steps = setup.steps_per_epoch
  finished = start_step >= config.epochs * steps
  path = _test_report_path(workdir)
  saved_report = _report_of_step(path, info.get("best_step")) if finished else None
  if finished:
    where = f"; its test report: {os.path.abspath(path)}" if saved_report else ""
    _say(is_main, f"this run is finished ({config.epochs} epochs, best epoch {info['best_epoch']}){where}")
  elif start_step:
    _say(is_main, f"resuming from step {start_step} (epoch {start_step // steps + 1} of {config.epochs})")
  if config.warmup_epochs > config.epochs and not finished:
    span = "the one epoch" if config.epochs == 1 else f"all {config.epochs} epochs"
    _say(is_main, f"note: warmup_epochs={config.warmup_epochs} is more than epochs={config.epochs}: the learning "
         f"rate warms up over {span}")
  return saved_report


def _train_epochs(config, workdir: str, setup: run_lib.Setup, parallel: DataParallel,
                  evaluator: evaluation.Evaluator, state, info: dict, ckpt: Checkpoints, stop: _StopFlag,
                  is_main: bool):
  """The epoch loop from the state's step to config.epochs; returns (state, info, interrupted). A stop
  request mid-epoch saves `latest` and returns; at an epoch's end the save sequence runs first.

  An epoch that saves nothing is validated on a worker thread while the next epoch trains
  (`_background_validation`): its row is completed, recorded and logged when the pass is done, and always
  before the next save and the next epoch's own row, so rows, checkpoints and their order are the same as
  with validation in line."""
  packed, model, steps = setup.packed, setup.model, setup.steps_per_epoch
  train_data = parallel.replicate(input_pipeline.select(packed, setup.train_idx))
  val_data = (parallel.replicate(input_pipeline.select(packed, input_pipeline.padded_indices(
      setup.val_idx, _eval_size(setup)))) if len(setup.val_idx) else None)
  val_labels = packed.labels[setup.val_idx]
  metric = config.best_metric if val_data is not None else None
  weights = None if setup.class_weights is None else parallel.replicate(setup.class_weights)
  unit_weights = None if weights is None else parallel.replicate(np.ones_like(setup.class_weights))
  step_fn = make_train_step(config, model, steps, parallel, setup.visual_norm)
  schedule = run_lib.make_schedule(config, steps)
  train_labels = packed.labels[setup.train_idx]
  start_step = int(state.step)
  workers = futures.ThreadPoolExecutor(1, thread_name_prefix="asl_jax_train")
  writer = workers.submit(_summary_writer, workdir) if is_main else None  # (its import overlaps compilation)
  if start_step < config.epochs * steps:  # compiled ahead, so the first epoch's progress and ETA are the steps'
    t0 = time.time()
    _say(is_main, "compiling the train step")
    first_order = parallel.shard_order(epoch_order(config, train_labels, start_step // steps, steps))
    step_fn = step_fn.lower(state, train_data, first_order, weights).compile()
    _say(is_main, f"compiled the train step in {time.time() - t0:.1f} s")
  writer = writer.result() if writer is not None else None
  background = _background_validation(config, parallel, val_data)
  announced = set()
  pending: dict = {}  # a best epoch not written yet: {"step", "tree" (_best_tree, a copy), "info"}
  deferred: list = []  # at most one epoch validating in the background: (row, step, weights copy, future)
  last_save = time.time()

  def once(what: str, message: str) -> None:
    if what not in announced:
      announced.add(what)
      _say(is_main, message)

  def validate(params) -> tuple[dict, float]:
    t1 = time.time()
    val = evaluator.evaluate(params, val_data, val_labels, packed.num_classes)
    return evaluation.flat_metrics(val, "val"), round(time.time() - t1, 3)

  def settle(wait: bool) -> None:
    """Completes the epoch validating in the background (if any) once its pass is done, or waits for it."""
    nonlocal info
    if deferred and (wait or deferred[0][3].done()):
      row, step, tree, future = deferred.pop()
      val, seconds = future.result()
      row = {**row, **val, "val_background_time_s": seconds}
      info = _record_epoch(info, row, metric, step, lambda: tree, pending)
      if is_main:
        _log_epoch(_metrics_path(workdir), writer, row)

  try:
    for epoch in range(start_step // steps, config.epochs):  # 0-based here, 1-based in every output
      first = start_step - epoch * steps if epoch == start_step // steps else 0
      if first == 0:
        state = state.replace(epoch_sums=parallel.replicate(np.zeros(4, np.float32)))
      order = parallel.shard_order(epoch_order(config, train_labels, epoch, steps))
      epoch_weights = weights if epoch >= config.class_weights_start_epoch else unit_weights
      t0 = time.time()
      try:
        state, complete = _run_steps(config, state, step_fn, train_data, order, epoch_weights, epoch, first, steps,
                                     schedule, stop, is_main, poll=lambda: settle(wait=False))
      except TrainingDivergedError as e:
        kept = ckpt.latest_step("latest")
        kept = (f"the last good checkpoint (step {kept}) is kept" if kept is not None else
                "no checkpoint had been saved yet")
        raise TrainingDivergedError(f"{e}. {kept[0].upper()}{kept[1:]}: lower config.lr, check the features for "
                                    "extreme values, or keep config.grad_clip") from None
      settle(wait=True)
      if not complete:
        _save_latest(config, ckpt, state, info, pending)
        return state, info, True
      last = epoch + 1 == config.epochs
      sums = _checked_sums(state, None, epoch)
      row = {"epoch": epoch + 1, "step": int(state.step), "lr": float(schedule(int(state.step) - 1)),
             "train_loss": float(sums[0] / sums[1]), "train_top1": float(sums[2] / sums[3]),
             "steps_time_s": round(time.time() - t0, 3)}
      save_latest = last or ((epoch + 1) % config.checkpoint_every == 0 and
                             time.time() - last_save >= config.checkpoint_min_interval_s)
      validating = val_data is not None and ((epoch + 1) % config.eval_every == 0 or last)
      if validating:
        once("val", f"validating on {len(setup.val_idx)} clips " + (
            "after each epoch" if config.eval_every == 1 else f"every {config.eval_every} epochs and after the "
            "last") + (" (the first pass compiles the evaluation step" + (
                "; epochs that save no checkpoint validate in the background while the next trains)"
                if background else ")")))
      every = "each epoch" if config.checkpoint_every == 1 else f"every {config.checkpoint_every} epochs"
      if config.checkpoint_min_interval_s:
        every += f", at most once per {config.checkpoint_min_interval_s:g} s,"
      once("save", f"saving checkpoints to {os.path.join(os.path.abspath(workdir), 'checkpoints')} (latest after "
           f"{every} and after the last and on SIGTERM / Ctrl-C; best when "
           f"{config.best_metric + ' improves' if val_data is not None else 'an epoch ends'}, written with latest)")
      if validating and background and not save_latest:
        tree = _copy_tree(state.eval_params)  # the next step donates the state's buffers
        future = workers.submit(validate, tree)
        deferred.append(({**row, "checkpoint_time_s": 0.0, "epoch_time_s": round(time.time() - t0, 3)},
                         int(state.step), {run_lib.eval_params_name(config): tree}, future))
      else:
        if validating:
          val, seconds = validate(state.eval_params)
          row.update(val, val_time_s=seconds)
        t1 = time.time()
        info = _record_epoch(info, row, metric, int(state.step),
                             lambda: _copy_tree(_best_tree(config, state)), pending)
        if save_latest:
          _save_latest(config, ckpt, state, info, pending)
          last_save = time.time()
        row = {**row, "checkpoint_time_s": round(time.time() - t1, 3), "epoch_time_s": round(time.time() - t0, 3)}
        if is_main:
          _log_epoch(_metrics_path(workdir), writer, row)
      if stop.requested:
        settle(wait=True)
        if not save_latest:
          _save_latest(config, ckpt, state, info, pending)
        return state, info, True
  finally:
    workers.shutdown(wait=True)  # (an error mid-epoch: the background pass ends before the process does)
    if writer is not None:
      writer.close()
  return state, info, False


def _background_validation(config, parallel: DataParallel, val_data) -> bool:
  """Whether finished epochs that save nothing validate on a worker thread during the next epoch: with
  config.background_validation, on one device in one process (with several, two programs with collectives
  launched from two threads could interleave differently on each device), and with best_checkpoint=weights
  (the pass holds a copy of the weights, not of the whole state)."""
  return (config.background_validation and val_data is not None and parallel.num_devices == 1 and
          jax.process_count() == 1 and config.best_checkpoint == "weights")


@jax.jit
def _copy_tree(tree):
  """A copy of a tree of device arrays on fresh buffers (one compiled program, not one per leaf shape)."""
  return jax.tree_util.tree_map(jnp.copy, tree)


def _eval_size(setup: run_lib.Setup) -> int:
  """The clip count val and test are padded to, so the final test reuses validation's compiled step."""
  return max(len(setup.val_idx), len(setup.test_idx), 1)


def _run_steps(config, state, step_fn, train_data, order, weights, epoch: int, first: int, steps: int, schedule,
               stop: _StopFlag, is_main: bool, poll=None):
  """Steps `first`..`steps` of one epoch (a progress bar, the loss checked every log_every steps, `poll()`
  after each dispatch); returns (state, whether the epoch completed) — False when a stop request came
  first."""
  bar = _progress(config, is_main, steps, first, f"epoch {epoch + 1}/{config.epochs}")
  try:
    for s in range(first, steps):
      state, loss = step_fn(state, train_data, order, weights)
      if poll is not None:
        poll()
      if bar is not None:
        bar.update(1)
      if (s + 1) % config.log_every == 0 or s + 1 == steps:
        sums = _checked_sums(state, loss, epoch)
        if bar is not None:
          bar.set_postfix(loss=f"{sums[0] / sums[1]:.3f}", acc=f"{sums[2] / sums[3]:.3f}",
                          lr=f"{float(schedule(int(state.step) - 1)):.2e}")
      if stop.requested:
        return state, s + 1 == steps
    return state, True
  finally:
    if bar is not None:
      bar.close()


def _checked_sums(state, loss, epoch: int) -> np.ndarray:
  """The running epoch sums on the host, after checking them (and the last loss) are finite."""
  sums = np.asarray(jax.device_get(state.epoch_sums))
  _check_finite(sums, float(sums[0] / sums[1]) if loss is None else float(loss), epoch, int(state.step))
  return sums


def _test_result(path: str, report: dict) -> dict:
  """The result keys for a test report: its path and its metrics."""
  return {"test_report": path, "test": {"per_instance": report["per_instance"], "per_class": report["per_class"]}}


def _test(config, workdir: str, setup: run_lib.Setup, parallel: DataParallel, evaluator: evaluation.Evaluator,
          params, step: int, is_main: bool) -> dict:
  """Evaluates the best checkpoint (its weights `params`, of step `step`) on the test split and writes
  DIR/eval_test/ (after fitting the head weights on val, when the config asks for it)."""
  packed = setup.packed
  _say(is_main, f"testing the best checkpoint (epoch {step // setup.steps_per_epoch}) on {len(setup.test_idx)} "
       "clips")
  weights = _fit_head_weights(config, workdir, setup, parallel, evaluator, params, step, is_main)
  cal = calibration.load(workdir)
  temperature = cal["temperature"] if cal and cal.get("step") == step else 1.0
  if weights is not None or temperature != 1.0:
    model = setup.model.clone(head_weights=weights or setup.model.head_weights, temperature=temperature)
    evaluator = evaluation.Evaluator.from_config(config, model, parallel, setup.class_weights,
                                                 visual_norm=setup.visual_norm)
  _fault("test_evaluation")
  test = parallel.replicate(input_pipeline.select(packed, input_pipeline.padded_indices(setup.test_idx,
                                                                                      _eval_size(setup))))
  summary = evaluator.evaluate(params, test, packed.labels[setup.test_idx], packed.num_classes, with_probs=True)
  if not is_main:
    return {}
  report = evaluation.build_report(summary, "test", step, packed.split.glosses)
  report["clips_without_hands"] = evaluation.clips_without_hands(packed, setup.test_idx)
  if weights is not None:
    report["head_weights"] = dict(zip(models.hybrid.HEAD_NAMES, weights))
  report["calibration"] = evaluation.calibration_report(summary["probs"], packed.labels[setup.test_idx], temperature,
                                                        cal.get("unknown_threshold") if cal else None)
  path = evaluation.write_report(os.path.dirname(_test_report_path(workdir)), report, summary,
                                 packed.labels[setup.test_idx], packed.split.glosses, _metrics_path(workdir))
  return _test_result(path, report)


def _calibrate(config, workdir: str, setup: run_lib.Setup, parallel: DataParallel,
               evaluator: evaluation.Evaluator, params, step: int, is_main: bool) -> None:
  """Fits the best checkpoint's calibration (its weights `params`, of step `step`) on val
  (DIR/calibration.json: the temperature, the unknown threshold, the enrolment scales; once per best
  checkpoint), when the run has val clips it did not train on."""
  if not len(setup.val_idx) or "val" in splits_lib.train_subsets(config.train_subsets):
    _say(is_main, "no calibration: the run has no held-out val clips (its probabilities are the model's own, and "
         "it calls no sign unknown)")
    return
  cal = calibration.load(workdir)
  if cal is not None and cal.get("step") == step:
    return
  weights = _fit_head_weights(config, workdir, setup, parallel, evaluator, params, step, is_main)
  if weights is not None:
    evaluator = evaluation.Evaluator.from_config(config, setup.model.clone(head_weights=weights), parallel,
                                                 setup.class_weights, visual_norm=setup.visual_norm)
  packed = setup.packed
  val = parallel.replicate(input_pipeline.select(packed, setup.val_idx))
  train = input_pipeline.select(packed, setup.train_idx)
  cal = evaluation.calibrate(evaluator, jax.device_get(params), val, packed.labels[setup.val_idx], step, train,
                             packed.labels[setup.train_idx])
  if is_main:
    calibration.save(workdir, cal)
  _say(is_main, f"calibrated on {cal['clips']} val clips: temperature {cal['temperature']:.3f} (val ECE "
       f"{cal['val_ece_before']:.3f} -> {cal['val_ece_after']:.3f}), unknown below a top-1 probability of "
       f"{cal['unknown_threshold']:.3f}")


def _fits_head_weights(config, setup: run_lib.Setup) -> bool:
  return run_lib.fits_head_weights(config, setup.model) and len(setup.val_idx) > 0


def _fit_head_weights(config, workdir: str, setup: run_lib.Setup, parallel: DataParallel,
                      evaluator: evaluation.Evaluator, params, step: int, is_main: bool) -> tuple | None:
  """With per-stream heads and config.fit_head_weights: the head weights minimising the val loss of the
  best checkpoint (DIR/head_weights.json, fitted once per best checkpoint); None otherwise."""
  if not _fits_head_weights(config, setup):
    return None
  fitted = run_lib.load_head_weights(workdir)
  if fitted is None or fitted.get("step") != step:
    val = parallel.replicate(input_pipeline.select(setup.packed, setup.val_idx))
    head_log_probs = evaluator.head_log_probs(params, val)
    fitted = {**evaluation.fit_head_weights(head_log_probs, setup.packed.labels[setup.val_idx]),
              "heads": list(models.hybrid.HEAD_NAMES), "step": step}
    if is_main:
      run_lib.save_head_weights(workdir, fitted)
    _say(is_main, "head weights fitted on val (" + ", ".join(
        f"{n} {w:g}" for n, w in zip(models.hybrid.HEAD_NAMES, fitted["weights"])) +
         f"): val loss {fitted['val_loss']:.4f}, equal weights {fitted['equal_val_loss']:.4f}")
  return tuple(fitted["weights"])


def _report_of_step(path: str, step) -> dict | None:
  """The evaluation report at `path` if it is a readable report of checkpoint `step`, else None."""
  if step is None:
    return None
  try:
    with open(path, encoding="utf-8") as f:
      report = json.load(f)
  except (OSError, ValueError):
    return None
  return report if report.get("checkpoint_step") == step else None


def _record_epoch(info: dict, row: dict, metric: str | None, step: int, best_tree, pending: dict) -> dict:
  """The info after a finished epoch (its row; the best so far). If the epoch improved on the best
  validated epoch (every epoch when there is no validation), `best_tree()` (a copy of what `best` holds:
  the next train step donates the state's buffers) becomes the pending best, written just before the next
  latest (`_save_latest`). Best is never newer than latest on disk but for a moment: a kill there leaves a
  best that the resumed run removes and writes again."""
  improved = metric is None or (metric in row and _better(metric, row[metric], info["best_value"]))
  info = {**info, "epoch": row["epoch"], "row": row}
  if improved:
    info.update(best_value=row.get(metric), best_epoch=row["epoch"], best_step=step)
    pending.update(step=step, tree=best_tree(), info=info)
  return info


def _save_latest(config, ckpt: Checkpoints, state, info: dict, pending: dict) -> None:
  """The save sequence: the pending best (if any), then latest."""
  if pending:
    ckpt.save("best", pending["step"], pending["tree"], pending["info"])
    pending.clear()
  _fault("between_saves")
  ckpt.save("latest", int(state.step), state, info)
  _fault("after_saves")


def _best_tree(config, state):
  """What the best checkpoint holds: the weights inference reads (`best_checkpoint=weights`, under their
  TrainState field name), or the whole state."""
  return state if config.best_checkpoint == "state" else {run_lib.eval_params_name(config): state.eval_params}


def _reconcile(config, ckpt: Checkpoints, state, steps_per_epoch: int, metrics_path: str | None):
  """(state, info) to resume from, after repairing an interrupted save sequence:

  - resume from the newest latest checkpoint (a fresh start when there is none);
  - best checkpoints newer than it are removed: training from there repeats those epochs exactly and saves
    them again (with checkpoint_every > 1, or a latest folder lost);
  - a latest whose info names itself as the best step, with no best checkpoint at that step yet (killed
    between the two saves), is copied to best;
  - metrics.jsonl keeps the rows of the epochs up to that checkpoint only, and gets its epoch's row back from
    the checkpoint when the process died before appending it."""
  info = {"epoch": 0, "best_value": None, "best_epoch": None}
  latest = ckpt.latest_step("latest")
  for step in ckpt.all_steps("best"):
    if latest is None or step > latest:
      ckpt.delete("best", step)
  if latest is None:
    if metrics_path:
      _truncate_jsonl(metrics_path, 0, steps_per_epoch)
    return state, info
  state, info = ckpt.restore("latest", state)
  if info.get("best_step") == latest and latest not in ckpt.all_steps("best"):
    ckpt.save("best", latest, _best_tree(config, state), info)
  # Epochs are 1-based everywhere (runs written before counted from 0 in metrics.jsonl and the info).
  if info.get("best_step") is not None:
    info["best_epoch"] = info["best_step"] // steps_per_epoch
  if metrics_path:
    step = int(state.step)
    _truncate_jsonl(metrics_path, step, steps_per_epoch)
    row = info.get("row")
    if row is not None and row["step"] == step and not _has_step(metrics_path, step):
      with open(metrics_path, "a", encoding="utf-8") as f:
        f.write(json.dumps({**row, "epoch": step // steps_per_epoch}) + "\n")
  return state, info


def _has_step(path: str, step: int) -> bool:
  if not os.path.exists(path):
    return False
  return any(row.get("step") == step for row in run_files.read_jsonl(path))


def _check_finite(sums: np.ndarray, loss: float, epoch: int, step: int) -> None:
  if not (np.isfinite(sums).all() and np.isfinite(loss)):
    raise TrainingDivergedError(
        f"the training loss became {loss} at epoch {epoch + 1}, step {step}; stopped without saving")


def _progress(config, is_main: bool, total: int, initial: int, desc: str):
  """The epoch's progress bar, on a terminal only: in a log file a bar is `\r` fragments, and the epoch rows
  already say everything."""
  if not (config.progress_bar and is_main and sys.stderr.isatty()):
    return None
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
  return tqdm(total=total, initial=initial, desc=desc, leave=False, dynamic_ncols=True)


def _summary_writer(workdir: str):
  from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
  return SummaryWriter(os.path.join(workdir, "tensorboard"))


def _log_epoch(path: str, writer, row: dict) -> None:
  with open(path, "a", encoding="utf-8") as f:
    f.write(json.dumps(row) + "\n")
  for k, v in row.items():
    if k not in ("epoch", "step"):
      writer.add_scalar(k, v, row["epoch"])
  writer.flush()
  _say(True, f"epoch {row['epoch']}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()
                                                       if k not in ("epoch", "step")))


def _say(is_main: bool, message: str) -> None:
  """A user-facing progress line (main process only), on stderr: stdout holds the results alone. Once a
  progress bar has been shown, through tqdm.write, so a line logged mid-epoch (a background validation's
  row) goes above the bar instead of through it."""
  if not is_main:
    return
  if "tqdm" in sys.modules:
    from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel  (already imported)
    tqdm.write(message, file=sys.stderr)
    sys.stderr.flush()
  else:
    print(message, file=sys.stderr, flush=True)
