"""Report plots (matplotlib, Agg): confusion matrix, per-class accuracy, training curves."""

from __future__ import annotations


import numpy as np



def _pyplot():
  """matplotlib (Agg), imported on the first plot: training and prediction never pay for it."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  return plt


def plot_confusion_matrix(cm: np.ndarray, glosses, path: str, top: int = 50, title: str = "") -> None:
  """Row-normalised confusion matrix of the `top` most frequent classes of the split."""
  plt = _pyplot()
  counts = cm.sum(1)
  keep = np.argsort(-counts, kind="stable")[:min(top, int((counts > 0).sum()) or 1)]
  sub = cm[np.ix_(keep, keep)].astype(float)
  sub /= np.maximum(counts[keep][:, None], 1)
  n = len(keep)
  fig, ax = plt.subplots(figsize=(4 + 0.18 * n, 3.5 + 0.18 * n))
  im = ax.imshow(sub, cmap="Blues", vmin=0, vmax=1)
  labels = [glosses[i] for i in keep]
  ax.set_xticks(range(n), labels, rotation=90, fontsize=6)
  ax.set_yticks(range(n), labels, fontsize=6)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  ax.set_title(f"{title + ': ' if title else ''}confusion matrix (row-normalised), {n} most frequent classes")
  fig.colorbar(im, ax=ax, fraction=0.04)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def per_class_accuracy(acc: np.ndarray, glosses, path: str, show: int = 30, title: str = "") -> None:
  """Bar chart of per-class top-1; with more than 2*show classes, the bottom and top `show`."""
  plt = _pyplot()
  present = np.flatnonzero(~np.isnan(acc))
  order = present[np.argsort(acc[present], kind="stable")]
  if len(order) > 2 * show:
    order = np.concatenate([order[:show], order[-show:]])
  vals = acc[order]
  colors = ["tab:red" if v < 0.5 else "tab:orange" if v < 0.75 else "tab:green" for v in vals]
  fig, ax = plt.subplots(figsize=(max(6, 0.22 * len(order)), 4))
  ax.bar(range(len(order)), 100 * vals, color=colors)
  ax.set_xticks(range(len(order)), [glosses[i] for i in order], rotation=90, fontsize=6)
  ax.set_ylabel("top-1 accuracy (%)")
  ax.set_ylim(0, 100)
  ax.set_title(f"{title + ': ' if title else ''}per-class accuracy ({len(present)} classes; mean "
               f"{100 * np.nanmean(acc):.1f}%)")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def training_curves(rows: list[dict], path: str, title: str = "") -> None:
  """Loss and accuracy per epoch from a run's metrics rows (runs.run_dir.RunDir.metrics)."""
  plt = _pyplot()
  if not rows:
    return
  ep = [r["epoch"] for r in rows]
  fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
  for key in ("train_loss", "val_loss"):
    a.plot(ep, [r.get(key, np.nan) for r in rows], label=key)
  a.set_xlabel("epoch")
  a.legend()
  for key in ("train_top1", "val_top1", "val_top5", "val_class_top1"):
    b.plot(ep, [100 * r.get(key, np.nan) for r in rows], label=key)
  b.set_xlabel("epoch")
  b.set_ylabel("%")
  b.legend()
  from matplotlib.ticker import MaxNLocator  # pylint: disable=import-outside-toplevel
  for ax in (a, b):
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
  if title:
    fig.suptitle(f"{title}: training curves", fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def reliability_diagram(bins: list[dict], ece: float, path: str, title: str = "", floor: dict | None = None) -> None:
  """Accuracy against confidence of the top-1 prediction per confidence bin (calibration.reliability_bins),
  with the diagonal of perfect calibration and each bin's clip count; `floor`: the ECE of a perfectly
  calibrated model on as many clips (calibration.ece_noise_floor), said in the title."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(4.6, 4.4))
  ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfectly calibrated")
  width = bins[0]["hi"] - bins[0]["lo"] if bins else 0.1
  for b in bins:
    if b["count"]:
      ax.bar(b["lo"], b["accuracy"], width=width, align="edge", color="tab:blue", alpha=0.75, edgecolor="white")
      ax.text(b["lo"] + width / 2, b["accuracy"] + 0.01, str(b["count"]), ha="center", fontsize=7)
  ax.set_xlim(0, 1)
  ax.set_ylim(0, 1.05)
  ax.set_xlabel("confidence (top-1 probability)")
  ax.set_ylabel("accuracy")
  noise = f"\nperfectly calibrated on as many clips: {floor['mean']:.3f}" if floor else ""
  ax.set_title(f"{title + ': ' if title else ''}reliability, ECE {ece:.3f}{noise}", fontsize=9)
  ax.legend(loc="upper left", fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
