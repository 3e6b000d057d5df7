"""Landmarks as the field has them (asl_jax/data/formats.py, data/splits.py's Kaggle reader): Kaggle ISLR
parquet files written with pyarrow in the competition's schema, and .pose files written by pose-format's own
writer, pack and predict exactly as the same landmarks from .npy; a malformed file is one line naming it."""

import csv
import json
import os

import numpy as np
import pytest

from asl_jax import pretrained
from asl_jax.config import default_config
from asl_jax.data import features as features_lib, formats, layouts, packed as packed_lib, splits
from asl_jax.data.synthetic import make_synthetic
from asl_jax.errors import DataError
from asl_jax.serving import predict
from asl_jax.training import train
from conftest import tiny_config

PARTICIPANT_OF = {"train": "16069", "val": "2044", "test": "37055"}  # one signer per subset


@pytest.fixture(scope="module")
def wlasl(tmp_path_factory):
  return make_synthetic(str(tmp_path_factory.mktemp("wlasl")), num_classes=6, seed=4, train_scale=0.3)


def _entries(data):
  split = json.load(open(os.path.join(data["data_dir"], data["subset"])))
  return sorted(split.items())


def _npy(data, vid):
  return np.load(os.path.join(data["landmarks_dir"], f"{vid}_landmarks.npy"))


