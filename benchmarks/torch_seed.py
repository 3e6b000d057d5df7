"""The PyTorch seed trainer, rebuilt from its documented architecture (seed_facts section 2.2/2.3), as the
speed baseline: model, train step, and the seed-style input pipeline (per-sample .npy reads and numpy
augmentations in a DataLoader). Needs the `dev` extra (torch)."""

from __future__ import annotations

import os
import random

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset


def _block(i, o, p, act=nn.GELU):
  return [nn.Linear(i, o), nn.LayerNorm(o), act(), nn.Dropout(p)]


class LandmarkLSTM(nn.Module):
  def __init__(self, d_in, h, p):
    super().__init__()
    self.proj = nn.Sequential(*_block(d_in, h, p, nn.ReLU))
    self.lstm = nn.LSTM(h, h, num_layers=2, batch_first=True, bidirectional=True, dropout=p)
    self.out = nn.Sequential(*_block(2 * h, h, p, nn.ReLU))

  def forward(self, x):
    _, (h_n, _) = self.lstm(self.proj(x))
    return self.out(torch.cat([h_n[-2], h_n[-1]], dim=-1))


class VisualEncoder(nn.Module):
  def __init__(self, g, h, p):
    super().__init__()
    self.proj = nn.Sequential(*_block(g, 2 * h, p), *_block(2 * h, h, p))
    self.attn = nn.MultiheadAttention(h, 4, dropout=p, batch_first=True)

  def forward(self, x):
    x = self.proj(x)
    x, _ = self.attn(x, x, x)
    return x.mean(dim=1)


class SeedModel(nn.Module):
  """LSTM hybrid: visual stream + landmark BiLSTM, concat fusion, 2- or 3-layer head."""

  def __init__(self, classes, g=1152, d_lm=162, h=512, p=0.5):
    super().__init__()
    self.visual = VisualEncoder(g, h, p)
    self.landmarks = LandmarkLSTM(d_lm, h, p)
    self.fusion = nn.Sequential(*_block(2 * h, 2 * h, p), *_block(2 * h, h, p))
    if classes > 500:
      last = nn.Linear(2 * h, classes)
      nn.init.xavier_uniform_(last.weight, gain=0.1)
      self.head = nn.Sequential(*_block(h, 2 * h, p), *_block(2 * h, 2 * h, p), last)
    else:
      self.head = nn.Sequential(*_block(h, h, p), nn.Linear(h, classes))

  def forward(self, visual, landmarks):
    return self.head(self.fusion(torch.cat([self.visual(visual), self.landmarks(landmarks)], dim=-1)))


def make_step(classes, g=1152, h=512, class_weights=None, seed=0, device="cpu", autocast_dtype=None):
  """A train-step closure (AdamW, clip 1.0, weighted smoothed CE) and the model's parameter count.

  `device` "cuda" puts the model there (inputs must be there too); `autocast_dtype` (torch.bfloat16)
  runs the forward pass under torch.autocast, as a mixed-precision PyTorch user would. The step returns
  loss.item() like the seed's loop, which waits for the device every step."""
  torch.manual_seed(seed)
  model = SeedModel(classes, g, 162, h).to(device)
  w = torch.as_tensor(class_weights if class_weights is not None else np.ones(classes), dtype=torch.float32)
  loss_fn = nn.CrossEntropyLoss(weight=w.to(device), label_smoothing=0.1)
  opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
  model.train()
  device_type = torch.device(device).type

  def step(vis, lm, y):
    opt.zero_grad()
    with torch.autocast(device_type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
      loss = loss_fn(model(vis, lm), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.item()

  return step, sum(p.numel() for p in model.parameters())


def seed_augment(g, lm):
  """The seed's six per-sample numpy augmentations at their default strengths."""
  g, lm = g.copy(), lm.copy()
  n = g.shape[0]
  if n > 2 and random.random() < 0.5:
    for i in range(n - 1):
      if random.random() < 0.2:
        g[[i, i + 1]] = g[[i + 1, i]]
        lm[[i, i + 1]] = lm[[i + 1, i]]
  if n > 4 and random.random() < 0.3:
    k = max(4, int(n * random.uniform(0.7, 1.0)))
    s = random.randint(0, n - k)
    gc, lc = g[s:s + k], lm[s:s + k]
    idx = np.linspace(0, k - 1, n)
    g = np.array([gc[int(i)] * (1 - i % 1) + gc[min(int(i) + 1, k - 1)] * (i % 1) for i in idx])
    lm = np.array([lc[int(i)] * (1 - i % 1) + lc[min(int(i) + 1, k - 1)] * (i % 1) for i in idx])
  keep = np.random.random(n) > 0.1
  if keep.sum() < n // 2:
    keep[np.random.choice(n, n // 2, replace=False)] = True
  g[~keep] = 0
  lm[~keep] = 0
  g = g * (np.random.random(g.shape[1]) > 0.1)
  lm = lm * (np.random.random(lm.shape[1]) > 0.1)
  g = g + np.random.normal(0, 0.05, g.shape)
  lm = lm + np.random.normal(0, 0.02, lm.shape)
  return g.astype(np.float32), lm.astype(np.float32)


def _fix_frames(x, t):
  if x.shape[0] > t:
    return x[np.linspace(0, x.shape[0] - 1, t, dtype=int)]
  if x.shape[0] < t:
    return np.vstack([x, np.zeros((t - x.shape[0], x.shape[1]), x.dtype)])
  return x


class SeedDataset(Dataset):
  """Reads both .npy files of a sample from disk on every access, as the seed did."""

  def __init__(self, items, gdir, ldir, t=16, augment=True):
    self.items, self.gdir, self.ldir, self.t, self.augment = items, gdir, ldir, t, augment

  def __len__(self):
    return len(self.items)

  def __getitem__(self, i):
    vid, y = self.items[i]
    g = _fix_frames(np.load(os.path.join(self.gdir, f"{vid}_gemma.npy")), self.t)
    lm = _fix_frames(np.load(os.path.join(self.ldir, f"{vid}_landmarks.npy")), self.t)
    if self.augment:
      g, lm = seed_augment(g, lm)
    return torch.from_numpy(g), torch.from_numpy(lm), y


def seed_loader(items, gdir, ldir, batch_size=32, workers=0, t=16):
  return DataLoader(SeedDataset(items, gdir, ldir, t), batch_size=batch_size, shuffle=True,
                    num_workers=workers, drop_last=True)
