import json
import os
import shutil

import numpy as np
import pytest

from asl_jax.data import packed
from asl_jax.errors import DataError


@pytest.fixture
def data_copy(tiny_data, tmp_path):
  d = tmp_path / "data"
  shutil.copytree(tiny_data["data_dir"], d)
  return {**tiny_data, "data_dir": str(d), "landmarks_dir": str(d / "landmarks"),
          "gemma_features_dir": str(d / "gemma_features")}


def _spec(data, tmp_path, **kw):
  kw.setdefault("cache_dir", str(tmp_path / "cache"))
  return packed.DataSpec(data_dir=data["data_dir"], subset=data["subset"], max_frames=32, **kw)


def test_pack_shapes_labels_and_lengths(data_copy, tmp_path):
  p = packed.load_packed(_spec(data_copy, tmp_path, gemma_features_dir=data_copy["gemma_features_dir"]))
  split = json.load(open(os.path.join(data_copy["data_dir"], data_copy["subset"])))
  n = len(split)
  assert p.points.shape == (n, 32, 54, 3) and p.parts.shape == (n, 32, 4)
  assert p.visual.shape == (n, 16, 1152) and (p.visual_lengths == 16).all()
  i = p.video_ids.index(sorted(split)[0])
  vid = p.video_ids[i]
  assert p.labels[i] == split[vid]["action"][0]
  raw_len = np.load(os.path.join(data_copy["landmarks_dir"], vid + "_landmarks.npy")).shape[0]
  assert p.lengths[i] == min(raw_len, 32)
  assert (p.points[i, p.lengths[i]:] == 0).all() and not p.parts[i, p.lengths[i]:].any()
  assert {s: len(p.indices([s])) for s in ("train", "val", "test")} == p.report["packed"]


def test_long_clip_uniformly_resampled(data_copy, tmp_path):
  lm = data_copy["landmarks_dir"]
  vid = sorted(f for f in os.listdir(lm) if f.endswith("_landmarks.npy"))[0]
  clip = np.load(os.path.join(lm, vid))
  long = np.repeat(clip[:1], 100, axis=0)
  long[:, 0] = np.linspace(0.1, 0.9, 100)  # left wrist x encodes the frame index
  np.save(os.path.join(lm, vid), long)
  p = packed.load_packed(_spec(data_copy, tmp_path))
  i = p.video_ids.index(vid.replace("_landmarks.npy", ""))
  assert p.lengths[i] == 32
  x = p.points[i, :, 0, 0]  # affine in the source frame index (normalisation is affine per clip)
  taken = (x - x[0]) / (x[-1] - x[0]) * 99
  np.testing.assert_allclose(taken, np.round(np.linspace(0, 99, 32)), atol=1e-3)


def test_cache_hit_is_memory_mapped_and_invalidated(data_copy, tmp_path):
  spec = _spec(data_copy, tmp_path)
  first = packed.load_packed(spec)
  assert isinstance(first.points, np.ndarray) and not isinstance(first.points, np.memmap)
  second = packed.load_packed(spec)
  assert isinstance(second.points, np.memmap)
  np.testing.assert_array_equal(first.points, second.points)
  assert second.video_ids == first.video_ids
  # Changing a feature file changes the key: the new contents are packed.
  vid = first.video_ids[0]
  path = os.path.join(data_copy["landmarks_dir"], vid + "_landmarks.npy")
  arr = np.load(path)
  arr[:, 126:] *= 1.5
  np.save(path, arr)
  os.utime(path, ns=(1, 1))
  third = packed.load_packed(spec)
  assert not isinstance(third.points, np.memmap)
  assert not np.array_equal(third.points[0], first.points[0])
  assert len(os.listdir(tmp_path / "cache")) == 2


def test_missing_features_are_reported_and_skipped(data_copy, tmp_path):
  lm = data_copy["landmarks_dir"]
  split = json.load(open(os.path.join(data_copy["data_dir"], data_copy["subset"])))
  gone = sorted(split)[:2]
  for v in gone:
    os.remove(os.path.join(lm, v + "_landmarks.npy"))
  p = packed.load_packed(_spec(data_copy, tmp_path))
  assert p.report["missing_features"] == gone
  assert len(p.labels) == len(split) - 2 and gone[0] not in p.video_ids


def test_visual_counterpart_missing(data_copy, tmp_path):
  vid = sorted(json.load(open(os.path.join(data_copy["data_dir"], data_copy["subset"]))))[3]
  os.remove(os.path.join(data_copy["gemma_features_dir"], vid + "_gemma.npy"))
  spec = _spec(data_copy, tmp_path, gemma_features_dir=data_copy["gemma_features_dir"])
  with pytest.raises(DataError, match=f"{vid}_gemma.npy: visual features missing"):
    packed.load_packed(spec)
  p = packed.load_packed(_spec(data_copy, tmp_path, gemma_features_dir=data_copy["gemma_features_dir"],
                               on_bad_file="skip"))
  assert vid not in p.video_ids and any(vid in k for k in p.report["skipped"])


