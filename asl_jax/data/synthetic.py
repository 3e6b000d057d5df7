"""Synthetic WLASL-shaped data: a data dir laid out exactly like a user's.

Writes `nslt_<K>.json`, `wlasl_class_list.txt`, `landmarks/{id}_landmarks.npy` (T, 162) in the seed162
layout (MediaPipe-like image coordinates, missing parts as zeros) and optionally
`gemma_features/{id}_gemma.npy` (16, 1152) with `extraction_metadata.json`.

Each class is a motion of the hands and arms: a wrist trajectory (two Fourier components around a class
position), a hand shape that changes from a start to an end configuration, and for two-handed classes a
second hand. Classes share their building blocks, so they are learnable but not trivially separable.
Per clip: length (median ~58 frames like WLASL), speed warp, start offset and rest frames, body scale,
rotation and position in the image, left-handed signers mirrored, landmark noise and frames with a
missing hand. Per-class train counts follow WLASL's long tail (seed_facts section 8).
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from asl_jax.data import layouts

# (min, max, mean) train clips per class in the official splits; the nearest K is used.
_TRAIN_COUNTS = {100: (12, 30, 14.42), 300: (9, 30, 11.83), 1000: (6, 30, 8.98), 2000: (5, 30, 7.15)}
VISUAL_DIM = 1152
VISUAL_FRAMES = 16

# Finger chains of the 21 MediaPipe hand landmarks: thumb, index, middle, ring, pinky.
_FINGERS = [(1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20)]
_FINGER_ANGLES = np.deg2rad([-55.0, -20.0, 0.0, 18.0, 36.0])
_BONE = np.array([[0.16, 0.12, 0.10, 0.09], [0.32, 0.14, 0.09, 0.08], [0.32, 0.16, 0.10, 0.08],
                  [0.30, 0.14, 0.09, 0.08], [0.28, 0.11, 0.07, 0.07]])


@dataclasses.dataclass(frozen=True)
class ClassMotion:
  base: np.ndarray  # (2,) dominant wrist rest position, body units (shoulder width = 1, y down)
  amp: np.ndarray  # (2, 2) Fourier amplitudes [component, xy]
  freq: np.ndarray  # (2,)
  phase: np.ndarray  # (2, 2)
  curl0: np.ndarray  # (5,) finger curl at the start, 0 straight .. 1 fist
  curl1: np.ndarray  # (5,) at the end
  roll0: float  # hand orientation (radians) at the start
  roll1: float
  two_handed: bool
  symmetric: bool  # second hand mirrors the first (else it holds still as a base)


def class_motion(rng: np.random.Generator) -> ClassMotion:
  return ClassMotion(
      base=np.array([rng.uniform(-0.1, 0.7), rng.uniform(0.2, 1.3)]),
      amp=rng.uniform(0.05, 0.35, (2, 2)) * rng.choice([-1, 1], (2, 2)),
      freq=rng.choice([0.5, 1.0, 1.5, 2.0], 2),
      phase=rng.uniform(0, 2 * np.pi, (2, 2)),
      curl0=rng.choice([0.0, 0.5, 1.0], 5), curl1=rng.choice([0.0, 0.5, 1.0], 5),
      roll0=rng.uniform(-1.2, 1.2), roll1=rng.uniform(-1.2, 1.2),
      two_handed=bool(rng.random() < 0.4), symmetric=bool(rng.random() < 0.6))


def _hand(wrist: np.ndarray, curl: np.ndarray, roll: np.ndarray, size: float) -> np.ndarray:
  """(T, 21, 2) hand points from wrist (T, 2), curl (T, 5), roll (T,); fingers point up at roll 0."""
  t = wrist.shape[0]
  pts = np.zeros((t, 21, 2))
  pts[:, 0] = wrist
  for f, chain in enumerate(_FINGERS):
    angle = roll + _FINGER_ANGLES[f]
    pos = wrist.copy()
    for j, idx in enumerate(chain):
      if j > 0:  # the curl bends each joint after the knuckle toward the palm
        angle = angle + curl[:, f] * 1.2 * (1 if f else 0.6)
      step = size * _BONE[f, j]
      pos = pos + step * np.stack([np.sin(angle), -np.cos(angle)], -1)
      pts[:, idx] = pos
  return pts


def synth_clip(motion: ClassMotion, rng: np.random.Generator, length: int) -> np.ndarray:
  """One clip (length, 162) float32 in the seed162 layout, image coordinates."""
  rest = rng.integers(0, max(1, length // 6), 2)  # rest frames before / after the sign
  n_sign = max(4, length - rest.sum())
  tau = np.clip(np.linspace(0, 1, n_sign) ** rng.uniform(0.8, 1.25) + rng.uniform(-0.08, 0.08), 0, 1)
  tau = np.concatenate([np.zeros(rest[0]), tau, np.ones(length - n_sign - rest[0])])[:length]
  # The signer's own rendition: amplitudes, phases, position, hand shape and orientation vary per clip.
  amp = motion.amp * rng.uniform(0.6, 1.4, (2, 2))
  phase = motion.phase + rng.normal(0, 0.5, (2, 2))
  wave = np.sin(2 * np.pi * motion.freq[None, :, None] * tau[:, None, None] + phase[None])
  dom = motion.base + rng.normal(0, 0.15, 2) + (amp[None] * wave).sum(1)  # (T, 2)
  curl0 = np.clip(motion.curl0 + rng.normal(0, 0.2, 5), 0, 1)
  curl1 = np.clip(motion.curl1 + rng.normal(0, 0.2, 5), 0, 1)
  curl = (1 - tau)[:, None] * curl0 + tau[:, None] * curl1
  roll = (1 - tau) * (motion.roll0 + rng.normal(0, 0.3)) + tau * (motion.roll1 + rng.normal(0, 0.3))
  size = rng.uniform(0.9, 1.1) * 0.9
  right = _hand(dom, curl, roll, size)
  if motion.two_handed and motion.symmetric:
    left = right * [-1, 1]  # the mirror image through the body's midline
  elif motion.two_handed:
    left = _hand(np.tile([-0.35, 0.9], (length, 1)), np.tile(motion.curl1, (length, 1)), np.full(length, 0.4), size)
  else:
    left = _hand(np.tile([-0.45, 1.7], (length, 1)), np.full((length, 5), 0.3), np.zeros(length), size)
  shoulders = np.array([[-0.5, 0.0], [0.5, 0.0]])
  wrists = np.stack([left[:, 0], right[:, 0]], 1)  # (T, 2, 2)
  mid = (shoulders[None] + wrists) / 2
  elbows = mid + np.array([[-0.25, 0.3], [0.25, 0.3]])
  # Body points in the seed order: left/right shoulder, elbow, wrist, pinky, index, thumb.
  pose = np.stack([np.tile(shoulders[0], (length, 1)), np.tile(shoulders[1], (length, 1)),
                   elbows[:, 0], elbows[:, 1], wrists[:, 0], wrists[:, 1],
                   left[:, 17], right[:, 17], left[:, 5], right[:, 5], left[:, 4], right[:, 4]], 1)
  pts = np.concatenate([left, right, pose], 1)  # (T, 54, 2), body units, signer's left = image right
  # The signer faces the camera: their left (negative body x) appears on the image's right.
  pts[..., 0] *= -1
  if rng.random() < 0.1:  # a left-handed signer: the mirror image, with the hand roles swapped
    pts = pts[:, layouts.FLIP_POINTS]
    pts[..., 0] *= -1
  theta = rng.uniform(-0.17, 0.17)
  rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
  scale = rng.uniform(0.22, 0.38)
  centre = np.array([0.5 + rng.uniform(-0.06, 0.06), 0.32 + rng.uniform(-0.05, 0.05)])
  xy = centre + scale * pts @ rot.T + rng.normal(0, 0.008, pts.shape)
  z = np.zeros(pts.shape[:2] + (1,))
  z[:, :42, 0] = rng.normal(0, 0.02, (length, 42)) - 0.02 * tau[:, None]
  z[:, 42:, 0] = -0.3 + rng.normal(0, 0.03, (length, 12))
  out = np.concatenate([xy, z], -1).astype(np.float32)
  # Missing detections: a hand below the image is not found; random dropouts otherwise.
  for sl in (slice(0, 21), slice(21, 42)):
    missing = (out[:, sl, 1].mean(1) > 0.98) | (rng.random(length) < 0.08)
    out[missing, sl] = 0.0
  return out.reshape(length, 162)


def train_counts(num_classes: int, rng: np.random.Generator) -> np.ndarray:
  """Per-class train clip counts with WLASL's long tail (min / max / mean of the nearest nslt_K)."""
  key = min(_TRAIN_COUNTS, key=lambda k: abs(np.log(k / num_classes)))
  lo, hi, mean = _TRAIN_COUNTS[key]
  power = (hi - lo) / (mean - lo) - 1
  u = rng.permutation(num_classes) / max(1, num_classes - 1)
  return np.round(lo + (hi - lo) * (1 - u) ** power).astype(int)


