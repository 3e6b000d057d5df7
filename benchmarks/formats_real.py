"""The real WLASL100 clips rewritten in the field's formats give what the .npy files give.

  python benchmarks/formats_real.py [--data_root ../shared/data] [--out /tmp/asl_jax_formats_real]

Each clip of `wlasl_real` (seed162 landmarks of the real WLASL clips, the official nslt_100 split) is written
into a temporary folder (never into the project) as a Kaggle ISLR parquet file (train.csv with one signer id
per subset, the sign map from the class list) and as a pose-format .pose file (pixel coordinates of a 640 x 480
frame). Then:
- all three are packed (`dataset=kaggle_islr`; `landmarks_pattern={id}.pose`) and compared array by array;
- the shipped WLASL100 model predicts every test clip from each format: the largest difference of any class
  probability, and the top-1 / top-5 accuracy of each.
Results: benchmarks/results/formats_real.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from asl_jax import pretrained  # noqa: E402
from asl_jax.data import formats, layouts, packed as packed_lib, splits  # noqa: E402
from asl_jax.serving import predict  # noqa: E402

PARTICIPANT_OF = {"train": "1", "val": "2", "test": "3"}


def convert(data_root: str, out: str) -> dict:
  split_path = os.path.join(data_root, "wlasl", "nslt_100.json")
  lm_dir = os.path.join(data_root, "wlasl_real", "landmarks")
  names = splits.read_class_names(os.path.join(data_root, "wlasl"))
  split = json.load(open(split_path))
  rows, converted = [], 0
  os.makedirs(os.path.join(out, "pose"), exist_ok=True)
  for vid, v in sorted(split.items()):
    npy = os.path.join(lm_dir, f"{vid}_landmarks.npy")
    if not os.path.exists(npy):
      continue
    raw = layouts.to_holistic543(np.load(npy), "seed162")
    participant = PARTICIPANT_OF[v["subset"]]
    rel = os.path.join("train_landmark_files", participant, f"{vid}.parquet")
    os.makedirs(os.path.join(out, os.path.dirname(rel)), exist_ok=True)
    formats.write_parquet(os.path.join(out, rel), raw)
    formats.write_pose(os.path.join(out, "pose", f"{vid}.pose"), raw, fps=25, width=640, height=480)
    rows.append({"path": rel, "participant_id": participant, "sequence_id": vid, "sign": names[v["action"][0]]})
    converted += 1
  with open(os.path.join(out, "train.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=["path", "participant_id", "sequence_id", "sign"])
    w.writeheader()
    w.writerows(rows)
  used = sorted({v["action"][0] for v in split.values()})
  json.dump({names[c]: c for c in used}, open(os.path.join(out, "sign_to_prediction_index_map.json"), "w"))
  return {"clips": converted}


def main():
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--data_root", default=os.path.join(ROOT, "..", "shared", "data"))
  ap.add_argument("--out", default="/tmp/asl_jax_formats_real")
  args = ap.parse_args()
  t0 = time.time()
  result = {"date": time.strftime("%Y-%m-%d"), **convert(args.data_root, args.out)}
  wlasl = os.path.join(args.data_root, "wlasl")
  lm_dir = os.path.join(args.data_root, "wlasl_real", "landmarks")
  specs = {"npy": packed_lib.DataSpec(data_dir=wlasl, subset="nslt_100.json", landmarks_dir=lm_dir, cache_dir="none"),
           "kaggle_parquet": packed_lib.DataSpec(data_dir=args.out, dataset="kaggle_islr", cache_dir="none",
                                                 val_participants="2", test_participants="3"),
           "pose": packed_lib.DataSpec(data_dir=wlasl, subset="nslt_100.json", cache_dir="none",
                                       landmarks_dir=os.path.join(args.out, "pose"), landmarks_pattern="{id}.pose")}
  packs = {k: packed_lib.load_packed(s) for k, s in specs.items()}
  ref = packs["npy"]
  for k in ("kaggle_parquet", "pose"):
    p = packs[k]
    same = p.video_ids == ref.video_ids and (p.subsets == ref.subsets).all() and (p.labels == ref.labels).all()
    result[f"packed_{k}"] = {"same_clips_subsets_labels": bool(same),
                             "max_abs_point_difference": float(np.abs(p.points - ref.points).max()),
                             "same_presence": bool((p.parts == ref.parts).all())}
  test_ids = [v for v, s in zip(ref.video_ids, ref.subsets) if s == packed_lib.SUBSET_CODES["test"]]
  labels = ref.labels[ref.subsets == packed_lib.SUBSET_CODES["test"]]
  files = {"npy": [os.path.join(lm_dir, f"{v}_landmarks.npy") for v in test_ids],
           "kaggle_parquet": [os.path.join(args.out, "train_landmark_files", "3", f"{v}.parquet") for v in test_ids],
           "pose": [os.path.join(args.out, "pose", f"{v}.pose") for v in test_ids]}
  predictor = predict.Predictor(pretrained.WLASL100)
  probs = {k: predictor.predict_clips([predictor.load_clip(f) for f in fs]) for k, fs in files.items()}
  glosses = predictor.glosses
  split_glosses = ref.split.glosses
  true = np.array([glosses.index(split_glosses[label]) for label in labels])
  for k, p in probs.items():
    order = np.argsort(-p, -1)
    result[f"predict_{k}"] = {"test_clips": len(true), "top1": float((order[:, 0] == true).mean()),
                              "top5": float((order[:, :5] == true[:, None]).any(-1).mean()),
                              "max_abs_prob_difference_vs_npy": float(np.abs(p - probs["npy"]).max()),
                              "same_top1_as_npy": int((order[:, 0] == np.argmax(probs["npy"], -1)).sum())}
  result["seconds"] = round(time.time() - t0, 1)
  print(json.dumps(result, indent=1))
  with open(os.path.join(ROOT, "benchmarks", "results", "formats_real.json"), "w") as f:
    json.dump(result, f, indent=1)


if __name__ == "__main__":
  main()
