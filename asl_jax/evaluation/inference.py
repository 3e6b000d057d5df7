"""The one inference function: a model's class log-probabilities for clips of packed data, in the
deterministic evaluation view (no RNG), with the run's test-time flips and visual standardisation. Used by
validation and evaluation (evaluation.Evaluator), prediction (predict.py) and the export (export.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from asl_jax.data import input_pipeline, landmark_features


def _apply_views(model, params, data, idx, num_frames: int, features: landmark_features.FeatureConfig,
                 tta_flip: bool, visual_norm, apply, axis: int = 0):
  """apply(params, batch) for the clips `idx` in each of their V views (the clip, and its mirror image with
  `tta_flip` when the model sees landmarks), stacked on a new leading axis: (V, ...), where `axis` of apply's
  output is the batch. With a concrete batch size, the views go through one model call (V * B clips, traced
  once: a shorter start for predict and live); with a symbolic one (the ONNX export, whose converter loses
  the size of a concatenation), one call a view."""
  flips = (False, True) if tta_flip and model.use_landmarks else (False,)
  batches = [input_pipeline.make_batch(data, idx, None, num_frames, None, model.use_landmarks, model.use_visual,
                                       features, flip=flip, visual_norm=visual_norm) for flip in flips]
  b = idx.shape[0]
  if len(flips) == 1 or not isinstance(b, int):
    return jnp.stack([apply(params, batch) for batch in batches])
  out = apply(params, jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs, 0), *batches))
  return jnp.stack([jax.lax.slice_in_dim(out, v * b, (v + 1) * b, axis=axis) for v in range(len(flips))])


def log_probs(model, params, data, idx, num_frames: int, features: landmark_features.FeatureConfig,
              tta_flip: bool = False, visual_norm=None):
  """(B, C) log class probabilities of clips `idx` of `data` (an input_pipeline.DeviceData); with
  `tta_flip`, the log of the mean probability of the clip and its mirror image."""
  out = _apply_views(model, params, data, idx, num_frames, features, tta_flip, visual_norm,
                     lambda p, batch: jax.nn.log_softmax(model.apply({"params": p}, batch, train=False), -1))
  return jax.nn.logsumexp(out, 0) - jnp.log(float(out.shape[0]))


def head_log_probs(model, params, data, idx, num_frames: int, features: landmark_features.FeatureConfig,
                   tta_flip: bool = False, visual_norm=None):
  """(V, K, B, C): the log-probabilities of each of the model's K heads (models.hybrid.HEAD_NAMES; K = 1
  without per-stream heads) in each of V views of clips `idx` (the clip, and its mirror image with
  `tta_flip`): what `log_probs` combines, for fitting the head weights (evaluation.fit_head_weights)."""
  return _apply_views(model, params, data, idx, num_frames, features, tta_flip, visual_norm,
                      lambda p, batch: model.apply({"params": p}, batch, train=False, heads=True), axis=1)


def embeddings(model, params, data, idx, num_frames: int, features: landmark_features.FeatureConfig,
               tta_flip: bool = False, visual_norm=None):
  """(V, B, E): the embedding (models.HybridModel.embed, the last layer's input) of clips `idx` in each of V
  views (the clip, and its mirror image with `tta_flip`). The last layer maps each view to logits, and
  `log_probs` averages the views' probabilities: enrolment (asl_jax/serving/enroll.py) fits class vectors for new
  signs in this space, with the same views."""
  return _apply_views(model, params, data, idx, num_frames, features, tta_flip, visual_norm,
                      lambda p, batch: model.apply({"params": p}, batch, method=model.embed))


def embeddings_fn(config, model, visual_norm=None):
  """`embeddings` with the run's settings bound: f(params, data, idx) -> (V, B, E)."""
  features = landmark_features.FeatureConfig.from_config(config)
  tta = bool(config.tta_flip)
  return lambda params, data, idx: embeddings(model, params, data, idx, config.num_frames, features, tta,
                                              visual_norm)


def log_probs_fn(config, model, visual_norm=None):
  """`log_probs` with the run's settings bound: f(params, data, idx) -> (B, C)."""
  features = landmark_features.FeatureConfig.from_config(config)
  tta = bool(config.tta_flip)
  return lambda params, data, idx: log_probs(model, params, data, idx, config.num_frames, features, tta,
                                             visual_norm)


def padded_batches(n: int, batch_size: int):
  """Fixed-size batches over n items: yields (idx (batch_size,) int32 with padding slots pointing at item 0,
  valid (batch_size,) bool, count of real items)."""
  for start in range(0, n, batch_size):
    idx = np.arange(start, start + batch_size)
    valid = idx < n
    yield np.where(valid, idx, 0).astype(np.int32), valid, int(valid.sum())
