"""WLASL split files (`nslt_*.json`) and class names.

An nslt file maps `video_id -> {"subset": "train"|"val"|"test", "action": [class, start, end]}` with
1-based inclusive frames (`end = -1` means "to the end of the video"). Class ids may be any non-negative
integers (e.g. 50 classes taken from the 100-class index space); they are remapped to 0..K-1 in sorted
order and the mapping is kept, so labels are always valid logit indices.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Mapping, Sequence

import numpy as np

from asl_jax.errors import DataError

SUBSETS = ("train", "val", "test")
TRAIN_SUBSETS = {"train": ("train",), "train+val": ("train", "val")}


@dataclasses.dataclass(frozen=True)
class Entry:
  video_id: str
  subset: str
  class_id: int  # the id in the split file (before remapping)
  start: int  # 1-based, inclusive
  end: int  # 1-based, inclusive; -1 means to the end


@dataclasses.dataclass(frozen=True)
class Split:
  """A parsed split file: its entries (sorted by video id) and the class index mapping."""

  path: str
  entries: tuple[Entry, ...]
  class_ids: tuple[int, ...]  # sorted original ids; position = remapped label
  glosses: tuple[str, ...]  # gloss per remapped label

  @property
  def num_classes(self) -> int:
    return len(self.class_ids)

  def label_of(self) -> dict[int, int]:
    return {c: i for i, c in enumerate(self.class_ids)}

  def labels(self) -> np.ndarray:
    """(N,) int32 remapped labels, in entry order."""
    lut = self.label_of()
    return np.asarray([lut[e.class_id] for e in self.entries], np.int32)

  def counts(self, subsets: Sequence[str] = ("train", "val", "test")) -> dict[str, int]:
    return {s: sum(e.subset == s for e in self.entries) for s in subsets}

  def label_mapping(self) -> dict[str, str]:
    """`{"<label>": gloss}` with string keys, as the seed's label_mapping.json."""
    return {str(i): g for i, g in enumerate(self.glosses)}

  def class_mapping(self) -> dict[str, int]:
    """`{"<label>": original class id}`."""
    return {str(i): c for i, c in enumerate(self.class_ids)}


def train_subsets(option: str) -> tuple[str, ...]:
  """The subsets used for training: `train` (default) or `train+val` (the I3D convention)."""
  if option not in TRAIN_SUBSETS:
    raise DataError(f"train_subsets={option!r}: expected one of {sorted(TRAIN_SUBSETS)}")
  return TRAIN_SUBSETS[option]


def _load_json(path: str):
  if not os.path.isfile(path):
    raise DataError(f"{path}: file not found")
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
  except UnicodeDecodeError as e:
    raise DataError(f"{path}: not a UTF-8 text file ({e.reason})") from None


def _unique_glosses(names: dict[int, str], path: str) -> dict[int, str]:
  """Class names must tell classes apart: a gloss used by several class ids gets " (class N)" appended
  to each of them, with a warning naming the file (the ids stay what the split file says)."""
  by_gloss: dict[str, list[int]] = {}
  for cid, gloss in names.items():
    by_gloss.setdefault(gloss, []).append(cid)
  dups = {g: ids for g, ids in by_gloss.items() if len(ids) > 1}
  if not dups:
    return names
  listed = ", ".join(f"{g!r} (ids {ids})" for g, ids in list(dups.items())[:5])
  logging.warning("%s: %d gloss(es) name several classes: %s%s; they are reported as 'GLOSS (class N)'", path,
                  len(dups), listed, " ..." if len(dups) > 5 else "")
  return {cid: f"{g} (class {cid})" if g in dups else g for cid, g in names.items()}


