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


def flat(x: ArrayLike, rtol: float = 1e-5) -> bool:
    """Whether `x` is constant: its range is at most `rtol` x its largest |value| (an all-zero array is)."""
    a = as_numpy(x)
    return a.size > 0 and float(np.ptp(a)) <= rtol * float(np.abs(a).max())


def ssim(a: ArrayLike, b: ArrayLike, lo: float = 0.0) -> float:
    """SSIM (window 5, or the largest odd size that fits) of two [H, W] / [C, H, W] maps, each min-max rescaled
    to [lo, 1] (data range 1 - lo; several channels: the mean of the channels' SSIMs).

    Every metric uses lo = 0 (as Adebayo et al. 2018). lo = -1 is kept to show why not: SSIM's luminance term
    2 mu_x mu_y / (mu_x^2 + mu_y^2) is meant for intensities >= 0 and turns negative where two windows of a
    [-1, 1] pair have means of opposite sign, so a map and its inversion can score well above 0.
    """
    x, y = as_map(a), as_map(b)
    if x.shape != y.shape:
        raise ValueError(f"maps must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    side = min(x.shape[1:])
    win = min(5, side if side % 2 else side - 1)
    if win < 3:
        raise ValueError(f"maps of {x.shape[1]}x{x.shape[2]} pixels are too small for SSIM (need >= 3x3)")
    return float(structural_similarity(rescale(x, lo), rescale(y, lo), win_size=win, data_range=1.0 - lo, channel_axis=0))
