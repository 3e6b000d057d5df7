"""WLASL split files (`nslt_*.json`) and class names.

An nslt file maps `video_id -> {"subset": "train"|"val"|"test", "action": [class, start, end]}` with
1-based inclusive frames (`end = -1` means "to the end of the video"). Class ids may be any non-negative
integers (e.g. 50 classes taken from the 100-class index space); they are remapped to 0..K-1 in sorted
order and the mapping is kept, so labels are always valid logit indices.
"""

from __future__ import annotations

import csv
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
  path: str = ""  # the clip's landmark file relative to data_dir, when the dataset names it (Kaggle ISLR)
  video: str = ""  # the clip's video relative to data_dir, when not videos/{video_id}.mp4 (ASL Citizen)
  origin: str = ""  # where the entry was read ("FILE:LINE"), for messages


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
  if not data_dir and not os.path.isabs(subset) and not os.path.isfile(subset):
    raise DataError(f"data_dir is empty, so the split file {subset!r} has no folder (a run that travels, as the "
                    "shipped model, keeps no data paths): pass --data_dir=DIR (asl-evaluate) or "
                    "--config.data_dir=DIR")
  if data_dir and not os.path.isdir(data_dir):
    raise DataError(f"{data_dir}: data_dir does not exist or is not a directory")
  path = subset if os.path.isabs(subset) else os.path.join(data_dir, subset)
  if not os.path.isfile(path):
    raise DataError(f"{path}: split file not found (config subset={subset!r}, data_dir={data_dir!r})")
  return path


# ----------------------------------------------------------------------------------------- Kaggle ISLR 2023

KAGGLE_TRAIN_CSV = "train.csv"
KAGGLE_SIGN_MAP = "sign_to_prediction_index_map.json"
KAGGLE_COLUMNS = ("path", "participant_id", "sequence_id", "sign")
# Without val_participants / test_participants: this fraction of the signers each, drawn with this seed
# (the competition's hidden test was signers the training set does not have).
KAGGLE_VAL_FRACTION, KAGGLE_TEST_FRACTION, KAGGLE_SPLIT_SEED = 0.1, 0.15, 0


def _read_csv(path: str, columns, also: str = "") -> list[dict]:
  """The rows of a CSV file with a header row naming at least `columns` (`also`: the other columns the
  format has, for the message); an unreadable file, an empty one, or a missing column is one DataError."""
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      reader = csv.DictReader(f)
      rows = list(reader)
  except (UnicodeDecodeError, csv.Error) as e:
    raise DataError(f"{path}: not a readable CSV file ({e})") from None
  if reader.fieldnames is None:
    raise DataError(f"{path}: empty (expected a header row: {', '.join(columns)}{also})")
  missing = [c for c in columns if c not in reader.fieldnames]
  if missing:
    raise DataError(f"{path}: no column {', '.join(repr(c) for c in missing)} (expected "
                    f"{', '.join(columns)}{also})")
  return rows


def _participants(option: str, field: str, known: set[str], path: str) -> list[str]:
  ids = [p.strip() for p in str(option).split(",") if p.strip()]
  unknown = [p for p in ids if p not in known]
  if unknown:
    raise DataError(f"{field}={option!r}: participant(s) {unknown} are not in {path} (it has {len(known)}: "
                    f"{', '.join(sorted(known, key=_natural)[:8])}{' ...' if len(known) > 8 else ''})")
  return ids


def _natural(x: str):
  return (0, int(x)) if x.isdigit() else (1, x)


def kaggle_participant_split(participants, val: str = "", test: str = "", path: str = KAGGLE_TRAIN_CSV):
  """{participant: subset}: `val` / `test` (comma-separated ids) when given, else a seeded draw of
  KAGGLE_VAL_FRACTION / KAGGLE_TEST_FRACTION of the signers (at least one each, one or more left to train)."""
  known = set(participants)
  val_ids = _participants(val, "val_participants", known, path)
  test_ids = _participants(test, "test_participants", known, path)
  if set(val_ids) & set(test_ids):
    raise DataError(f"val_participants and test_participants share {sorted(set(val_ids) & set(test_ids))}")
  ordered = sorted(known, key=_natural)
  rest = [p for p in np.random.default_rng(KAGGLE_SPLIT_SEED).permutation(ordered).tolist()
          if p not in val_ids and p not in test_ids]
  if not val and len(rest) > 1:
    n = max(1, round(KAGGLE_VAL_FRACTION * len(ordered)))
    val_ids, rest = rest[:n], rest[n:]
  if not test and len(rest) > 1:
    n = min(len(rest) - 1, max(1, round(KAGGLE_TEST_FRACTION * len(ordered))))
    test_ids, rest = rest[:n], rest[n:]
  if not rest:
    raise DataError(f"{path}: no participant is left for training ({len(ordered)} in all)")
  return {p: "val" if p in val_ids else "test" if p in test_ids else "train" for p in ordered}