def _visual(projection: np.ndarray, class_code: np.ndarray, clip: np.ndarray, rng, strength: float = 1.0,
            offset: np.ndarray | float = 0.0, scale: np.ndarray | float = 1.0) -> np.ndarray:
  idx = np.round(np.linspace(0, len(clip) - 1, VISUAL_FRAMES)).astype(int)
  state = clip[idx][:, [0, 1, 63, 64, 24, 25, 87, 88]]  # wrists and finger tips: what a camera sees
  signal = strength * (state @ projection + 0.5 * class_code)
  v = offset + scale * np.tanh(signal + rng.normal(0, 0.8, (VISUAL_FRAMES, VISUAL_DIM)))
  return v.astype(np.float32)


def make_synthetic(out_dir: str, num_classes: int = 50, seed: int = 0, with_visual: bool = False,
                   train_scale: float = 1.0, split_name: str | None = None, visual_strength: float = 1.0,
                   test_scale: float = 1.0) -> dict:
  """Writes a synthetic WLASL-shaped data dir; returns a summary (paths and split sizes).

  Args:
    train_scale: multiplies the per-class train counts (val / test follow), for tiny test sets.
    test_scale: multiplies the val and test counts again (more evaluation clips for the same training cost,
      so that one clip is less than a point).
    visual_strength: how much class signal the visual features carry (1: a strong one, the default; 0.1:
      a weak per-frame signal like frozen image features of a signer, where a nearest-centroid classifier
      on time-pooled features gets far less than the landmarks; 0: none). With visual features, every
      dimension also gets its own offset and scale (as frozen network features do), so a model that does
      not standardise its inputs sees a few large dimensions drown the rest.
  """
  rng = np.random.default_rng(seed)
  lm_dir = os.path.join(out_dir, "landmarks")
  os.makedirs(lm_dir, exist_ok=True)
  vis_dir = os.path.join(out_dir, "gemma_features")
  if with_visual:
    os.makedirs(vis_dir, exist_ok=True)
    projection = rng.normal(0, 1.0, (8, VISUAL_DIM))
    codes = rng.normal(0, 1.0, (num_classes, VISUAL_DIM))
    vis_rng = np.random.default_rng([seed, 7])  # its own stream: the landmarks do not depend on it
    offset = vis_rng.normal(0, 2.0, VISUAL_DIM).astype(np.float32)
    scale = np.exp(vis_rng.normal(0, 1.0, VISUAL_DIM)).astype(np.float32)
  motions = [class_motion(np.random.default_rng([seed, c])) for c in range(num_classes)]
  n_train = np.maximum(1, np.round(train_counts(num_classes, rng) * train_scale)).astype(int)
  split, vid = {}, 0
  for c in range(num_classes):
    counts = {"train": n_train[c], "val": max(1, round(0.26 * test_scale * n_train[c])),
              "test": max(1, round(0.21 * test_scale * n_train[c]))}
    for subset, n in counts.items():
      for _ in range(n):
        vid += 1
        video_id = f"{vid:05d}"
        length = int(np.clip(rng.lognormal(np.log(58), 0.35), 12, 200))
        clip = synth_clip(motions[c], rng, length)
        np.save(os.path.join(lm_dir, video_id + "_landmarks.npy"), clip)
        if with_visual:
          np.save(os.path.join(vis_dir, video_id + "_gemma.npy"),
                  _visual(projection, codes[c], clip, vis_rng, visual_strength, offset, scale).astype(np.float32))
        split[video_id] = {"subset": subset, "action": [c, 1, length]}
  name = split_name or f"nslt_{num_classes}.json"
  with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
    json.dump(split, f)
  with open(os.path.join(out_dir, "wlasl_class_list.txt"), "w", encoding="utf-8") as f:
    f.writelines(f"{c}\tsign{c:04d}\n" for c in range(num_classes))
  with open(os.path.join(lm_dir, "extraction_metadata.json"), "w", encoding="utf-8") as f:
    json.dump({"layout": "seed162", "feature_dim": 162, "synthetic": True, "success_count": vid,
               "error_count": 0}, f)
  if with_visual:
    with open(os.path.join(vis_dir, "extraction_metadata.json"), "w", encoding="utf-8") as f:
      json.dump({"model_name": "synthetic", "num_frames": VISUAL_FRAMES, "feature_dim": VISUAL_DIM,
                 "synthetic": True, "success_count": vid, "error_count": 0}, f)
  sizes = {s: sum(v["subset"] == s for v in split.values()) for s in ("train", "val", "test")}
  return {"data_dir": out_dir, "subset": name, "landmarks_dir": lm_dir,
          "gemma_features_dir": vis_dir if with_visual else "", "num_classes": num_classes, "sizes": sizes}
