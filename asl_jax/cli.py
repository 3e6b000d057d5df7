"""Console entry points (asl-train, asl-evaluate, asl-predict): absl flags -> one library call.

A user-facing error (AslJaxError) prints one line `error: ...` on stderr and exits with status 1.
"""

from __future__ import annotations

import json
import signal
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from asl_jax.errors import AslJaxError


def quiet_logs() -> None:
  """Libraries (Orbax) log every save at INFO; show warnings only unless --verbosity was given."""
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)


def run_guarded(fn) -> None:
  """Calls fn(); an AslJaxError becomes a one-line message and exit status 1."""
  quiet_logs()
  try:
    fn()
  except AslJaxError as e:
    logging.flush()
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  except KeyboardInterrupt:  # Ctrl-C outside training (loading, evaluation, ...): no traceback
    print("interrupted", file=sys.stderr)
    sys.exit(130)
  except OSError as e:  # a full disk, a read-only workdir, ...: the file and the reason, not a traceback
    logging.flush()
    print(f"error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
    sys.exit(1)


def _serve(action, argv=None, positional: bool = False) -> None:
  """app.run a main that rejects stray arguments (unless `positional`) and calls action(FLAGS, args)
  under run_guarded."""

  def main(argv_):
    if len(argv_) > 1 and not positional:
      raise app.UsageError(f"unexpected arguments: {argv_[1:]}")
    run_guarded(lambda: action(flags.FLAGS, argv_[1:]))

  app.run(main, argv=argv)


def train_main(argv=None):
  config_flags.DEFINE_config_file("config", None, "ml_collections config file (configs/*.py)",
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "run directory: checkpoints, logs, reports")
  flags.mark_flags_as_required(["config", "workdir"])

  def action(f, _):
    from asl_jax import train  # pylint: disable=import-outside-toplevel
    result = train.train_and_evaluate(f.config, f.workdir)
    print(json.dumps(result))
    if result["status"] == "interrupted":  # 130 for SIGINT (Ctrl-C), 143 for SIGTERM, as shells report them
      sys.exit(128 + (result.get("signal") or signal.SIGTERM))

  _serve(action, argv)


def evaluate_main(argv=None):
  flags.DEFINE_string("workdir", None, "training run directory; several, comma-separated, evaluate their "
                      "ensemble (averaged probabilities)")
  flags.DEFINE_string("out_dir", "", "where to write the report (default WORKDIR/eval_SPLIT, or "
                      "FIRST/eval_SPLIT_ensemble for several runs)")
  flags.DEFINE_enum("split", "test", ["test", "val", "train"], "which subset of the run's split file")
  flags.DEFINE_string("checkpoint", "best", "best, latest or a step number")
  flags.DEFINE_integer("batch_size", 0, "evaluation batch size (0: the run's eval_batch_size)")
  flags.DEFINE_string("data_dir", "", "the split file's directory, if it moved since training (default: saved)")
  flags.DEFINE_string("landmarks_dir", "", "the landmark files, if they moved (default: saved)")
  flags.DEFINE_string("gemma_features_dir", "", "the visual features, if they moved (default: saved)")
  flags.mark_flags_as_required(["workdir"])

  def action(f, _):
    from asl_jax import evaluate  # pylint: disable=import-outside-toplevel
    moved = {"data_dir": f.data_dir, "landmarks_dir": f.landmarks_dir, "gemma_features_dir": f.gemma_features_dir}
    report = evaluate.evaluate_workdir(f.workdir, f.split, f.checkpoint, f.batch_size, f.out_dir, moved)
    print(evaluate.format_table(report))
    print(f"report: {report['path']}")

  _serve(action, argv)


def predict_main(argv=None):
  flags.DEFINE_string("workdir", None, "training run directory; several, comma-separated, average their "
                      "probabilities (an ensemble)")
  flags.DEFINE_multi_string("landmarks", None, "landmark .npy files, directories of them, or videos "
                            "(videos need the extract extra); repeat or list after the flags")
  flags.DEFINE_string("gemma", None, "visual features: a file (one input) or a directory of {id}_gemma.npy")
  flags.DEFINE_string("landmarks_dir", None, "a directory of {id}_landmarks.npy files to predict (all of them)")
  flags.DEFINE_string("gemma_features_dir", None, "the directory of {id}_gemma.npy for them (same as --gemma DIR)")
  flags.DEFINE_integer("top_k", 5, "how many classes to print per input")
  flags.DEFINE_string("checkpoint", "best", "best, latest or a step number")
  flags.mark_flags_as_required(["workdir"])

  def action(f, args):
    from asl_jax import predict  # pylint: disable=import-outside-toplevel
    inputs = list(f.landmarks or []) + ([f.landmarks_dir] if f.landmarks_dir else []) + list(args)
    if f.gemma and f.gemma_features_dir:
      raise app.UsageError("give --gemma or --gemma_features_dir, not both")
    gemma = f.gemma or f.gemma_features_dir
    if not inputs:
      raise app.UsageError("give --landmarks=FILE.npy (or files / directories after the flags)")
    for row in predict.predict_files(f.workdir, inputs, gemma, f.top_k, f.checkpoint):
      if "warning" in row:
        print(f"warning: {row['file']}: {row['warning']}", file=sys.stderr)
      print(json.dumps(row))

  _serve(action, argv, positional=True)


def export_main(argv=None):
  flags.DEFINE_string("workdir", None, "training run directory")
  flags.DEFINE_string("out_dir", None, "where to write model.jax_export and meta.json (default DIR/export)")
  flags.DEFINE_string("checkpoint", "best", "best, latest or a step number")
  flags.mark_flags_as_required(["workdir"])

  def action(f, _):
    from asl_jax import export  # pylint: disable=import-outside-toplevel
    print(f"exported to {export.export_run(f.workdir, f.out_dir or f'{f.workdir}/export', f.checkpoint)}")

  _serve(action, argv)


if __name__ == "__main__":
  train_main()
