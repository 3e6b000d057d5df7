"""Training: the jitted data-parallel step and the epoch loop with its validation, saves and logs. Building
the run (model, data, optimiser, TrainState) is training/setup.py; the run directory and its save sequence
are runs/run_dir.py; what follows the epochs (head weights, calibration, the test) is training/finish.py.

Determinism: every random number derives from `config.seed` and the step (dropout, augmentation) or the
epoch (data order), so a run restored from a checkpoint continues exactly as if it had not stopped.
"""

from __future__ import annotations

from concurrent import futures
import math
import os
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np

from asl_jax import models
from asl_jax.data import augment as aug_lib, input_pipeline, landmark_features, packed as packed_lib
from asl_jax.errors import ConfigError, TrainingDivergedError
from asl_jax.evaluation import evaluator as evaluation
from asl_jax.models import losses
from asl_jax.runs import run_dir
from asl_jax.runs.checkpoints import Checkpoints, eval_params_name
from asl_jax.runs.run_dir import RunDir
from asl_jax.sharding import DataParallel, initialize_distributed
from asl_jax.training import finish, setup as setup_lib, warm_start
from asl_jax.training.console import StopFlag, announce, describe_run, progress_bar, say


MIXUP_STREAM = 7  # fold_in index of the mixup key
VIEW_STREAM = 11  # fold_in index of the second view's augmentation key (supcon_weight > 0)