def test_nan_file_error_and_skip(data_copy, tmp_path):
  lm = data_copy["landmarks_dir"]
  vid = sorted(os.listdir(lm))[1]
  arr = np.load(os.path.join(lm, vid))
  arr[0, 0] = np.nan
  np.save(os.path.join(lm, vid), arr)
  with pytest.raises(DataError, match=f"{vid}: 1 NaN/Inf values"):
    packed.load_packed(_spec(data_copy, tmp_path))
  p = packed.load_packed(_spec(data_copy, tmp_path, on_bad_file="skip"))
  assert vid.replace("_landmarks.npy", "") not in p.video_ids
  assert "NaN" in next(v for k, v in p.report["skipped"].items() if vid in k)


def test_wrong_dimension_file_listed(data_copy, tmp_path):
  lm = data_copy["landmarks_dir"]
  vid = sorted(f for f in os.listdir(lm) if f.endswith(".npy"))[2]
  np.save(os.path.join(lm, vid), np.zeros((10, 150), np.float32))
  with pytest.raises(DataError, match=f"{vid}: shape \\(10, 150\\)"):
    packed.load_packed(_spec(data_copy, tmp_path, landmark_layout="seed162"))


def test_empty_split_and_no_features(data_copy, tmp_path):
  for f in os.listdir(data_copy["landmarks_dir"]):
    os.remove(os.path.join(data_copy["landmarks_dir"], f))
  with pytest.raises(DataError, match="none of its .* clips has a landmarks file"):
    packed.load_packed(_spec(data_copy, tmp_path))


def test_class_without_training_clips(tmp_path):
  d = tmp_path / "d"
  (d / "landmarks").mkdir(parents=True)
  split = {"a": {"subset": "train", "action": [0, 1, 4]}, "b": {"subset": "test", "action": [1, 1, 4]}}
  (d / "split.json").write_text(json.dumps(split))
  with pytest.raises(DataError, match=r"split\.json: 1 class\(es\) have no clip in the training subsets"):
    packed.load_packed(packed.DataSpec(data_dir=str(d), subset="split.json", cache_dir="none"))


def test_files_named_by_id_alone_load_with_a_pattern(data_copy, tmp_path):
  """A set that names its files {id}.npy (as wlasl50_mediapipe does) loads as it is with landmarks_pattern,
  to the same arrays as the seed's names; without the pattern the error says which field to set."""
  seed = packed.load_packed(_spec(data_copy, tmp_path, gemma_features_dir=data_copy["gemma_features_dir"]))
  lm, vis = data_copy["landmarks_dir"], data_copy["gemma_features_dir"]
  for d, suffix in ((lm, "_landmarks.npy"), (vis, "_gemma.npy")):
    for name in os.listdir(d):
      if name.endswith(suffix):
        os.rename(os.path.join(d, name), os.path.join(d, name[:-len(suffix)] + ".npy"))
  with pytest.raises(DataError, match=r"expected \{id\}_landmarks.npy; config landmarks_pattern"):
    packed.load_packed(_spec(data_copy, tmp_path))
  by_id = packed.load_packed(_spec(data_copy, tmp_path, landmarks_pattern="{id}.npy", gemma_pattern="{id}.npy",
                                   gemma_features_dir=vis))
  assert by_id.video_ids == seed.video_ids
  np.testing.assert_array_equal(by_id.points, seed.points)
  np.testing.assert_array_equal(by_id.visual, seed.visual)


def test_a_missing_class_list_is_one_warning(data_copy, tmp_path, caplog):
  os.remove(os.path.join(data_copy["data_dir"], "wlasl_class_list.txt"))
  with caplog.at_level("WARNING"):
    packed.load_packed(_spec(data_copy, tmp_path))
  warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
  assert len(warnings) == 1 and "glosses will be class numbers" in warnings[0] and "wlasl_class_list.txt" in warnings[0]


def test_a_change_to_the_packing_code_invalidates_the_cache(data_copy, tmp_path, monkeypatch):
  spec = _spec(data_copy, tmp_path)
  packed.load_packed(spec)
  assert isinstance(packed.load_packed(spec).points, np.memmap)  # a hit
  monkeypatch.setattr(packed, "code_version", lambda: "edited")
  assert not isinstance(packed.load_packed(spec).points, np.memmap)  # new code: packed again
  assert len(os.listdir(tmp_path / "cache")) == 2


def test_a_class_whose_training_clips_all_lack_features_is_an_error(data_copy, tmp_path):
  split = json.load(open(os.path.join(data_copy["data_dir"], data_copy["subset"])))
  cls = split[sorted(split)[0]]["action"][0]
  for vid, e in split.items():
    if e["action"][0] == cls and e["subset"] == "train":
      os.remove(os.path.join(data_copy["landmarks_dir"], vid + "_landmarks.npy"))
  with pytest.raises(DataError, match=rf"1 class\(es\) have no training clip with features .*ids \[{cls}\]"):
    packed.load_packed(_spec(data_copy, tmp_path))
