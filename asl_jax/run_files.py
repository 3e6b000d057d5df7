"""The one checked path through which the files of a run directory are read (config.json,
label_mapping.json, metrics.jsonl, ...): a missing, truncated, corrupt or foreign file is one error naming
it and what to do, never a traceback."""

from __future__ import annotations

import json
import logging
import os

from asl_jax.errors import CheckpointError, DataError


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


def read_label_mapping(path: str) -> tuple[str, ...]:
  """The glosses of label_mapping.json ({"0": gloss, "1": ...}), in label order."""
  mapping = read_json(path, "the class names")
  keys = [str(i) for i in range(len(mapping))]
  if sorted(mapping) != sorted(keys) or not all(isinstance(mapping[k], str) for k in keys):
    raise CheckpointError(f"{path}: expected {{\"0\": gloss, ..., \"{len(mapping) - 1}\": gloss}} with every label "
                          "once; the file was edited or damaged: restore it, or train the run again")
  return tuple(mapping[k] for k in keys)


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
