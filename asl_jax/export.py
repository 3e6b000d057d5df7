"""Export a trained run as a self-contained `jax.export` artifact (StableHLO with the weights inside).

The exported function takes one raw clip exactly as the feature files hold it and returns class
probabilities:

    probs f32[C] = call(landmarks f32[T, D])                      # landmark runs
    probs f32[C] = call(landmarks f32[T, D], visual f32[Tv, G])   # runs with the visual stream

T >= 1 and Tv >= 1 are symbolic (any clip length). D is the width of the run's landmark layout (162 for
seed162, 170 for holistic170, 1629 for holistic543) and G the visual feature size. Everything the trainer
does to a clip happens inside: layout -> canonical points, body-centred normalisation, uniform
resampling to max_frames, the run's frame sampling and per-frame features, its visual standardisation,
the model (with test-time flips when the run uses them) and the softmax. Zeros mark a part MediaPipe did
not find, as in the feature files, and a NaN or infinite input value is treated the same way. The artifact
is lowered for CPU and CUDA (`platforms` in meta.json), so it runs on either, wherever it was exported. `meta.json` beside it lists the glosses, the
layout, D, G and the call signature. A server needs only jax and numpy:

    import json, jax, numpy as np
    exported = jax.export.deserialize(bytearray(open("export/model.jax_export", "rb").read()))
    glosses = json.load(open("export/meta.json"))["glosses"]
    probs = np.asarray(exported.call(np.load("clip_landmarks.npy").astype(np.float32)))
    print(glosses[int(probs.argmax())], float(probs.max()))
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from asl_jax import atomic, clip_prep, inference, input_pipeline
from asl_jax.data import layouts
from asl_jax.restore import load_run

EXPORT_FILE = "model.jax_export"
PLATFORMS = ("cpu", "cuda")  # lowered for both, whichever machine exports: it runs on either
META_FILE = "meta.json"


def _infer_fn(run):
  """The exported computation: raw clip(s) -> probabilities f32[C]."""
  max_frames = run.config.max_frames
  log_probs = inference.log_probs_fn(run.config, run.model, run.visual_norm)

  def infer(landmarks, visual=None):
    # A non-finite value is a point MediaPipe did not find (the zeros of the feature files), so one NaN
    # never turns every probability into NaN.
    landmarks = jnp.where(jnp.isfinite(landmarks), landmarks, 0.0)
    if visual is not None:
      visual = jnp.where(jnp.isfinite(visual), visual, 0.0)
    points, parts, length = clip_prep.pack_clip(landmarks, run.layout, max_frames)
    data = input_pipeline.DeviceData(points=points[None], parts=parts[None], lengths=length[None],
                                     labels=jnp.zeros(1, jnp.int32))
    if visual is not None:
      vis, vlen = clip_prep.pack_visual(visual, max_frames)
      data = data.replace(visual=vis[None], visual_lengths=vlen[None])
    return jnp.exp(log_probs(run.params, data, jnp.zeros(1, jnp.int32))[0])

  return infer


def export_run(workdir: str, out_dir: str, checkpoint: str = "best") -> str:
  """Serialises the run's raw-clip -> probabilities function with its parameters baked in; returns out_dir."""
  run = load_run(workdir, checkpoint)
  dim = layouts.LAYOUT_DIMS[run.layout]
  if run.visual_dim:
    t, tv = jax.export.symbolic_shape("t, tv", constraints=("t >= 1", "tv >= 1"))
    specs = [jax.ShapeDtypeStruct((t, dim), jnp.float32), jax.ShapeDtypeStruct((tv, run.visual_dim), jnp.float32)]
  else:
    (t,) = jax.export.symbolic_shape("t", constraints=("t >= 1",))
    specs = [jax.ShapeDtypeStruct((t, dim), jnp.float32)]
  exported = jax.export.export(jax.jit(_infer_fn(run)), platforms=PLATFORMS)(*specs)
  os.makedirs(out_dir, exist_ok=True)
  atomic.write_bytes(os.path.join(out_dir, EXPORT_FILE), exported.serialize())
  c = len(run.glosses)
  signature = f"probs f32[{c}] = call(landmarks f32[T, {dim}]" + (
      f", visual f32[Tv, {run.visual_dim}])" if run.visual_dim else ")") + ", any T >= 1" + (
          " and Tv >= 1" if run.visual_dim else "")
  meta = {"signature": signature, "inputs": ["landmarks"] + (["visual"] if run.visual_dim else []),
          "landmark_layout": run.layout, "landmark_dim": dim, "visual_dim": run.visual_dim,
          "num_classes": c, "glosses": list(run.glosses), "checkpoint_step": run.step,
          "max_frames": run.config.max_frames, "num_frames": run.config.num_frames,
          "tta_flip": bool(run.config.get("tta_flip", False)), "workdir": os.path.abspath(workdir),
          "platforms": list(exported.platforms),
          "non_finite_inputs": "a NaN or infinite value counts as an undetected point (0), as in the feature files"}
  atomic.write_json(os.path.join(out_dir, META_FILE), meta, indent=1)
  return out_dir


def load_exported(out_dir: str):
  """(call, meta): call(landmarks[, visual]) -> probabilities (C,), using only jax (no asl_jax model code)."""
  with open(os.path.join(out_dir, EXPORT_FILE), "rb") as fh:
    exported = jax.export.deserialize(bytearray(fh.read()))
  with open(os.path.join(out_dir, META_FILE), encoding="utf-8") as fh:
    meta = json.load(fh)
  return (lambda *inputs: np.asarray(exported.call(*(np.asarray(x, np.float32) for x in inputs)))), meta
