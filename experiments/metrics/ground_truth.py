"""Agreement with a known answer: a planted unit's preferred stimulus, or an object mask for occlusion.

High = the method recovered what the unit really responds to.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr

from ._common import ArrayLike, as_map, ssim


def match(result: ArrayLike, truth: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Bring a result and the truth to one [C, H, W] shape.

    A result larger than the truth is centre-cropped to it (the planted truth covers the receptive field
    at the centre); a single-channel side is compared with the channel mean of the other side.
    A result smaller than the truth raises.
    """
    r, t = as_map(result), as_map(truth)
    if r.shape[0] != t.shape[0]:
        r, t = r.mean(0, keepdims=True), t.mean(0, keepdims=True)
    (h, w), (th, tw) = r.shape[1:], t.shape[1:]
    if h < th or w < tw:
        raise ValueError(f"result of {h}x{w} pixels is smaller than the truth of {th}x{tw}")
    top, left = (h - th) // 2, (w - tw) // 2
    return r[:, top : top + th, left : left + tw], t


def gt_corr(result: ArrayLike, truth: ArrayLike) -> float:
    """Pearson correlation of a result ([H, W] or [C, H, W]) with the truth after `match` (NaN if constant)."""
    r, t = match(result, truth)
    if np.ptp(r) == 0 or np.ptp(t) == 0:
        return float("nan")
    return float(pearsonr(r.ravel(), t.ravel())[0])


def gt_ssim(result: ArrayLike, truth: ArrayLike) -> float:
    """SSIM (window 5, both rescaled to [0, 1]) of a result with the truth after `match`: an inverted recovery < 0."""
    return ssim(*match(result, truth))
