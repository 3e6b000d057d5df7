import json

import numpy as np
import pytest

from asl_jax.data import features
from asl_jax.errors import DataError


def _save(tmp_path, name, arr):
  p = tmp_path / name
  np.save(p, arr)
  return str(p)


def test_header_reads_shape_without_data(tmp_path):
  p = _save(tmp_path, "a.npy", np.zeros((7, 162), np.float32))
  assert features.read_header(p) == ((7, 162), np.dtype("float32"))


def test_truncated_file(tmp_path):
  p = _save(tmp_path, "t_landmarks.npy", np.ones((20, 162), np.float32))
  data = open(p, "rb").read()
  open(p, "wb").write(data[:-100])
  with pytest.raises(DataError, match=r"t_landmarks\.npy: truncated"):
    features.read_header(p)
  with pytest.raises(DataError, match=r"t_landmarks\.npy: cannot read"):
    features.load_array(p, 162)


def test_not_an_npy_file(tmp_path):
  p = tmp_path / "x_landmarks.npy"
  p.write_text("hello")
  with pytest.raises(DataError, match=r"x_landmarks\.npy: not a readable \.npy"):
    features.read_header(str(p))


def test_object_array_is_rejected_without_unpickling(tmp_path):
  p = _save(tmp_path, "o.npy", np.array([{"a": 1}, None], dtype=object))
  with pytest.raises(DataError, match="objects"):
    features.read_header(p)
  with pytest.raises(DataError, match=r"o\.npy: cannot read"):
    features.load_array(p, 162)


@pytest.mark.parametrize("arr,match", [
    (np.zeros((162,), np.float32), "expected 2-D"),
    (np.zeros((2, 3, 162), np.float32), "expected 2-D"),
    (np.zeros((0, 162), np.float32), "zero frames"),
    (np.zeros((4, 170), np.float32), r"expected \(frames, 162\)"),
])
def test_bad_shapes(tmp_path, arr, match):
  p = _save(tmp_path, "s.npy", arr)
  with pytest.raises(DataError, match=match) as e:
    features.load_array(p, 162)
  assert "s.npy" in str(e.value)


def test_nan_values(tmp_path):
  a = np.zeros((5, 162), np.float32)
  a[2, 3] = np.nan
  a[4, 0] = np.inf
  p = _save(tmp_path, "n.npy", a)
  with pytest.raises(DataError, match=r"n\.npy: 2 NaN/Inf values"):
    features.load_array(p, 162)


def test_dims_agree_adopted(tmp_path):
  paths = [_save(tmp_path, f"{i}.npy", np.zeros((3 + i, 1152), np.float32)) for i in range(4)]
  check = features.check_dims(paths, "visual")
  assert check.dim == 1152 and check.bad == () and check.max_len == 6


def test_mixed_dims_fail_listing_files_independent_of_order(tmp_path):
  paths = [_save(tmp_path, f"{i}.npy", np.zeros((16, 2048), np.float32)) for i in range(5)]
  odd = _save(tmp_path, "odd.npy", np.zeros((16, 1152), np.float32))
  for order in (paths + [odd], [odd] + paths):
    with pytest.raises(DataError, match="disagree") as e:
      features.check_dims(order, "visual")
    assert "odd.npy: shape (16, 1152)" in str(e.value)


def test_metadata_dimension_wins(tmp_path):
  paths = [_save(tmp_path, f"{i}.npy", np.zeros((16, 1152), np.float32)) for i in range(3)]
  paths.append(_save(tmp_path, "old.npy", np.zeros((16, 2048), np.float32)))
  (tmp_path / "extraction_metadata.json").write_text(json.dumps({"feature_dim": 1152}))
  check = features.check_dims(paths, "visual", metadata_dir=str(tmp_path))
  assert check.dim == 1152
  assert [p for p, _ in check.bad] == [paths[-1]]
  with pytest.raises(DataError, match="disagrees with the configured"):
    features.check_dims(paths, "visual", expected=2048, metadata_dir=str(tmp_path))
