"""The full recognizer and its factory: landmark and/or visual streams -> fusion -> head."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from asl_jax import config as config_lib
from asl_jax.config import choices, default
from asl_jax.models.encoders import (ConvTransformerLandmarkEncoder, LSTMLandmarkEncoder, LinearVisualEncoder,
                                     SeedVisualEncoder, TransformerLandmarkEncoder)
from asl_jax.models.fusion import make_fusion
from asl_jax.models.heads import ClassifierHead

ENCODERS = choices("encoder")
VISUAL_STREAMS = choices("visual_stream")


@dataclasses.dataclass(frozen=True)
class Stream:
  tokens: jnp.ndarray  # (B, T, H)
  pooled: jnp.ndarray  # (B, H)
  mask: jnp.ndarray  # (B, T) bool


class HybridModel(nn.Module):
  """Logits (B, C) from a batch dict with `landmarks` (B, T, F) + `mask` (B, T) and/or `visual`
  (B, Tv, G) + `visual_mask` (B, Tv). Which streams exist is fixed by `use_landmarks` / `use_visual`."""

  num_classes: int
  # The config's model fields, with its defaults (asl_jax/config.py; `scripts/train.py --list_config`).
  hidden_dim: int = default("hidden_dim")
  dropout: float = default("dropout")
  encoder: str = default("encoder")
  fusion_type: str = default("fusion_type")
  use_landmarks: bool = default("use_landmarks")
  lstm_layers: int = default("lstm_layers")
  transformer_layers: int = default("transformer_layers")
  num_heads: int = default("num_heads")
  ff_mult: int = default("ff_mult")
  pooling: str = default("pooling")
  transformer_dropout: float = default("transformer_dropout")
  lstm_matmul_dtype: str = default("lstm_matmul_dtype")
  conv_kernel: int = default("conv_kernel")
  conv_layers: int = default("conv_layers")
  drop_path: float = default("drop_path")
  head_layers: int = default("head_layers")
  head_norm: str = default("head_norm")
  # seed: projections + self-attention; linear (LinearVisualEncoder): the pooled vector is the time-mean of the features themselves, and a visual-only model's head is then one zero-initialised Dense
  # layer on it (a full-rank linear probe), as is the per-stream visual head.
  visual_stream: str = default("visual_stream")
  visual_dropout: float = default("visual_dropout")
  modality_dropout: float = default("modality_dropout")  # training: per clip, drop one stream (p/2 each)
  # Fused vector = landmark vector + a zero-initialised projection of the fusion's output: training starts
  # from the landmark model and adds what the visual stream contributes.
  fusion_residual: bool = default("fusion_residual")
  # Derived from the data and the config rather than config fields themselves:
  use_visual: bool = True  # the run has visual features (config.gemma_features_dir)
  aux_heads: bool = False  # a linear head per stream (both streams only): config.aux_loss_weight > 0
  # The weights of the fused, landmark and visual heads' log-probabilities in the prediction (with
  # per-stream heads): a run's DIR/head_weights.json when it fitted them on val, else equal.
  head_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
  # The calibration temperature the evaluation logits are divided by (DIR/calibration.json, fitted on val
  # after training: asl_jax/evaluation/calibration.py); training's own logits (aux=True) never are.
  temperature: float = 1.0

  @property
  def stream_heads(self) -> bool:
    """Whether the model has a linear head per stream (both streams and aux_heads)."""
    return self.aux_heads and self.use_landmarks and self.use_visual

  def setup(self):
    h, p = self.hidden_dim, self.dropout
    if not (self.use_landmarks or self.use_visual):
      raise ValueError("the model needs landmarks, visual features or both")
    if self.use_landmarks:
      if self.encoder == "lstm":
        self.landmark_encoder = LSTMLandmarkEncoder(h, p, self.lstm_layers, self.lstm_matmul_dtype)
      elif self.encoder == "transformer":
        self.landmark_encoder = TransformerLandmarkEncoder(h, p, self.transformer_layers, self.num_heads,
                                                           self.ff_mult, self.pooling,
                                                           self.transformer_dropout)
      elif self.encoder == "conv_transformer":
        self.landmark_encoder = ConvTransformerLandmarkEncoder(
            h, p, self.transformer_layers, self.num_heads, self.ff_mult, self.transformer_dropout,
            self.conv_kernel, self.conv_layers, self.drop_path)
      else:
        raise ValueError(f"encoder={self.encoder!r}: expected one of {ENCODERS}")
    if self.use_visual:
      if self.visual_stream == "seed":
        self.visual_encoder = SeedVisualEncoder(h, p, self.num_heads)
      elif self.visual_stream == "linear":
        self.visual_encoder = LinearVisualEncoder(h, p, self.visual_dropout)
      else:
        raise ValueError(f"visual_stream={self.visual_stream!r}: expected one of {VISUAL_STREAMS}")
    if self.stream_heads:
      self.aux_landmarks = nn.Dense(self.num_classes, name="aux_landmarks")
      self.aux_visual = nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros, name="aux_visual")
    if self.use_landmarks and self.use_visual:
      self.fusion = make_fusion(self.fusion_type, h, p, self.num_heads)
      if self.fusion_residual:
        self.fusion_out = nn.Dense(h, kernel_init=nn.initializers.zeros)
    if self.use_visual and not self.use_landmarks and self.visual_stream == "linear":
      self.head = nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros)
    else:
      self.head = ClassifierHead(self.num_classes, h, p, self.head_layers, self.head_norm)

  def encode_streams(self, batch: dict[str, Any], train: bool = False) -> dict[str, Stream]:
    out = {}
    if self.use_landmarks:
      tokens, pooled = self.landmark_encoder(batch["landmarks"], batch["mask"], train)
      out["l"] = Stream(tokens, pooled, batch["mask"])
    if self.use_visual:
      tokens, pooled = self.visual_encoder(batch["visual"], batch["visual_mask"], train)
      out["v"] = Stream(tokens, pooled, batch["visual_mask"])
    if len(out) == 2 and train and self.modality_dropout > 0:
      u = jax.random.uniform(self.make_rng("dropout"), (batch["mask"].shape[0],))
      keep = {"v": u >= self.modality_dropout / 2,
              "l": (u < self.modality_dropout / 2) | (u >= self.modality_dropout)}
      out = {k: Stream(s.tokens * keep[k][:, None, None], s.pooled * keep[k][:, None], s.mask)
             for k, s in out.items()}
    return out

  def encode(self, batch: dict[str, Any], train: bool = False) -> jnp.ndarray:
    """The fused (B, H) representation before the head."""
    return self._fuse(self.encode_streams(batch, train), train)

  def _fuse(self, streams, train):
    if len(streams) == 2:
      fused = self.fusion(streams["v"], streams["l"], train)
      return streams["l"].pooled + self.fusion_out(fused) if self.fusion_residual else fused
    return next(iter(streams.values())).pooled

  def embed(self, batch: dict[str, Any]) -> jnp.ndarray:
    """(B, E): the evaluation view's input of the last layer, whose columns are the class vectors (for the
    visual-only linear probe, the pooled features themselves)."""
    fused = self._fuse(self.encode_streams(batch, False), False)
    return fused if isinstance(self.head, nn.Dense) else self.head(fused, False, embed=True)

  def __call__(self, batch: dict[str, Any], train: bool = False, aux: bool = False, heads: bool = False):
    """Logits (B, C); with `aux=True` the fused head's logits and {"landmarks": (B, C), "visual": (B, C)}
    from the per-stream heads (empty without them), each for its own loss; with `heads=True` the
    log-probabilities of every head, (K, B, C) (K = 3 with per-stream heads: fused, landmarks, visual; else 1).

    With per-stream heads, the logits returned otherwise (evaluation, prediction, export) are a weighted
    sum of the three heads' log-probabilities, a product of experts (`head_weights`: equal unless fitted on
    val after training, evaluation.fit_head_weights): each head was trained on its own, and a stream
    without signal gets little weight."""
    streams = self.encode_streams(batch, train)
    fused = self._fuse(streams, train)
    logits = self.head(fused) if isinstance(self.head, nn.Dense) else self.head(fused, train)
    extra = {}
    if self.stream_heads:  # computed (cheap) even when not returned, so init creates them
      extra = {"landmarks": self.aux_landmarks(streams["l"].pooled), "visual": self.aux_visual(streams["v"].pooled)}
    if aux:
      return logits, extra
    if not (heads or extra):
      return logits / self.temperature
    log_probs = jnp.stack([jax.nn.log_softmax(x, -1) for x in (logits, *extra.values())])
    return log_probs if heads else combine_heads(log_probs, self.head_weights) / self.temperature


HEAD_NAMES = ("fused", "landmarks", "visual")


def combine_heads(log_probs: jnp.ndarray, weights) -> jnp.ndarray:
  """(K, ..., C) per-head log-probabilities -> the product of experts sum_k weights[k] * log_probs[k]."""
  w = jnp.asarray(weights, log_probs.dtype).reshape((-1,) + (1,) * (log_probs.ndim - 1))
  return (w * log_probs).sum(0)


# The config fields that are HybridModel fields of the same name.
MODEL_FIELDS = ("hidden_dim", "dropout", "encoder", "fusion_type", "use_landmarks", "lstm_layers",
                "transformer_layers", "num_heads", "ff_mult", "pooling", "transformer_dropout", "lstm_matmul_dtype",
                "conv_kernel", "conv_layers", "drop_path", "head_layers", "head_norm", "visual_stream",
                "visual_dropout", "modality_dropout", "fusion_residual")
DERIVED_FIELDS = ("num_classes", "use_visual", "aux_heads", "head_weights", "temperature")


def create_model(config, num_classes: int, use_landmarks: bool = True, use_visual: bool = False) -> HybridModel:
  """The model a config asks for; which streams exist comes from the run's inputs (`use_landmarks`,
  `use_visual`: run.InputSpec)."""
  kwargs = config_lib.pick(config, {k: k for k in MODEL_FIELDS})
  kwargs.update(use_landmarks=use_landmarks, aux_heads=config.aux_loss_weight > 0)
  return HybridModel(num_classes=num_classes, use_visual=use_visual, **kwargs)


def count_params(params) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(params)))


def named_leaves(tree) -> dict[str, object]:
  """{"head/logits/kernel": leaf} of a parameter tree (or of its checkpoint metadata), in tree order."""
  return {"/".join(str(getattr(k, "key", k)) for k in path): leaf
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def example_batch(batch_size: int, frames: int, landmark_dim: int, visual_dim: int = 0,
                  visual_frames: int | None = None) -> dict[str, jnp.ndarray]:
  """A zero batch of the right shapes (for init and shape tracing)."""
  batch = {"landmarks": jnp.zeros((batch_size, frames, landmark_dim)),
           "mask": jnp.ones((batch_size, frames), bool)}
  if visual_dim:
    vf = visual_frames or frames
    batch.update(visual=jnp.zeros((batch_size, vf, visual_dim)), visual_mask=jnp.ones((batch_size, vf), bool))
  return batch