def read_kaggle_islr(data_dir: str, val_participants: str = "", test_participants: str = "") -> Split:
  """Google's Isolated Sign Language Recognition 2023 layout in data_dir as a Split: train.csv (path,
  participant_id, sequence_id, sign; one entry per sequence, video id = sequence_id, the landmark file =
  its path), the classes and their names from sign_to_prediction_index_map.json, subsets by participant
  (`kaggle_participant_split`)."""
  csv_path, map_path = os.path.join(data_dir, KAGGLE_TRAIN_CSV), os.path.join(data_dir, KAGGLE_SIGN_MAP)
  if not os.path.isfile(csv_path):
    raise DataError(f"{csv_path}: not found (dataset=kaggle_islr reads train.csv, train_landmark_files/ and "
                    f"{KAGGLE_SIGN_MAP} in data_dir)")
  sign_map = _load_json(map_path)
  if not isinstance(sign_map, dict) or not all(isinstance(v, int) and v >= 0 for v in sign_map.values()):
    raise DataError(f"{map_path}: expected {{sign: class index >= 0}}")
  if len(set(sign_map.values())) != len(sign_map):
    raise DataError(f"{map_path}: two signs share a class index")
  rows = _read_csv(csv_path, KAGGLE_COLUMNS)
  if not rows:
    raise DataError(f"{csv_path}: no rows")
  subset_of = kaggle_participant_split({r["participant_id"] for r in rows}, val_participants, test_participants,
                                       csv_path)
  entries, seen = [], set()
  for n, r in enumerate(rows, 2):  # line 1 is the header
    if r["sign"] not in sign_map:
      raise DataError(f"{csv_path}: line {n}: sign {r['sign']!r} is not in {map_path}")
    vid = str(r["sequence_id"]).strip()
    if not vid or vid in seen:
      raise DataError(f"{csv_path}: line {n}: sequence_id {vid!r} is empty or repeated")
    seen.add(vid)
    entries.append(Entry(vid, subset_of[r["participant_id"]], sign_map[r["sign"]], 1, -1, r["path"]))
  names = {v: k for k, v in sign_map.items()}
  entries = tuple(sorted(entries, key=lambda e: e.video_id))
  class_ids = tuple(sorted({e.class_id for e in entries}))
  return Split(csv_path, entries, class_ids, tuple(names[c] for c in class_ids))


# -------------------------------------------------------------------------------------------- ASL Citizen

CITIZEN_SPLITS = "splits"
CITIZEN_COLUMNS = ("Participant ID", "Video file", "Gloss")


def read_asl_citizen(data_dir: str) -> Split:
  """ASL Citizen's layout in data_dir as a Split: splits/train.csv, val.csv and test.csv (Participant ID,
  Video file, Gloss, ASL-LEX Code), videos/<Video file>. Video id = the file name without its extension (the
  landmark file is {id}_landmarks.npy, as extraction writes it); classes = the glosses, sorted."""
  folder = os.path.join(data_dir, CITIZEN_SPLITS)
  rows = []
  for subset in SUBSETS:
    path = os.path.join(folder, f"{subset}.csv")
    if not os.path.isfile(path):
      raise DataError(f"{path}: not found (dataset=asl_citizen reads splits/train.csv, val.csv and test.csv in "
                      "data_dir)")
    for n, r in enumerate(_read_csv(path, CITIZEN_COLUMNS, ", ASL-LEX Code"), 2):  # line 1 is the header
      video, gloss = (r["Video file"] or "").strip(), (r["Gloss"] or "").strip()
      if not video or not gloss:
        raise DataError(f"{path}: line {n}: empty 'Video file' or 'Gloss'")
      rows.append((subset, video, gloss, f"{path}:{n}"))
  glosses = sorted({g for _, _, g, _ in rows})
  ids = {g: i for i, g in enumerate(glosses)}
  entries, seen = [], {}
  for subset, video, gloss, origin in rows:
    vid = os.path.splitext(os.path.basename(video))[0]
    if vid in seen:
      raise DataError(f"{origin}: video {video!r} is also listed at {seen[vid]}")
    seen[vid] = origin
    entries.append(Entry(vid, subset, ids[gloss], 1, -1, video=os.path.join("videos", video), origin=origin))
  entries = tuple(sorted(entries, key=lambda e: e.video_id))
  if not any(e.subset == "train" for e in entries):
    raise DataError(f"{os.path.join(folder, 'train.csv')}: no entries")
  return Split(folder, entries, tuple(range(len(glosses))), tuple(glosses))