def make_train_step(config, model, steps_per_epoch: int, parallel: DataParallel, visual_norm=None, outlier=None):
  """The jitted step: (state, data, order (S, B), class_weights) -> (state, loss).

  With per-stream heads (aux_loss_weight > 0), the loss is the fused head's plus aux_loss_weight times the
  mean of the two streams' own losses, so each stream learns to classify by itself. With mixup
  (`mixup_prob` > 0, `augment.mixup`) every one of these losses is blended over both clips' labels. `outlier`:
  the class index whose clips are trained towards the uniform distribution (`losses.weighted_ce_terms`).
  With `supcon_weight` > 0 the batch is two augmented views of the same clips (mixed alike), and the loss adds
  that weight times `losses.supervised_contrastive` of their embeddings (the last layer's input)."""
  aug = aug_lib.AugmentConfig.from_config(config)
  features = landmark_features.FeatureConfig.from_config(config)
  base_key = jax.random.fold_in(jax.random.key(config.seed), 1)
  # rbg: the masks from XLA's RngBitGenerator, keyed by seed and step (the augmentation keeps threefry).
  dropout_key = (None if config.dropout_rng == "threefry" else
                 jax.random.fold_in(jax.random.key(config.seed, impl=config.dropout_rng), 2))
  smoothing, num_frames, ema_decay = config.label_smoothing, config.num_frames, config.ema_decay
  aux_weight = config.aux_loss_weight
  supcon_weight, supcon_temperature = config.supcon_weight, config.supcon_temperature

  def step(state: setup_lib.TrainState, data, order, class_weights):
    key = jax.random.fold_in(base_key, state.step)
    k_batch, k_dropout = jax.random.split(key)
    if dropout_key is not None:
      k_dropout = jax.random.fold_in(dropout_key, state.step)
    idx = jax.lax.with_sharding_constraint(order[state.step % steps_per_epoch], parallel.batch)
    batch = input_pipeline.make_batch(data, idx, k_batch, num_frames, aug, model.use_landmarks, model.use_visual,
                                      features, visual_norm=visual_norm)
    k_mix = jax.random.fold_in(k_batch, MIXUP_STREAM)  # a key of its own: the other draws do not depend on mixup
    batch, partner, lam = aug_lib.mixup(k_mix, batch, aug)
    if supcon_weight > 0:  # a second augmented view of the same clips, mixed with the same partners and lambda
      view = input_pipeline.make_batch(data, idx, jax.random.fold_in(k_batch, VIEW_STREAM), num_frames, aug,
                                       model.use_landmarks, model.use_visual, features, visual_norm=visual_norm)
      view, _, _ = aug_lib.mixup(k_mix, view, aug)
      batch = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), batch, view)
      partner = None if partner is None else jnp.concatenate([partner, partner])
    ce = lambda lg: losses.mixed_ce_terms(lg, batch["labels"], partner, lam, class_weights, smoothing, outlier)  # noqa: E731

    def loss_fn(params):
      rngs = {"dropout": k_dropout}
      if supcon_weight > 0:
        (logits, aux), inter = model.apply({"params": params}, batch, train=True, aux=True, rngs=rngs,
                                           mutable=["intermediates"])
        embedding, = inter["intermediates"]["head"]["embedding"]
      else:
        logits, aux = model.apply({"params": params}, batch, train=True, aux=True, rngs=rngs)
      num, den = ce(logits)
      loss = num / den
      if aux:
        terms = [ce(a) for a in aux.values()]
        loss = loss + aux_weight * sum(n / d for n, d in terms) / len(terms)
      if supcon_weight > 0:
        loss = loss + supcon_weight * losses.supervised_contrastive(embedding, batch["labels"], supcon_temperature)
      return loss, (logits, num, den)

    (loss, (logits, num, den)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    new_state = state.apply_gradients(grads=grads)
    if ema_decay > 0:
      new_state = new_state.replace(ema_params=setup_lib.ema_update(state.ema_params, new_state.params, ema_decay, state.step))
    state = new_state
    correct = (jnp.argmax(logits, -1) == batch["labels"]).sum()
    sums = jnp.stack([num, den, correct.astype(jnp.float32), jnp.float32(batch["labels"].shape[0])])
    return state.replace(epoch_sums=state.epoch_sums + sums), loss

  return jax.jit(step, out_shardings=(parallel.replicated, parallel.replicated), donate_argnums=(0,))


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains (resuming from workdir when it holds a checkpoint), validates each epoch, evaluates the best
  checkpoint on test. Returns {"status": "done"|"interrupted", "best_epoch", "best_value", "num_params",
  "test_report": path|None, "test": its metrics, "signal": signum when interrupted by a signal}.

  The run directory (runs/run_dir.py) is locked for the process, and its save sequence makes a killed run
  resume to exactly the metrics of an uninterrupted one."""
  with StopFlag() as stop:
    initialize_distributed(config)
    is_main = jax.process_index() == 0
    say(is_main, f"loading the data: {packed_lib.DataSpec.from_config(config).split_path} (packed once, then "
        "read from the cache)")
    setup = setup_lib.prepare(config)
    with run_dir.open_for_training(workdir, is_main) as run:
      return _train(config, run, setup, stop, is_main)


def _train(config, run: RunDir, setup: setup_lib.Setup, stop: StopFlag, is_main: bool) -> dict:
  """The steps of a run: record its inputs, build or restore the state, train the remaining epochs, finish."""
  parallel = DataParallel()
  parallel.check_batch(config.batch_size)
  setup = setup_lib.with_visual_norm(config, setup)
  if is_main:
    spec = run_dir.InputSpec.of(config, setup.packed)
    run.check_resume(config, spec)
    _check_epochs(config, run, setup.steps_per_epoch)
    run.record_inputs(config, spec, setup.packed.split, setup.packed.report, setup.visual_norm)
  state = setup_lib.init_state(config, setup, parallel)
  n_params = models.count_params(state.params)
  describe_run(config, setup, parallel, n_params, is_main)
  if config.init_from and not run.has_checkpoints():  # a new run from a trained one (fine-tuning)
    params, report = warm_start.warm_start(config, jax.device_get(state.params), setup.packed.split.glosses)
    state = jax.device_put(state.replace(params=params, ema_params=None if state.ema_params is None else params),
                           parallel.replicated)
    if is_main:
      run.save_init_report(report)
    say(is_main, warm_start.init_summary(report))
  ckpt = Checkpoints(run.path, config.max_to_keep, async_saves=config.async_checkpoints)
  try:
    has_val = len(setup.val_idx) > 0
    saves = run_dir.SaveSequence(run, ckpt, lambda s: _best_tree(config, s),
                                 config.best_metric if has_val else None, writes_files=is_main)
    state, info = saves.resume(state, setup.steps_per_epoch)
    state = jax.device_put(state, parallel.replicated)
    # One evaluator (one jitted eval step) for validation and the final test.
    evaluator = evaluation.Evaluator.from_config(config, setup.model, parallel, setup.class_weights,
                                                 batch_size=setup_lib.eval_batch_size(config, setup),
                                                 visual_norm=setup.visual_norm)
    finisher = finish.Finisher(config, run, setup, parallel, evaluator, is_main, setup_lib.eval_size(setup))
    saved_report = announce(config, run, setup, int(state.step), info, is_main)
    if saved_report is not None and ("head_weights" in saved_report) != finisher.fits_head_weights():
      saved_report = None  # fit_head_weights was switched since that report: test again
    loop = _EpochLoop(config, run, setup, parallel, evaluator, saves, stop, is_main)
    state, info, interrupted = loop.train(state, info)
    result = {"status": "interrupted" if interrupted else "done", "best_epoch": info["best_epoch"],
              "best_value": info["best_value"], "num_params": n_params, "test_report": None}
    if interrupted:
      result["signal"] = stop.signum
      name = signal.Signals(stop.signum).name if stop.signum else "stop request"
      say(is_main, f"{name}: saved a checkpoint at step {int(state.step)} in {os.path.abspath(run.path)}; rerun "
          "the same command to resume")  # (the same command: its config and overrides are the user's)
      return result
    # The best checkpoint's weights, read once for the calibration and the test.
    params, step = ckpt.restore_subtree("best", eval_params_name(config), state.eval_params)
    finisher.calibrate(params, step)
    if config.evaluate_test and len(setup.test_idx):
      result.update(finish.test_result(run.report_path("test"), saved_report) if saved_report else
                    finisher.test(params, step))
    elif config.evaluate_test:
      say(is_main, f"no test report: none of the test clips of {setup.packed.split.path} has features "
          "(see data_report.json)")
    return result
  finally:
    ckpt.close()


def _check_epochs(config, run: RunDir, steps: int) -> None:
  """`epochs` may differ from the saved run's: more (continue a finished or interrupted run; the
  learning-rate schedule is then the new plan's from the current step on), or fewer but not below what
  the run has trained."""
  saved = run.saved_epochs()
  if saved is None or saved == config.epochs:
    return
  ckpts = Checkpoints(run.path, read_only=True)
  try:
    step = max([ckpts.latest_step(k) or 0 for k in ("latest", "best")])
  finally:
    ckpts.close()
  done = step // steps
  if config.epochs * steps < step:
    raise ConfigError(f"config.epochs={config.epochs}: the run in {run.path} has trained {done} epochs already; "
                      f"epochs can grow, or shrink to no fewer than {math.ceil(step / steps)}")
  say(jax.process_index() == 0, f"epochs {saved} -> {config.epochs}: continuing from epoch {done} (step {step}); "
      f"the learning-rate schedule is now the {config.epochs}-epoch plan's from this step on")


def _best_tree(config, state):
  """What the best checkpoint holds: the weights inference reads (`best_checkpoint=weights`, under their
  TrainState field name), or the whole state."""
  return state if config.best_checkpoint == "state" else {eval_params_name(config): state.eval_params}


class _EpochLoop:
  """The epochs from the state's step to config.epochs. A stop request mid-epoch saves `latest` and
  returns; at an epoch's end the save sequence (runs.run_dir.SaveSequence) runs.

  An epoch that saves nothing is validated on a worker thread while the next epoch trains
  (`_background_validation`): its row is completed, recorded and logged when the pass is done, and always
  before the next save and the next epoch's own row, so rows, checkpoints and their order are the same as
  with validation in line."""

  def __init__(self, config, run: RunDir, setup: setup_lib.Setup, parallel: DataParallel,
               evaluator: evaluation.Evaluator, saves: run_dir.SaveSequence, stop: StopFlag, is_main: bool):
    self.config, self.run, self.setup, self.parallel = config, run, setup, parallel
    self.evaluator, self.saves, self.stop, self.is_main = evaluator, saves, stop, is_main
    packed = setup.packed
    self.train_data = parallel.replicate(input_pipeline.select(packed, setup.train_idx))
    self.val_data = (parallel.replicate(input_pipeline.select(packed, input_pipeline.padded_indices(
        setup.val_idx, setup_lib.eval_size(setup)))) if len(setup.val_idx) else None)
    self.train_labels, self.val_labels = packed.labels[setup.train_idx], packed.labels[setup.val_idx]
    self.weights = None if setup.class_weights is None else parallel.replicate(setup.class_weights)
    self.unit_weights = (None if self.weights is None else
                         parallel.replicate(np.ones_like(setup.class_weights)))
    self.schedule = setup_lib.make_schedule(config, setup.steps_per_epoch)
    self.background = _background_validation(config, parallel, self.val_data)
    self.announced: set[str] = set()
    self.deferred: list = []  # at most one epoch validating in the background: (row, step, weights copy, future)
    self.info: dict = {}
    self.writer = None

  def train(self, state, info: dict):
    """Returns (state, info, interrupted)."""
    config, steps = self.config, self.setup.steps_per_epoch
    self.info = info
    start_step = int(state.step)
    step_fn = make_train_step(config, self.setup.model, steps, self.parallel, self.setup.visual_norm,
                              self.setup.outlier)
    workers = futures.ThreadPoolExecutor(1, thread_name_prefix="asl_jax_train")
    self.workers = workers
    writer = workers.submit(_summary_writer, self.run) if self.is_main else None  # (overlaps compilation)
    try:
      if start_step < config.epochs * steps:  # compiled ahead, so the first epoch's progress and ETA are the steps'
        t0 = time.time()
        say(self.is_main, "compiling the train step")
        first_order = self.parallel.shard_order(setup_lib.epoch_order(config, self.train_labels, start_step // steps, steps))
        step_fn = step_fn.lower(state, self.train_data, first_order, self.weights).compile()
        say(self.is_main, f"compiled the train step in {time.time() - t0:.1f} s")
      self.writer = writer.result() if writer is not None else None
      last_save = time.time()
      for epoch in range(start_step // steps, config.epochs):  # 0-based here, 1-based in every output
        state, last_save, stopped = self._epoch(state, step_fn, epoch, start_step, last_save)
        if stopped:
          return state, self.info, True
    finally:
      workers.shutdown(wait=True)  # (an error mid-epoch: the background pass ends before the process does)
      if self.writer is not None:
        self.writer.close()
    return state, self.info, False

  def _epoch(self, state, step_fn, epoch: int, start_step: int, last_save: float):
    """One epoch, its validation and its saves; returns (state, time of the last save, stopped)."""
    config, steps, saves = self.config, self.setup.steps_per_epoch, self.saves
    first = start_step - epoch * steps if epoch == start_step // steps else 0
    if first == 0:
      state = state.replace(epoch_sums=self.parallel.replicate(np.zeros(4, np.float32)))
    order = self.parallel.shard_order(setup_lib.epoch_order(config, self.train_labels, epoch, steps))
    weights = self.weights if epoch >= config.class_weights_start_epoch else self.unit_weights
    t0 = time.time()
    try:
      state, complete = _run_steps(config, state, step_fn, self.train_data, order, weights, epoch, first, steps,
                                   self.schedule, self.stop, self.is_main, poll=lambda: self._settle(wait=False))
    except TrainingDivergedError as e:
      kept = saves.ckpt.latest_step("latest")
      kept = (f"the last good checkpoint (step {kept}) is kept" if kept is not None else
              "no checkpoint had been saved yet")
      raise TrainingDivergedError(f"{e}. {kept[0].upper()}{kept[1:]}: lower config.lr, check the features for "
                                  "extreme values, or keep config.grad_clip") from None
    self._settle(wait=True)
    if not complete:
      saves.save(state, self.info)
      return state, last_save, True
    last = epoch + 1 == config.epochs
    sums = _checked_sums(state, None, epoch)
    row = {"epoch": epoch + 1, "step": int(state.step), "lr": float(self.schedule(int(state.step) - 1)),
           "train_loss": float(sums[0] / sums[1]), "train_top1": float(sums[2] / sums[3]),
           "steps_time_s": round(time.time() - t0, 3)}
    save_latest = last or ((epoch + 1) % config.checkpoint_every == 0 and
                           time.time() - last_save >= config.checkpoint_min_interval_s)
    validating = self.val_data is not None and ((epoch + 1) % config.eval_every == 0 or last)
    self._announce_once(validating)
    if validating and self.background and not save_latest:
      tree = _copy_tree(state.eval_params)  # the next step donates the state's buffers
      future = self.workers.submit(self._validate, tree)
      self.deferred.append(({**row, "checkpoint_time_s": 0.0, "epoch_time_s": round(time.time() - t0, 3)},
                            int(state.step), {eval_params_name(config): tree}, future))
    else:
      if validating:
        val, seconds = self._validate(state.eval_params)
        row.update(val, val_time_s=seconds)
      t1 = time.time()
      self.info = saves.record(self.info, row, int(state.step), lambda: _copy_tree(_best_tree(config, state)))
      if save_latest:
        saves.save(state, self.info)
        last_save = time.time()
      self._log({**row, "checkpoint_time_s": round(time.time() - t1, 3), "epoch_time_s": round(time.time() - t0, 3)})
    if self.stop.requested:
      self._settle(wait=True)
      if not save_latest:
        saves.save(state, self.info)
      return state, last_save, True
    return state, last_save, False

  def _validate(self, params) -> tuple[dict, float]:
    t1 = time.time()
    val = self.evaluator.evaluate(params, self.val_data, self.val_labels, self.setup.packed.num_classes)
    return evaluation.flat_metrics(val, "val"), round(time.time() - t1, 3)

  def _settle(self, wait: bool) -> None:
    """Completes the epoch validating in the background (if any) once its pass is done, or waits for it."""
    if self.deferred and (wait or self.deferred[0][3].done()):
      row, step, tree, future = self.deferred.pop()
      val, seconds = future.result()
      row = {**row, **val, "val_background_time_s": seconds}
      self.info = self.saves.record(self.info, row, step, lambda: tree)
      self._log(row)

  def _log(self, row: dict) -> None:
    """The epoch's row: metrics.jsonl, TensorBoard, and one line for the user."""
    if not self.is_main:
      return
    self.saves.append_row(row)
    for k, v in row.items():
      if k not in ("epoch", "step"):
        self.writer.add_scalar(k, v, row["epoch"])
    self.writer.flush()
    say(True, f"epoch {row['epoch']}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()
                                                    if k not in ("epoch", "step")))

  def _announce_once(self, validating: bool) -> None:
    config = self.config
    if validating and "val" not in self.announced:
      self.announced.add("val")
      say(self.is_main, f"validating on {len(self.setup.val_idx)} clips " + (
          "after each epoch" if config.eval_every == 1 else f"every {config.eval_every} epochs and after the "
          "last") + (" (the first pass compiles the evaluation step" + (
              "; epochs that save no checkpoint validate in the background while the next trains)"
              if self.background else ")")))
    if "save" not in self.announced:
      self.announced.add("save")
      every = "each epoch" if config.checkpoint_every == 1 else f"every {config.checkpoint_every} epochs"
      if config.checkpoint_min_interval_s:
        every += f", at most once per {config.checkpoint_min_interval_s:g} s,"
      say(self.is_main, f"saving checkpoints to {os.path.abspath(self.run.checkpoints_dir)} (latest after "
          f"{every} and after the last and on SIGTERM / Ctrl-C; best when "
          f"{config.best_metric + ' improves' if self.val_data is not None else 'an epoch ends'}, written with "
          "latest)")


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


def _run_steps(config, state, step_fn, train_data, order, weights, epoch: int, first: int, steps: int, schedule,
               stop: StopFlag, is_main: bool, poll=None):
  """Steps `first`..`steps` of one epoch (a progress bar, the loss checked every log_every steps, `poll()`
  after each dispatch); returns (state, whether the epoch completed) — False when a stop request came
  first."""
  bar = progress_bar(config.progress_bar and is_main, steps, first, f"epoch {epoch + 1}/{config.epochs}")
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
  loss = float(sums[0] / sums[1]) if loss is None else float(loss)
  if not (np.isfinite(sums).all() and np.isfinite(loss)):
    raise TrainingDivergedError(
        f"the training loss became {loss} at epoch {epoch + 1}, step {int(state.step)}; stopped without saving")
  return sums


def _summary_writer(run: RunDir):
  from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
  return SummaryWriter(run.tensorboard_dir)
