import json
import os

import numpy as np
import pytest

from asl_jax.data import splits
from asl_jax.errors import DataError
from conftest import SHARED


def _write(tmp_path, obj, name="split.json"):
  p = tmp_path / name
  p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
  return str(p)


@pytest.mark.parametrize("k,expected", [(1000, (8978, 2320, 1876)), (2000, (14296, 3920, 2879))])
def test_official_wlasl_counts(k, expected):
  path = os.path.join(SHARED, "wlasl", f"nslt_{k}.json")
  if not os.path.exists(path):
    pytest.skip("../shared/data/wlasl is not on this machine")
  split = splits.read_split(path, splits.read_class_names(os.path.dirname(path)))
  counts = split.counts()
  assert (counts["train"], counts["val"], counts["test"]) == expected
  assert split.num_classes == k
  assert split.glosses[0] == "book"  # line 0 of wlasl_class_list.txt


def test_noncontiguous_ids_are_remapped(tmp_path):
  path = _write(tmp_path, {"a": {"subset": "train", "action": [51, 1, 10]},
                           "b": {"subset": "train", "action": [7, 1, -1]},
                           "c": {"subset": "test", "action": [51, 3, 9]}})
  (tmp_path / "wlasl_class_list.txt").write_text("7\tseven\n51\tfifty-one\n99\tunused\n")
  s = splits.read_split(path, splits.read_class_names(str(tmp_path)))
  assert s.class_ids == (7, 51) and s.glosses == ("seven", "fifty-one")
  assert s.labels().tolist() == [1, 0, 1]  # entries sorted by id: a, b, c
  assert s.label_mapping() == {"0": "seven", "1": "fifty-one"}
  assert s.class_mapping() == {"0": 7, "1": 51}
  assert s.entries[1].end == -1


def test_train_subsets_option():
  assert splits.train_subsets("train") == ("train",)
  assert splits.train_subsets("train+val") == ("train", "val")
  with pytest.raises(DataError, match="train_subsets"):
    splits.train_subsets("all")


def test_wlasl_json_class_names(tmp_path):
  (tmp_path / "WLASL_v0.3.json").write_text(json.dumps([{"gloss": "book", "instances": []},
                                                         {"gloss": "drink", "instances": []}]))
  assert splits.read_class_names(str(tmp_path)) == {0: "book", 1: "drink"}


def test_malformed_json_names_file(tmp_path):
  path = _write(tmp_path, '{"a": {"subset": "train", ')
  with pytest.raises(DataError, match=r"split\.json: not valid JSON"):
    splits.read_split(path)


@pytest.mark.parametrize("entry,match", [
    ({"subset": "training", "action": [0, 1, 5]}, "unknown subset 'training'"),
    ({"subset": "train", "action": [-1, 1, 5]}, "negative class id"),
    ({"subset": "train", "action": [0, 1]}, "action"),
    ({"subset": "train", "action": ["x", 1, 5]}, "action"),
    ({"subset": "train", "action": [0, 9, 5]}, "invalid frame range"),
    ("not an object", "expected an object"),
])
def test_bad_entries(tmp_path, entry, match):
  path = _write(tmp_path, {"00001": entry})
  with pytest.raises(DataError, match=match) as e:
    splits.read_split(path)
  assert "split.json" in str(e.value) and "00001" in str(e.value)


def test_class_missing_from_class_list(tmp_path):
  path = _write(tmp_path, {"v1": {"subset": "train", "action": [5, 1, 5]}})
  with pytest.raises(DataError, match="class id 5, which is not in the class list"):
    splits.read_split(path, {0: "a", 1: "b"})


def test_empty_and_non_object_files(tmp_path):
  with pytest.raises(DataError, match="no entries"):
    splits.read_split(_write(tmp_path, {}))
  with pytest.raises(DataError, match="expected a JSON object"):
    splits.read_split(_write(tmp_path, [1, 2]))
  with pytest.raises(DataError, match="no entry has subset 'train'"):
    splits.read_split(_write(tmp_path, {"a": {"subset": "test", "action": [0, 1, 2]}}))


def test_missing_data_dir_and_split(tmp_path):
  with pytest.raises(DataError, match="data_dir does not exist"):
    splits.resolve_split_path(str(tmp_path / "nope"), "nslt_100.json")
  with pytest.raises(DataError, match="split file not found"):
    splits.resolve_split_path(str(tmp_path), "nslt_100.json")


def test_classes_without_training(tmp_path):
  path = _write(tmp_path, {"a": {"subset": "train", "action": [0, 1, 5]},
                           "b": {"subset": "val", "action": [1, 1, 5]}})
  s = splits.read_split(path)
  assert splits.classes_without_training(s, ("train",)) == [1]
  assert splits.classes_without_training(s, ("train", "val")) == []
  np.testing.assert_array_equal(s.labels(), [0, 1])