def read_class_names(data_dir: str) -> dict[int, str] | None:
  """Class id -> gloss from `wlasl_class_list.txt` (index TAB gloss) or `WLASL_v0.3.json`, else None."""
  txt = os.path.join(data_dir, "wlasl_class_list.txt")
  if os.path.isfile(txt):
    names = {}
    with open(txt, "rb") as f:
      raw = f.read()
    try:
      lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
      line_no = raw[:e.start].count(b"\n") + 1
      raise DataError(f"{txt}: not UTF-8 text (byte 0x{raw[e.start]:02x} on line {line_no}); save the class "
                      "list as UTF-8") from None
    for n, line in enumerate(lines, 1):
      line = line.rstrip("\n\r")
      if not line.strip():
        continue
      parts = line.split("\t", 1) if "\t" in line else line.split(None, 1)
      if len(parts) != 2 or not parts[0].strip().lstrip("-").isdigit():
        raise DataError(f"{txt}: line {n} is not 'index<TAB>gloss': {line[:80]!r}")
      names[int(parts[0])] = parts[1].strip()
    return _unique_glosses(names, txt)
  wlasl = os.path.join(data_dir, "WLASL_v0.3.json")
  if os.path.isfile(wlasl):
    data = _load_json(wlasl)
    if not isinstance(data, list):
      raise DataError(f"{wlasl}: expected a list of {{gloss, instances}} objects")
    # The nslt class index is the gloss's position in WLASL_v0.3.json (the I3D preprocessing order).
    names = {}
    for i, item in enumerate(data):
      if not isinstance(item, dict) or "gloss" not in item:
        raise DataError(f"{wlasl}: item {i} has no 'gloss'")
      names[i] = str(item["gloss"])
    return _unique_glosses(names, wlasl)
  return None


def _parse_entry(path: str, vid, value) -> Entry:
  where = f"{path}: entry {vid!r}"
  if not isinstance(value, Mapping):
    raise DataError(f"{where}: expected an object with 'subset' and 'action', got {type(value).__name__}")
  subset = value.get("subset")
  if subset not in SUBSETS:
    raise DataError(f"{where}: unknown subset {subset!r} (expected one of {list(SUBSETS)})")
  action = value.get("action")
  if (not isinstance(action, (list, tuple)) or len(action) != 3
      or not all(isinstance(a, int) and not isinstance(a, bool) for a in action)):
    raise DataError(f"{where}: 'action' must be [class, start_frame, end_frame] integers, got {action!r}")
  cls, start, end = action
  if cls < 0:
    raise DataError(f"{where}: negative class id {cls}")
  if start < 0 or (end != -1 and end < max(start, 1)):
    raise DataError(f"{where}: invalid frame range start={start} end={end} (1-based, inclusive; -1 = to the end)")
  return Entry(str(vid), subset, cls, max(start, 1), end)


def read_split(path: str, class_names: Mapping[int, str] | None = None) -> Split:
  """Parses an nslt split file. Every entry is validated; the first problem raises a DataError.

  Args:
    path: the json file.
    class_names: optional id -> gloss (from `read_class_names`); when given, every class id in the file
      must be in it.
  """
  data = _load_json(path)
  if not isinstance(data, dict):
    raise DataError(f"{path}: expected a JSON object mapping video_id -> {{subset, action}}, "
                    f"got {type(data).__name__}")
  if not data:
    raise DataError(f"{path}: the split file has no entries")
  entries = tuple(sorted((_parse_entry(path, k, v) for k, v in data.items()), key=lambda e: e.video_id))
  class_ids = tuple(sorted({e.class_id for e in entries}))
  if class_names is not None:
    unknown = [e for e in entries if e.class_id not in class_names]
    if unknown:
      e = unknown[0]
      raise DataError(f"{path}: entry {e.video_id!r} has class id {e.class_id}, which is not in the class list "
                      f"(ids {min(class_names)}..{max(class_names)}); {len(unknown)} entries are affected")
    glosses = tuple(class_names[c] for c in class_ids)
  else:
    glosses = tuple(str(c) for c in class_ids)
  train_classes = {e.class_id for e in entries if e.subset == "train"}
  if not train_classes:
    raise DataError(f"{path}: no entry has subset 'train'")
  return Split(path, entries, class_ids, glosses)


def classes_without_training(split: Split, subsets: Sequence[str]) -> list[int]:
  """Original class ids that have no clip in the training subsets of the split file."""
  have = {e.class_id for e in split.entries if e.subset in subsets}
  return [c for c in split.class_ids if c not in have]


def resolve_split_path(data_dir: str, subset: str) -> str:
  """`subset` is a file name inside data_dir (the seed's `--subset nslt_100.json`) or a path."""
  if not data_dir and not subset:
    raise DataError("data_dir and subset are empty: set --config.data_dir and --config.subset")
  if data_dir and not os.path.isdir(data_dir):
    raise DataError(f"{data_dir}: data_dir does not exist or is not a directory")
  path = subset if os.path.isabs(subset) else os.path.join(data_dir, subset)
  if not os.path.isfile(path):
    raise DataError(f"{path}: split file not found (config subset={subset!r}, data_dir={data_dir!r})")
  return path
