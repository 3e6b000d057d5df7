"""Draw a clip's skeleton (hands, arms) as a PNG contact sheet and an animated GIF, missing parts marked;
optionally the same clip after the training augmentations. The first check when accuracy is near chance."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import animation  # noqa: E402

from asl_jax.data import features as features_lib  # noqa: E402
from asl_jax.data import layouts, packed as packed_lib  # noqa: E402

_FINGERS = [(0, 1, 2, 3, 4), (0, 5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (0, 17, 18, 19, 20), (5, 9, 13, 17)]
HAND_EDGES = [(a, b) for chain in _FINGERS for a, b in zip(chain, chain[1:])]
ARM_EDGES = [(42, 43), (42, 44), (44, 46), (43, 45), (45, 47)]
COLORS = {"left_hand": "tab:blue", "right_hand": "tab:red", "arms": "0.3"}


def load_clip(path: str, layout: str = "auto", max_frames: int = 1000):
  """(points (T, 54, 3) normalised, parts (T, 4)) of a landmarks file."""
  shape, _ = features_lib.read_header(path)
  dim = shape[-1] if len(shape) == 2 else 0
  layout = layouts.layout_for_dim(dim, path) if layout == "auto" else layout
  raw = features_lib.load_array(path, layouts.LAYOUT_DIMS[layout])
  points, parts, _ = packed_lib.prepare_clip(raw, layout, max_frames)
  return points, parts


def _draw(ax, pts, parts, title=""):
  ax.clear()
  ax.set_xlim(-2.5, 2.5)
  ax.set_ylim(3.5, -1.5)  # image y points down
  ax.set_aspect("equal")
  ax.set_xticks([])
  ax.set_yticks([])
  for h, name, off in ((0, "left_hand", 0), (1, "right_hand", 21)):
    if parts[h]:
      for a, b in HAND_EDGES:
        ax.plot(pts[[a + off, b + off], 0], pts[[a + off, b + off], 1], color=COLORS[name], lw=1)
  if parts[2]:
    for a, b in ARM_EDGES:
      ax.plot(pts[[a, b], 0], pts[[a, b], 1], color=COLORS["arms"], lw=2)
  missing = [n for n, p in zip(("L hand", "R hand", "arms"), parts[:3]) if not p]
  if missing:
    ax.text(-2.4, 3.3, "missing: " + ", ".join(missing), color="crimson", fontsize=6)
  ax.set_title(title, fontsize=7)


def contact_sheet(points, parts, path: str, frames: int = 16, title: str = "") -> None:
  t = len(points)
  idx = np.unique(np.round(np.linspace(0, t - 1, min(frames, t))).astype(int))
  cols = min(8, len(idx))
  rows = -(-len(idx) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows), squeeze=False)
  for ax in axes.flat:
    ax.axis("off")
  for ax, i in zip(axes.flat, idx):
    ax.axis("on")
    _draw(ax, points[i], parts[i], f"frame {i}")
  fig.suptitle(title, fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def gif(points, parts, path: str, fps: int = 12, title: str = "") -> None:
  fig, ax = plt.subplots(figsize=(3, 3.2))
  anim = animation.FuncAnimation(fig, lambda i: _draw(ax, points[i], parts[i], f"{title} frame {i}"),
                                 frames=len(points))
  anim.save(path, writer=animation.PillowWriter(fps=fps))
  plt.close(fig)


def augmented(points, parts, num_frames: int, seed: int = 0, config=None):
  """The clip as one training step would see it (all augmentations of `config`, default strengths)."""
  import jax  # pylint: disable=import-outside-toplevel
  from asl_jax.data import augment, input_pipeline  # pylint: disable=import-outside-toplevel
  data = input_pipeline.DeviceData(points=points[None], parts=parts[None],
                                   lengths=np.array([len(points)], np.int32), labels=np.zeros(1, np.int32))
  aug = augment.AugmentConfig.from_config(config) if config is not None else augment.AugmentConfig()
  batch = input_pipeline.make_batch(data, np.zeros(1, np.int32), jax.random.key(seed), num_frames, aug)
  n = int(np.asarray(batch["mask"][0]).sum())
  feats = np.asarray(batch["landmarks"][0, :n])
  return feats[:, :162].reshape(n, 54, 3), feats[:, 162:] > 0


def visualize(path: str, out_dir: str | None = None, layout: str = "auto", augment: bool = False,
              num_frames: int = 32, seed: int = 0) -> list[str]:
  """Writes <name>.png and <name>.gif (and <name>_augmented.*) next to out_dir; returns the paths."""
  points, parts = load_clip(path, layout)
  out_dir = out_dir or os.path.dirname(os.path.abspath(path))
  os.makedirs(out_dir, exist_ok=True)
  name = os.path.splitext(os.path.basename(path))[0]
  outs = []
  views = [("", points, parts)]
  if augment:
    views.append(("_augmented", *augmented(points, parts, num_frames, seed)))
  for suffix, p, pa in views:
    png, anim = os.path.join(out_dir, name + suffix + ".png"), os.path.join(out_dir, name + suffix + ".gif")
    contact_sheet(p, pa, png, title=f"{name}{suffix} ({len(p)} frames)")
    gif(p, pa, anim, title=name + suffix)
    outs += [png, anim]
  return outs
