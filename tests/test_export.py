"""The exported model: raw clips of any length in, probabilities out, equal to predict's, loadable without
asl_jax; and the jnp clip preprocessing inside it equals the numpy one used for packing."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from asl_jax import clip_prep, export, predict, train
from asl_jax.data import layouts, packed as packed_lib
from conftest import tiny_config

LENGTHS = (1, 2, 7, 24, 25, 64, 150)


# Raw columns of the left hand, the right hand and the pose in each layout.
PART_COLUMNS = {"seed162": (slice(0, 63), slice(63, 126), slice(126, 162)),
                "holistic170": (slice(44, 107), slice(107, 170), slice(0, 44)),
                "holistic543": (slice(468 * 3, 489 * 3), slice(522 * 3, 543 * 3), slice(489 * 3, 522 * 3))}


def _clip(rng, layout: str, t: int, drop=()) -> np.ndarray:
  """A random raw clip in `layout`: each hand missing (exact zeros) in ~30 % of the frames, and the parts
  in `drop` (0 left hand, 1 right hand, 2 pose) missing in every frame."""
  raw = rng.uniform(0.2, 0.8, (t, layouts.LAYOUT_DIMS[layout])).astype(np.float32)
  cols = PART_COLUMNS[layout]
  for hand in (0, 1):
    raw[rng.random(t) < 0.3, cols[hand]] = 0
  for part in drop:
    raw[:, cols[part]] = 0
  return raw


@pytest.mark.parametrize("layout", ["seed162", "holistic170", "holistic543"])
@pytest.mark.parametrize("drop", [(), (2,), (0, 1), (0, 1, 2)], ids=["all", "no-pose", "no-hands", "nothing"])
def test_jnp_preparation_equals_the_packing_one(layout, drop):
  rng = np.random.default_rng(len(drop))
  prep = jax.jit(clip_prep.pack_clip, static_argnums=(1, 2))
  for t in LENGTHS:
    raw = _clip(rng, layout, t, drop)
    points, parts, lengths, _, _ = packed_lib.pack_clips([packed_lib.prepare_clip(raw, layout, 24)], 24)
    p, pa, n = prep(raw, layout, 24)
    assert int(n) == lengths[0]
    np.testing.assert_array_equal(np.asarray(pa), parts[0])
    np.testing.assert_allclose(np.asarray(p), points[0], rtol=1e-5, atol=1e-6)


def test_resample_index_equals_numpy_linspace():
  for m in (16, 24, 64):
    for t in range(1, 400):
      idx, n = clip_prep.resample_indices(t, m)
      expected = packed_lib._resample_index(t, m)  # pylint: disable=protected-access
      assert int(n) == len(expected)
      np.testing.assert_array_equal(np.asarray(idx)[:len(expected)], expected)


# Loads the artifact with jax alone (the five lines README shows) in a process that never imports asl_jax.
SERVER = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    exported = jax.export.deserialize(bytearray(open(sys.argv[1] + "/model.jax_export", "rb").read()))
    meta = json.load(open(sys.argv[1] + "/meta.json"))
    clips = np.load(sys.argv[2], allow_pickle=True)
    out = [np.asarray(exported.call(*[np.asarray(x, np.float32) for x in clip])).tolist() for clip in clips]
    assert not any(m == "asl_jax" or m.startswith("asl_jax.") for m in sys.modules), "asl_jax was imported"
    json.dump({"probs": out, "glosses": meta["glosses"]}, sys.stdout)
""")


@pytest.mark.parametrize("kind", ["hybrid", "transformer", "recommended"])
def test_exported_model_matches_predict_in_a_fresh_process(tiny_data, tmp_path, kind):
  if kind == "hybrid":  # the seed's features, both streams, attention fusion
    overrides = dict(gemma_features_dir=tiny_data["gemma_features_dir"], fusion_type="attention")
  else:  # derived features, trimming, flip TTA, EMA, landmarks only; the recommended configs' encoder
    overrides = dict(encoder="transformer" if kind == "transformer" else "conv_transformer", conv_layers=1,
                     features="pos,hand,vel,presence", use_z=False, trim_no_hands=True, tta_flip=True,
                     ema_decay=0.9, num_frames=16)
  run = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config(tiny_data, epochs=1, cache_dir=str(tmp_path / "cache"), **overrides), run)
  out = export.export_run(run, str(tmp_path / "export"))
  meta = json.load(open(os.path.join(out, "meta.json")))
  assert meta["landmark_layout"] == "seed162" and meta["landmark_dim"] == 162 and meta["num_classes"] == 8
  assert meta["inputs"] == (["landmarks", "visual"] if kind == "hybrid" else ["landmarks"])
  assert "T >= 1" in meta["signature"]
  assert meta["platforms"] == ["cpu", "cuda"]  # runs on a CPU server wherever it was exported

  rng = np.random.default_rng(0)
  lm_dir = tiny_data["landmarks_dir"]
  names = sorted(os.listdir(lm_dir))[:3]
  clips = []
  for i, t in enumerate((1, 9, 40, 90)):  # max_frames is 32 in the tiny config: 90 is resampled
    src = np.load(os.path.join(lm_dir, names[i % len(names)]))
    lm = src[np.arange(t) % len(src)].copy()
    lm[: t // 3, :63] = 0  # the left hand missing at the start
    clip = [lm]
    if kind == "hybrid":
      clip.append(rng.normal(size=(max(1, t // 2), meta["visual_dim"])).astype(np.float32))
    clips.append(clip)
  predictor = predict.Predictor(run)
  expected = predictor.predict_clips([predictor.load_clip(*c) for c in clips])

  clip_file = tmp_path / "clips.npy"
  arr = np.empty(len(clips), object)
  arr[:] = clips
  np.save(clip_file, arr, allow_pickle=True)
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  proc = subprocess.run([sys.executable, "-c", SERVER, out, str(clip_file)], capture_output=True, text=True,
                        timeout=300, cwd=str(tmp_path), env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  served = json.loads(proc.stdout)
  assert served["glosses"] == list(predictor.glosses)
  probs = np.asarray(served["probs"])
  assert probs.shape == (4, 8)
  np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
  # A non-finite input value is an undetected point: the same probabilities as a zero there, never NaN.
  call, _ = export.load_exported(out)
  holed = [x.copy() for x in clips[2]]
  holed[0][5, 70] = np.nan
  holed[0][6, 3] = np.inf
  zeroed = [np.nan_to_num(x, nan=0.0, posinf=0.0) for x in holed]
  got = call(*holed)
  assert np.isfinite(got).all()
  np.testing.assert_allclose(got, call(*zeroed), rtol=1e-6, atol=1e-7)
