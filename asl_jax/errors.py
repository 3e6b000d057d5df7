"""Errors raised where bad input enters asl_jax; the message always names the file or field."""


class AslJaxError(Exception):
  """Base class: a user-facing problem with one clear message (the CLI prints it, exits 1)."""


class DataError(AslJaxError, ValueError):
  """A data file (split json, class list, feature .npy) is missing, malformed or inconsistent."""


class ConfigError(AslJaxError, ValueError):
  """A configuration value is invalid or conflicts with a saved run."""


class CheckpointError(AslJaxError, RuntimeError):
  """A checkpoint is missing or cannot be restored or written."""


class TrainingDivergedError(AslJaxError, FloatingPointError):
  """The loss became NaN or Inf; the last good checkpoint is kept."""


class WorkdirBusyError(AslJaxError, RuntimeError):
  """Another training process holds the workdir's lock."""


class MissingDependencyError(AslJaxError, RuntimeError):
  """An optional library a command needs is not installed (the message says how to install it)."""


class ExportError(AslJaxError, RuntimeError):
  """An exported model does not compute what the run computes (nothing is written)."""
