"""Per-frame visual features from a SigLIP vision tower (PaliGemma's, 1152-d): `{id}_gemma.npy` (T, D).

Only the vision tower is loaded, straight from the checkpoint's safetensors files, so a PaliGemma checkpoint
costs the memory of its 0.4 B-parameter SigLIP tower, not of the 3 B model. Works with PaliGemma
(`google/paligemma-3b-pt-224`, the seed's), SigLIP (`google/siglip-so400m-patch14-224`) and SigLIP
vision-only checkpoints, by hub name or local directory. Each frame: the checkpoint's image processor
(224 x 224, rescale, normalise), the tower's last hidden state, mean over patches (the seed's features).

Needs torch and transformers (the `visual` extra; see docs/data.md).
"""

from __future__ import annotations

import glob
import os

import numpy as np

from asl_jax.errors import DataError

DEFAULT_MODEL = "google/paligemma-3b-pt-224"


def _import():
  try:
    import torch  # pylint: disable=import-outside-toplevel
    import transformers  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise DataError(f"visual features need torch and transformers (pip install -e '.[visual]' in the extraction "
                    f"environment, see docs/data.md): {e}") from None
  return torch, transformers


def _checkpoint_dir(model_name: str) -> str:
  if os.path.isdir(model_name):
    return model_name
  from huggingface_hub import snapshot_download  # pylint: disable=import-outside-toplevel
  try:  # the safetensors shards hold the tower; the language model's tensors are never read
    return snapshot_download(model_name, allow_patterns=["*.json", "*.safetensors"])
  except Exception as e:  # gated repos need `huggingface-cli login` after accepting the licence
    raise DataError(f"{model_name}: cannot fetch the checkpoint ({type(e).__name__}: {e}); log in with "
                    "`huggingface-cli login` after accepting the model licence, or pass a local directory") from None


def _vision_config(ckpt: str):
  """(SiglipVisionConfig, whether the checkpoint holds nothing but the tower)."""
  _, transformers = _import()
  config = transformers.AutoConfig.from_pretrained(ckpt)
  if config.model_type == "siglip_vision_model":
    return config, True
  vision = getattr(config, "vision_config", None)
  if vision is None or vision.model_type != "siglip_vision_model":
    raise DataError(f"{ckpt}: model_type {config.model_type!r} has no SigLIP vision tower "
                    "(expected paligemma, siglip or siglip_vision_model)")
  return vision, False


def _tower_key(key: str, vision_only: bool) -> str | None:
  """A checkpoint tensor's name inside the tower without the `vision_model.` level (which transformers
  versions differ on), None for tensors outside the tower. PaliGemma stores `[model.]vision_tower.*`,
  SigLIP `vision_model.*`, vision-only checkpoints either form."""
  if "vision_tower." in key:
    key = key.split("vision_tower.", 1)[1]
  elif not (vision_only or key.startswith("vision_model.")):
    return None
  return key.removeprefix("vision_model.")


def load_vision_tower(model_name: str, device: str = "cpu", dtype=None):
  """(SiglipVisionModel in eval mode, image processor) for a checkpoint name or directory."""
  torch, transformers = _import()
  from safetensors import safe_open  # pylint: disable=import-outside-toplevel
  ckpt = _checkpoint_dir(model_name)
  config, vision_only = _vision_config(ckpt)
  model = transformers.SiglipVisionModel(config)
  files = sorted(glob.glob(os.path.join(ckpt, "*.safetensors")))
  if not files:
    raise DataError(f"{ckpt}: no .safetensors weights")
  state = {}
  for path in files:
    with safe_open(path, framework="pt") as f:
      for key in f.keys():
        name = _tower_key(key, vision_only)
        if name is not None:
          state[name] = f.get_tensor(key)
  wanted = {k: k.removeprefix("vision_model.") for k in model.state_dict()}
  missing = sorted(v for v in wanted.values() if v not in state)
  if missing:
    raise DataError(f"{ckpt}: the checkpoint lacks {len(missing)} vision-tower tensors, e.g. {missing[:3]}")
  model.load_state_dict({k: state[v] for k, v in wanted.items()}, strict=True)
  model = model.to(device=device, dtype=dtype or torch.float32).eval()
  try:
    processor = transformers.AutoImageProcessor.from_pretrained(ckpt)
  except Exception as e:
    raise DataError(f"{ckpt}: no image processor configuration (preprocessor_config.json): {e}") from None
  return model, processor


def pick_device(device: str = "auto") -> str:
  torch, _ = _import()
  if device != "auto":
    return device
  if torch.cuda.is_available():
    return "cuda"
  mps = getattr(torch.backends, "mps", None)
  return "mps" if mps is not None and mps.is_available() else "cpu"


class SiglipFeatureExtractor:
  """frames (list of RGB uint8 images) -> (T, D) float32 features, batched on one device."""

  def __init__(self, model_name: str = DEFAULT_MODEL, device: str = "auto", batch_size: int = 32):
    torch, _ = _import()
    self.device = pick_device(device)
    self.dtype = torch.float16 if self.device == "cuda" else torch.float32
    self.model, self.processor = load_vision_tower(model_name, self.device, self.dtype)
    self.model_name, self.batch_size = model_name, batch_size
    self.feature_dim = int(self.model.config.hidden_size)

  def __call__(self, frames) -> np.ndarray:
    torch, _ = _import()
    out = []
    for i in range(0, len(frames), self.batch_size):
      pixels = self.processor(images=list(frames[i:i + self.batch_size]), return_tensors="pt")["pixel_values"]
      with torch.inference_mode():
        hidden = self.model(pixel_values=pixels.to(self.device, self.dtype)).last_hidden_state
      out.append(hidden.float().mean(1).cpu().numpy())
    return np.concatenate(out, 0) if out else np.zeros((0, self.feature_dim), np.float32)
