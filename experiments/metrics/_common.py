"""Helpers shared by the metric families: array conversion, rescaling and SSIM."""
from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import structural_similarity

ArrayLike = np.ndarray | torch.Tensor


def as_numpy(x: ArrayLike) -> np.ndarray:
    """A float64 numpy copy of a tensor or array (detached, on the CPU)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().to(torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def rescale(x: np.ndarray, lo: float = -1.0, hi: float = 1.0) -> np.ndarray:
    """Min-max rescale to [lo, hi]; a constant array maps to the middle of the range."""
    span = x.max() - x.min()
    if span == 0:
        return np.full_like(x, (lo + hi) / 2)
    return lo + (hi - lo) * (x - x.min()) / span


def as_map(x: ArrayLike) -> np.ndarray:
    """An image or map as [C, H, W] (a [H, W] map gets C = 1); other ranks raise."""
    a = as_numpy(x)
    if a.ndim == 2:
        return a[None]
    if a.ndim != 3:
        raise ValueError(f"expected a map [H, W] or image [C, H, W], got shape {tuple(a.shape)}")
    return a


def ssim(a: ArrayLike, b: ArrayLike) -> float:
    """SSIM (window 5, or the largest odd size that fits) of two [H, W] / [C, H, W] maps, each rescaled to [-1, 1]."""
    x, y = as_map(a), as_map(b)
    if x.shape != y.shape:
        raise ValueError(f"maps must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    side = min(x.shape[1:])
    win = min(5, side if side % 2 else side - 1)
    if win < 3:
        raise ValueError(f"maps of {x.shape[1]}x{x.shape[2]} pixels are too small for SSIM (need >= 3x3)")
    return float(structural_similarity(rescale(x), rescale(y), win_size=win, data_range=2.0, channel_axis=0))
