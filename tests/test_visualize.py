import os

import numpy as np
from PIL import Image

from asl_jax.data import visualize


def test_contact_sheet_and_gif(tiny_data, tmp_path):
  lm = tiny_data["landmarks_dir"]
  path = os.path.join(lm, sorted(f for f in os.listdir(lm) if f.endswith("_landmarks.npy"))[0])
  outs = visualize.visualize(path, str(tmp_path), augment=True, num_frames=8)
  assert [os.path.basename(o) for o in outs] == ["00001_landmarks.png", "00001_landmarks.gif",
                                                   "00001_landmarks_augmented.png", "00001_landmarks_augmented.gif"]
  n = np.load(path).shape[0]
  with Image.open(outs[1]) as im:
    assert im.n_frames == n  # one GIF frame per clip frame
  with Image.open(outs[0]) as im:
    assert im.size[0] > 300 and np.asarray(im.convert("L")).std() > 5  # something was drawn
  with Image.open(outs[3]) as im:
    assert im.n_frames == 8


def test_missing_parts_are_marked(tmp_path):
  pts = np.zeros((3, 162), np.float32)
  pts[:, 126:132] = [0.6, 0.4, 0, 0.4, 0.4, 0]  # only the shoulders: both hands missing
  pts[:, 132:144] = 0.5
  np.save(tmp_path / "x.npy", pts)
  points, parts = visualize.load_clip(str(tmp_path / "x.npy"))
  assert not parts[:, :2].any() and parts[:, 2].all()
  visualize.contact_sheet(points, parts, str(tmp_path / "x.png"))
  assert os.path.getsize(tmp_path / "x.png") > 1000
