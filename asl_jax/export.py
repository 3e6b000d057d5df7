"""Export a trained run as a self-contained `jax.export` artifact (StableHLO with the weights inside).

The exported function maps model inputs to logits with a symbolic batch size:
  landmarks (B, F, D) float32 and mask (B, F) bool [, visual (B, F, G) float32, visual_mask (B, F) bool]
where F = num_frames and D the run's per-frame features (asl_jax/landmark_features.py; 166 for the seed's
`pos,presence` with z: 54 normalised points x xyz and 4 part-presence flags). The run's visual
standardisation is inside the artifact. `meta.json` beside it holds the glosses and shapes.
Loading needs only jax and numpy: `load_exported(dir)` below, or `jax.export.deserialize`.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from asl_jax import landmark_features
from asl_jax.workdir import load_run

EXPORT_FILE = "model.jax_export"
META_FILE = "meta.json"


def export_run(workdir: str, out_dir: str, checkpoint: str = "best") -> str:
  """Serialises the run's inference function with its parameters baked in; returns out_dir."""
  run = load_run(workdir, checkpoint)
  model, params, cfg = run.model, run.params, run.config
  f = cfg.num_frames
  feature_dim = landmark_features.FeatureConfig.from_config(cfg).dim
  (b,) = jax.export.symbolic_shape("b")
  names = ["landmarks", "mask"] + (["visual", "visual_mask"] if run.visual_dim else [])
  specs = [jax.ShapeDtypeStruct((b, f, feature_dim), jnp.float32), jax.ShapeDtypeStruct((b, f), jnp.bool_)]
  if run.visual_dim:
    specs += [jax.ShapeDtypeStruct((b, f, run.visual_dim), jnp.float32), jax.ShapeDtypeStruct((b, f), jnp.bool_)]

  def infer(*inputs):
    batch = dict(zip(names, inputs))
    if run.visual_norm is not None:  # the run's visual standardisation is part of the artifact
      batch["visual"] = (batch["visual"] - run.visual_norm[0]) / run.visual_norm[1]
    return model.apply({"params": params}, batch, train=False)

  exported = jax.export.export(jax.jit(infer))(*specs)
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, EXPORT_FILE), "wb") as fh:
    fh.write(exported.serialize())
  meta = {"inputs": names, "num_frames": f, "feature_dim": feature_dim, "visual_dim": run.visual_dim,
          "glosses": list(run.glosses), "checkpoint_step": run.step, "landmark_layout": run.layout,
          "max_frames": cfg.max_frames}
  with open(os.path.join(out_dir, META_FILE), "w", encoding="utf-8") as fh:
    json.dump(meta, fh, indent=1)
  return out_dir


def load_exported(out_dir: str):
  """(call, meta): call(*inputs) -> logits, using only jax (no asl_jax model code)."""
  with open(os.path.join(out_dir, EXPORT_FILE), "rb") as fh:
    exported = jax.export.deserialize(bytearray(fh.read()))
  with open(os.path.join(out_dir, META_FILE), encoding="utf-8") as fh:
    meta = json.load(fh)
  return (lambda *inputs: np.asarray(exported.call(*inputs))), meta