@pytest.fixture(scope="module")
def kaggle(wlasl, tmp_path_factory):
  """The same clips in Kaggle ISLR's layout: train.csv, one parquet per sequence, the sign map."""
  out = tmp_path_factory.mktemp("kaggle")
  names = splits.read_class_names(wlasl["data_dir"])
  rows = []
  for vid, v in _entries(wlasl):
    participant = PARTICIPANT_OF[v["subset"]]
    rel = os.path.join("train_landmark_files", participant, f"{vid}.parquet")
    os.makedirs(out / "train_landmark_files" / participant, exist_ok=True)
    formats.write_parquet(str(out / rel), layouts.to_holistic543(_npy(wlasl, vid), "seed162"))
    rows.append({"path": rel, "participant_id": participant, "sequence_id": vid,
                 "sign": names.get(v["action"][0], f"sign{v['action'][0]}")})
  with open(out / "train.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=["path", "participant_id", "sequence_id", "sign"])
    w.writeheader()
    w.writerows(rows)
  classes = sorted({v["action"][0] for _, v in _entries(wlasl)})
  json.dump({names.get(c, f"sign{c}"): c for c in classes}, open(out / "sign_to_prediction_index_map.json", "w"))
  return str(out)


def _spec(**fields):
  return packed_lib.DataSpec(**{"cache_dir": "none", **fields})


def test_parquet_and_pose_hold_the_same_landmarks_as_npy(wlasl, tmp_path):
  vid = _entries(wlasl)[0][0]
  raw = layouts.to_holistic543(_npy(wlasl, vid), "seed162")
  formats.write_parquet(str(tmp_path / "a.parquet"), raw)
  formats.write_pose(str(tmp_path / "a.pose"), raw, fps=25, width=640, height=480)
  np.testing.assert_array_equal(formats.read(str(tmp_path / "a.parquet")), raw)
  np.testing.assert_allclose(formats.read(str(tmp_path / "a.pose")), raw, atol=1e-6)
  assert features_lib.read_header(str(tmp_path / "a.parquet"))[0] == raw.shape


def test_kaggle_layout_packs_the_same_clips_as_npy(wlasl, kaggle):
  npy = packed_lib.load_packed(_spec(data_dir=wlasl["data_dir"], subset=wlasl["subset"]))
  kag = packed_lib.load_packed(_spec(data_dir=kaggle, dataset="kaggle_islr", val_participants=PARTICIPANT_OF["val"],
                                     test_participants=PARTICIPANT_OF["test"]))
  assert kag.video_ids == npy.video_ids and kag.report["landmark_layout"] == "holistic543"
  np.testing.assert_array_equal(kag.subsets, npy.subsets)  # subsets by signer, as the participants were dealt
  np.testing.assert_array_equal(kag.labels, npy.labels)
  np.testing.assert_allclose(kag.points, npy.points, atol=1e-6)
  np.testing.assert_array_equal(kag.parts, npy.parts)


def test_a_dataset_of_pose_files_packs_the_same_clips_as_npy(wlasl, tmp_path):
  for vid, _ in _entries(wlasl):
    formats.write_pose(str(tmp_path / f"{vid}.pose"), layouts.to_holistic543(_npy(wlasl, vid), "seed162"), fps=25)
  npy = packed_lib.load_packed(_spec(data_dir=wlasl["data_dir"], subset=wlasl["subset"]))
  pose = packed_lib.load_packed(_spec(data_dir=wlasl["data_dir"], subset=wlasl["subset"], landmarks_dir=str(tmp_path),
                                      landmarks_pattern="{id}.pose"))
  assert pose.video_ids == npy.video_ids
  np.testing.assert_allclose(pose.points, npy.points, atol=1e-5)
  np.testing.assert_array_equal(pose.parts, npy.parts)


def test_predict_takes_parquet_and_pose_files_with_the_same_result(wlasl, tmp_path):
  vid = _entries(wlasl)[0][0]
  npy_path = os.path.join(wlasl["landmarks_dir"], f"{vid}_landmarks.npy")
  raw = layouts.to_holistic543(np.load(npy_path), "seed162")
  formats.write_parquet(str(tmp_path / "clip.parquet"), raw)
  formats.write_pose(str(tmp_path / "clip.pose"), raw, fps=30, width=1280, height=720)
  rows = predict.predict_files(pretrained.WLASL100, [npy_path, str(tmp_path / "clip.parquet"),
                                                    str(tmp_path / "clip.pose")], top_k=3)
  assert all("error" not in r for r in rows), rows
  for r in rows[1:]:
    assert [t["gloss"] for t in r["top_k"]] == [t["gloss"] for t in rows[0]["top_k"]]
    np.testing.assert_allclose([t["prob"] for t in r["top_k"]], [t["prob"] for t in rows[0]["top_k"]], atol=1e-5)


def test_training_on_the_kaggle_layout(kaggle, tmp_path):
  cfg = tiny_config({"data_dir": kaggle, "subset": ""}, dataset="kaggle_islr", epochs=1, evaluate_test=True)
  result = train.train_and_evaluate(cfg, str(tmp_path / "run"))
  assert result["status"] == "done" and result["test_report"]
  glosses = json.load(open(tmp_path / "run" / "label_mapping.json"))
  assert sorted(glosses.values()) == sorted(json.load(open(os.path.join(kaggle, "sign_to_prediction_index_map.json"))))


def test_default_split_is_by_signer_and_seeded():
  people = [str(p) for p in range(100, 121)]  # 21 signers, as the competition's training set
  a = splits.kaggle_participant_split(people)
  assert a == splits.kaggle_participant_split(list(reversed(people)))
  counts = {s: sum(v == s for v in a.values()) for s in ("train", "val", "test")}
  assert counts == {"train": 16, "val": 2, "test": 3}
  given = splits.kaggle_participant_split(people, val="100", test="101,102")
  assert [p for p, s in given.items() if s != "train"] == ["100", "101", "102"]


def _write_parquet_without(path, column):
  import pyarrow as pa  # pylint: disable=import-outside-toplevel
  import pyarrow.parquet as pq  # pylint: disable=import-outside-toplevel
  cols = {"frame": [0], "row_id": ["0-face-0"], "type": ["face"], "landmark_index": [0], "x": [0.5], "y": [0.5],
          "z": [0.0]}
  del cols[column]
  pq.write_table(pa.table(cols), path)


def test_malformed_files_are_one_error_naming_them(kaggle, tmp_path):
  _write_parquet_without(str(tmp_path / "no_x.parquet"), "x")
  with pytest.raises(DataError, match=r"no_x\.parquet: no column 'x'"):
    formats.read(str(tmp_path / "no_x.parquet"))
  (tmp_path / "junk.parquet").write_text("frame,x\n1,2\n")
  with pytest.raises(DataError, match=r"junk\.parquet: not a readable parquet file"):
    formats.read(str(tmp_path / "junk.parquet"))
  from pose_format import Pose  # pylint: disable=import-outside-toplevel
  from pose_format.numpy import NumPyPoseBody  # pylint: disable=import-outside-toplevel
  from pose_format.pose_header import PoseHeader, PoseHeaderDimensions  # pylint: disable=import-outside-toplevel
  header = formats.holistic_header(640, 480)
  body_only = PoseHeader(0.1, PoseHeaderDimensions(640, 480, 1000), [header.components[0]])
  with open(tmp_path / "body.pose", "wb") as f:
    Pose(body_only, NumPyPoseBody(25, np.zeros((3, 1, 33, 3), np.float32), np.ones((3, 1, 33), np.float32))).write(f)
  with pytest.raises(DataError, match=r"body\.pose: no LEFT_HAND_LANDMARKS or RIGHT_HAND_LANDMARKS component"):
    formats.read(str(tmp_path / "body.pose"))
  (tmp_path / "junk.pose").write_bytes(b"\x00\x01 not a pose")
  with pytest.raises(DataError, match=r"junk\.pose: not a readable \.pose file"):
    formats.read(str(tmp_path / "junk.pose"))
  rows = open(os.path.join(kaggle, "train.csv")).read().splitlines()
  bad = tmp_path / "bad"
  bad.mkdir()
  (bad / "sign_to_prediction_index_map.json").write_text(open(os.path.join(kaggle, "sign_to_prediction_index_map.json")).read())
  (bad / "train.csv").write_text("\n".join(rows[:2] + [rows[2].rsplit(",", 1)[0] + ",not_a_sign"]) + "\n")
  with pytest.raises(DataError, match=r"train\.csv: line 3: sign 'not_a_sign' is not in"):
    splits.read_kaggle_islr(str(bad))
  with pytest.raises(DataError, match=r"val_participants='999': participant\(s\) \['999'\] are not in"):
    splits.read_kaggle_islr(kaggle, val_participants="999")


def _citizen(root, wlasl):
  """ASL Citizen's CSVs naming the synthetic clips as videos (the landmarks as extraction would write them)."""
  (root / "splits").mkdir(parents=True)
  names = splits.read_class_names(wlasl["data_dir"])
  rows = {s: ["Participant ID,Video file,Gloss,ASL-LEX Code"] for s in ("train", "val", "test")}
  for vid, v in _entries(wlasl):
    rows[v["subset"]].append(f"P{v['subset']},{vid}.mp4,{names[v['action'][0]]},X")
  for s, lines in rows.items():
    (root / "splits" / f"{s}.csv").write_text("\n".join(lines) + "\n")
  return str(root)


def test_asl_citizen_splits_pack_the_same_clips(wlasl, tmp_path):
  d = _citizen(tmp_path / "citizen", wlasl)
  npy = packed_lib.load_packed(_spec(data_dir=wlasl["data_dir"], subset=wlasl["subset"]))
  cit = packed_lib.load_packed(_spec(data_dir=d, dataset="asl_citizen", landmarks_dir=wlasl["landmarks_dir"]))
  assert cit.video_ids == npy.video_ids
  np.testing.assert_array_equal(cit.subsets, npy.subsets)
  np.testing.assert_array_equal(cit.points, npy.points)
  assert [cit.split.glosses[i] for i in cit.labels] == [npy.split.glosses[i] for i in npy.labels]


def test_asl_citizen_malformed_csvs(wlasl, tmp_path):
  d = _citizen(tmp_path / "citizen", wlasl)
  test_csv = tmp_path / "citizen" / "splits" / "test.csv"
  test_csv.write_text("Participant ID,Video,Gloss\nP,x.mp4,A\n")
  with pytest.raises(DataError, match=r"test\.csv: no column 'Video file'"):
    splits.read_asl_citizen(d)
  test_csv.unlink()
  with pytest.raises(DataError, match=r"test\.csv: not found"):
    splits.read_asl_citizen(d)
