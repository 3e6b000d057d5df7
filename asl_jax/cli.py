"""Console entry points (asl-train, asl-evaluate, asl-predict): absl flags -> one library call.

A user-facing error (AslJaxError) prints one line `error: ...` on stderr and exits with status 1.
"""

from __future__ import annotations

import json
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


def train_main(argv=None):
  config_flags.DEFINE_config_file("config", None, "ml_collections config file (configs/*.py)",
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "run directory: checkpoints, logs, reports")
  flags.mark_flags_as_required(["config", "workdir"])

  def main(argv_):
    if len(argv_) > 1:
      raise app.UsageError(f"unexpected arguments: {argv_[1:]}")
    from asl_jax import train  # pylint: disable=import-outside-toplevel

    def go():
      result = train.train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir)
      print(json.dumps(result))
    run_guarded(go)

  app.run(main, argv=argv)


if __name__ == "__main__":
  train_main()
