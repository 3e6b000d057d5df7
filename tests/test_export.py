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

from asl_jax import errors
from asl_jax.data import clip_prep, layouts, packed as packed_lib
from asl_jax.serving import export, predict
from asl_jax.training import train
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


# The plain Transformer's export is in the heavy tier: the recommended encoder has its blocks and more.
KINDS = ["hybrid", pytest.param("transformer", marks=pytest.mark.heavy), "recommended", "lstm"]


@pytest.fixture(scope="module", params=KINDS)
def trained(request, tiny_data, tmp_path_factory):
  """(kind, run dir, clips, predict's probabilities for them): one 1-epoch run of each kind, shared by the
  jax and the ONNX export tests. The clips have 1 to 300 frames (max_frames is 32 in the tiny config, so
  most are resampled), the left hand missing at the start."""
  kind = request.param
  if kind == "hybrid":  # the seed's features, both streams, attention fusion
    overrides = dict(gemma_features_dir=tiny_data["gemma_features_dir"], fusion_type="attention")
  elif kind == "lstm":
    overrides = dict(encoder="lstm", lstm_layers=1, features="pos,hand,vel,presence", use_z=False, tta_flip=True)
  else:  # derived features, trimming, flip TTA, EMA, landmarks only; the recommended configs' encoder
    overrides = dict(encoder="transformer" if kind == "transformer" else "conv_transformer", conv_layers=1,
                     features="pos,hand,vel,presence", use_z=False, trim_no_hands=True, tta_flip=True,
                     ema_decay=0.9, num_frames=16)
  tmp = tmp_path_factory.mktemp(f"export_{kind}")
  run = str(tmp / "run")
  train.train_and_evaluate(tiny_config(tiny_data, epochs=1, cache_dir=str(tmp / "cache"), **overrides), run)
  predictor = predict.Predictor(run)
  rng = np.random.default_rng(0)
  lm_dir = tiny_data["landmarks_dir"]
  names = sorted(os.listdir(lm_dir))[:3]
  clips = []
  for i, t in enumerate((1, 9, 40, 90, 300)):
    src = np.load(os.path.join(lm_dir, names[i % len(names)]))
    lm = src[np.arange(t) % len(src)].copy()
    lm[: t // 3, :63] = 0  # the left hand missing at the start
    clip = [lm]
    if kind == "hybrid":
      clip.append(rng.normal(size=(max(1, t // 2), predictor.run.visual_dim)).astype(np.float32))
    clips.append(clip)
  expected = predictor.predict_clips([predictor.load_clip(*c) for c in clips])
  return kind, run, clips, expected, list(predictor.glosses)


def _save_clips(tmp, clips) -> str:
  path = os.path.join(tmp, "clips.npy")
  arr = np.empty(len(clips), object)
  arr[:] = clips
  np.save(path, arr, allow_pickle=True)
  return path


def _fresh_process(script: str, *args: str, cwd: str) -> dict:
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300, cwd=cwd,
                        env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout)


def test_exported_model_matches_predict_in_a_fresh_process(trained, tmp_path):
  kind, run, clips, expected, glosses = trained
  out = export.export_run(run, str(tmp_path / "export"))
  meta = json.load(open(os.path.join(out, "meta.json")))
  assert meta["landmark_layout"] == "seed162" and meta["landmark_dim"] == 162 and meta["num_classes"] == 8
  assert meta["inputs"] == (["landmarks", "visual"] if kind == "hybrid" else ["landmarks"])
  assert "T >= 1" in meta["signature"] and meta["format"] == "jax"
  assert meta["platforms"] == ["cpu", "cuda"]  # runs on a CPU server wherever it was exported

  served = _fresh_process(SERVER, out, _save_clips(tmp_path, clips), cwd=str(tmp_path))
  assert served["glosses"] == glosses
  probs = np.asarray(served["probs"])
  assert probs.shape == (len(clips), 8)
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


# README's onnxruntime server lines, in a process where importing jax, flax or asl_jax fails: the ONNX models
# need onnxruntime and numpy only. Each clip alone through model.onnx, then all of them in one padded batch
# (filled with 0.5, not zeros, so that padding read as frames would show) through model_batched.onnx.
ONNX_SERVER = textwrap.dedent("""
    import builtins, json, sys
    _import = builtins.__import__
    def _guard(name, *args, **kwargs):
      if name.split(".")[0] in ("jax", "jaxlib", "flax", "asl_jax"):
        raise ImportError(f"{name} is not available here")
      return _import(name, *args, **kwargs)
    builtins.__import__ = _guard

    import numpy as np, onnxruntime as ort
    out = sys.argv[1]
    meta = json.load(open(out + "/meta.json"))
    one = ort.InferenceSession(out + "/model.onnx", providers=["CPUExecutionProvider"])
    clips = np.load(sys.argv[2], allow_pickle=True)
    names = [i.name for i in one.get_inputs()]
    probs = [one.run(None, dict(zip(names, clip)))[0].tolist() for clip in clips]

    batched = ort.InferenceSession(out + "/model_batched.onnx", providers=["CPUExecutionProvider"])
    feeds = {}
    for k, name in enumerate(names):
      parts = [clip[k] for clip in clips]
      pad = np.full((len(parts), max(len(p) for p in parts), parts[0].shape[1]), 0.5, np.float32)
      for i, p in enumerate(parts):
        pad[i, :len(p)] = p
      feeds[name] = pad
      feeds["lengths" if name == "landmarks" else "visual_lengths"] = np.array([len(p) for p in parts], np.int32)
    probs_batched = batched.run(None, feeds)[0].tolist()
    json.dump({"probs": probs, "batched": probs_batched, "glosses": meta["glosses"],
               "inputs": [i.name for i in batched.get_inputs()]}, sys.stdout)
""")


def test_onnx_model_matches_predict_with_onnxruntime_alone(trained, tmp_path):
  kind, run, clips, expected, glosses = trained
  out = export.export_run(run, str(tmp_path / "onnx"), fmt="onnx")
  meta = json.load(open(os.path.join(out, "meta.json")))
  assert meta["format"] == "onnx" and meta["file"] == "model.onnx" and meta["num_classes"] == 8
  assert meta["inputs"] == (["landmarks", "visual"] if kind == "hybrid" else ["landmarks"])

  served = _fresh_process(ONNX_SERVER, out, _save_clips(tmp_path, clips), cwd=str(tmp_path))
  assert served["glosses"] == glosses
  assert served["inputs"] == (["landmarks", "lengths"] + (["visual", "visual_lengths"] if kind == "hybrid" else []))
  for key in ("probs", "batched"):
    probs = np.asarray(served[key])
    assert probs.shape == (len(clips), 8)
    np.testing.assert_allclose(probs, expected, rtol=0, atol=1e-4, err_msg=key)
  # A non-finite value is an undetected point here too.
  import onnxruntime  # pylint: disable=import-outside-toplevel
  session = onnxruntime.InferenceSession(os.path.join(out, "model.onnx"), providers=["CPUExecutionProvider"])
  names = [i.name for i in session.get_inputs()]
  holed = [x.copy() for x in clips[2]]
  holed[0][5, 70] = np.nan
  holed[0][6, 3] = -np.inf
  got = session.run(None, dict(zip(names, holed)))[0]
  zeroed = session.run(None, dict(zip(names, [np.nan_to_num(x, nan=0.0, neginf=0.0) for x in holed])))[0]
  assert np.isfinite(got).all()
  np.testing.assert_allclose(got, zeroed, rtol=0, atol=1e-7)


def test_sort_free_median_equals_numpy():
  """ONNX's median (order statistics by counting) is numpy's median over the mask, ties and all."""
  rng = np.random.default_rng(3)
  fast = jax.jit(clip_prep.masked_median, static_argnums=2)
  for n in (1, 2, 3, 8, 33):
    for _ in range(20):
      x = rng.integers(0, 5, n).astype(np.float32) / 4 if rng.random() < 0.5 else rng.normal(size=n).astype(np.float32)
      mask = rng.random(n) < 0.6
      want = np.median(x[mask]) if mask.any() else 0.0
      assert float(fast(x, mask, False)) == pytest.approx(float(want), abs=1e-7)
      assert float(fast(x, mask, True)) == pytest.approx(float(want), abs=1e-7)


def test_onnx_export_without_the_converter_is_one_line(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "jax2onnx", None)  # importing it raises ImportError
  with pytest.raises(errors.MissingDependencyError, match="pip install --no-deps jax2onnx==") as e:
    export.export_run(str(tmp_path), str(tmp_path / "onnx"), fmt="onnx")
  assert "\n" not in str(e.value)
  assert not os.path.exists(tmp_path / "onnx")


def test_the_faster_output_check_answers_as_jax2onnx_does():
  """export._output_check_from_the_last_node replaces jax2onnx's quadratic check that an equation's outputs are
  in the graph; on a real conversion (a clip's preparation inside the ONNX models: symbolic length,
  concatenations, a median by counting) each of its answers equals jax2onnx's own, and the check is restored."""
  jax2onnx = pytest.importorskip("jax2onnx")
  from jax2onnx.converter import output_binding  # pylint: disable=import-outside-toplevel
  import onnx_ir as ir  # pylint: disable=import-outside-toplevel
  original = output_binding._value_is_graph_connected  # pylint: disable=protected-access
  answers = []
  with export._output_check_from_the_last_node():  # pylint: disable=protected-access
    fast = output_binding._value_is_graph_connected  # pylint: disable=protected-access
    assert fast is not original  # the pinned jax2onnx: replaced
    def both(ctx, value):
      # The value asked about, and the other kinds of value: a graph input, a constant, the first node's
      # output, a stranger, and a stranger named like an earlier node's output (it counts as that output).
      b = ctx.builder
      nodes = list(b.nodes)
      probes = [value, *list(b.inputs)[:1], *list(b.initializers)[-1:], *(nodes[0].outputs[:1] if nodes else []),
                ir.Value(name="stranger")]
      if len(nodes) > 2:
        probes.append(ir.Value(name=nodes[len(nodes) // 2].outputs[0].name))
      answers.extend((original(ctx, v), fast(ctx, v)) for v in probes)
      return fast(ctx, value)
    output_binding._value_is_graph_connected = both  # pylint: disable=protected-access
    fn = lambda x: clip_prep.pack_clip(x, "seed162", 16, sort=False)[0]  # noqa: E731
    model = jax2onnx.to_onnx(fn, [("T", 162)], input_names=["landmarks"], output_names=["points"],
                             opset=export.ONNX_OPSET)
  assert output_binding._value_is_graph_connected is original  # pylint: disable=protected-access
  assert len(answers) > 500 and all(a == b for a, b in answers)
  assert sum(a for a, _ in answers) > 100 and sum(not a for a, _ in answers) > 100
  del model.graph.value_info[:]  # as export._to_onnx does: jax2onnx labels 2T as T after a concatenation
  import onnxruntime  # pylint: disable=import-outside-toplevel
  clip = _clip(np.random.default_rng(5), "seed162", 40)
  got = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
      None, {"landmarks": clip})[0]
  np.testing.assert_allclose(got, np.asarray(jax.jit(fn)(clip)), rtol=1e-5, atol=1e-6)
