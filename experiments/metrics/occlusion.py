"""Quality of an attribution (occlusion) map: faithfulness to the model, localization, and concentration.

deletion_auc / insertion_auc (Petsiuk et al. 2018): low deletion and high insertion = the map ranks the
pixels the model relies on first. pointing_game / mask_energy: the map falls on the object.
sparseness (Gini, Chalasani et al. 2020) and complexity (entropy, Bhatt et al. 2020): how concentrated it is.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch import Tensor

from methods.base import invalid_choice, nan_last

from ._common import ArrayLike, as_numpy

MODES = ("deletion", "insertion")


def _order(saliency: Tensor, size: tuple[int, int]) -> Tensor:
    """Pixel indices by decreasing map value (stable, NaN last); a map of another size is resized bilinearly first."""
    m = saliency.detach().float()
    if m.dim() == 3 and m.shape[0] == 1:
        m = m[0]
    if m.dim() != 2:
        raise ValueError(f"saliency map must be [H, W] or [1, H, W], got shape {tuple(saliency.shape)}")
    if tuple(m.shape) != size:
        m = F.interpolate(m[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    return torch.argsort(nan_last(m.flatten().cpu()), descending=True, stable=True)


def perturbation_curve(score: Callable[[Tensor], Tensor], image: Tensor, saliency: Tensor, mode: str = "deletion",
                       steps: int = 50, batch_size: int = 64) -> np.ndarray:
    """Raw target scores [steps + 1] as pixels are deleted (set to 0) or inserted (onto a blurred copy).

    score: images [B, C, H, W] -> [B] target scores; image: [C, H, W]; saliency: [H, W]. Step i changes
    the first round(i * H * W / steps) pixels (all channels) in order of decreasing map value.
    Insertion starts from the image blurred with a Gaussian (kernel 11, sigma 5).
    """
    if mode not in MODES:
        raise invalid_choice("mode", mode, MODES)
    c, h, w = image.shape
    order = _order(saliency, (h, w)).to(image.device)
    start = torch.zeros_like(image) if mode == "deletion" else TF.gaussian_blur(image, [11, 11], [5.0, 5.0])
    source, target = (image, start) if mode == "deletion" else (start, image)
    counts = [round(i * h * w / steps) for i in range(steps + 1)]
    scores = []
    with torch.inference_mode():
        for b in range(0, steps + 1, batch_size):
            batch = []
            for n in counts[b : b + batch_size]:
                x = source.flatten(1).clone()
                x[:, order[:n]] = target.flatten(1)[:, order[:n]]
                batch.append(x.view(c, h, w))
            scores.append(score(torch.stack(batch)).float().cpu())
    return torch.cat(scores).numpy().astype(np.float64)


def normalize_curve(curve: np.ndarray, mode: str) -> np.ndarray:
    """Rescale raw scores so the full image scores 1 and the fully perturbed one 0: (s - s_base) / (s_full - s_base).

    s_full is the unperturbed image's score (deletion: first point, insertion: last point); s_base the
    all-zero image's (deletion) or the blurred image's (insertion). NaNs when |s_full - s_base| is under 5% of
    the curve's range (the perturbation barely moves the score: the AUC would be noise). Values may leave
    [0, 1] when the score is not monotone in the perturbation.
    """
    full, base = (curve[0], curve[-1]) if mode == "deletion" else (curve[-1], curve[0])
    if abs(full - base) <= 0.05 * np.ptp(curve) or full == base:
        return np.full_like(curve, np.nan)
    return (curve - base) / (full - base)


def auc(curve: np.ndarray) -> float:
    """Trapezoid area under a curve sampled at x = 0, 1/steps, ..., 1 (the trapezoid sum divided by steps)."""
    return float(np.trapezoid(curve, dx=1.0 / (len(curve) - 1)))


def _auc(score: Callable[[Tensor], Tensor], image: Tensor, saliency: Tensor, mode: str, steps: int) -> float:
    """AUC of the normalized perturbation curve."""
    return auc(normalize_curve(perturbation_curve(score, image, saliency, mode, steps), mode))


def deletion_auc(score: Callable[[Tensor], Tensor], image: Tensor, saliency: Tensor, steps: int = 50) -> float:
    """Deletion AUC, normally in [0, 1] (lower = better): pixels set to 0 in decreasing map order.

    Scores normalized by `normalize_curve`, area by `auc`.
    score: images [B, C, H, W] -> [B] scores (e.g. a class logit or unit activation); image: [C, H, W]
    in [0, 1]; saliency: [H, W] (resized bilinearly if it has another size).
    """
    return _auc(score, image, saliency, "deletion", steps)


def insertion_auc(score: Callable[[Tensor], Tensor], image: Tensor, saliency: Tensor, steps: int = 50) -> float:
    """Insertion AUC, normally in [0, 1] (higher = better): pixels copied onto a blurred image in decreasing map order.

    Inputs as in `deletion_auc`; normalized by `normalize_curve`, AUC by `auc`.
    """
    return _auc(score, image, saliency, "insertion", steps)


def _map_mask(saliency: ArrayLike, mask: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """A [H, W] map and bool mask of the same shape."""
    m, k = np.squeeze(as_numpy(saliency)), np.squeeze(as_numpy(mask)).astype(bool)
    if m.shape != k.shape or m.ndim != 2:
        raise ValueError(f"map and mask must both be [H, W], got {tuple(m.shape)} and {tuple(k.shape)}")
    return m, k


def pointing_game(saliency: ArrayLike, mask: ArrayLike, tolerance: int = 0) -> float:
    """1 if the map's maximum lies inside the object mask, else 0; with tied maxima, the share of them inside.

    saliency: [H, W]; mask: [H, W] bool (True on the object). A constant map scores the mask's area share.
    tolerance: pixels the mask is grown by first (Zhang et al. 2016 allow 15 px at 224 px; a map made with
    stride s cannot place its maximum finer than s pixels). NaN pixels are never the maximum; an all-NaN map
    gives NaN.
    """
    m, k = _map_mask(saliency, mask)
    if np.isnan(m).all():
        return float("nan")
    if tolerance > 0:
        from skimage.morphology import dilation, disk
        k = dilation(k, disk(tolerance))
    return float(k[m == np.nanmax(m)].mean())


def mask_energy(saliency: ArrayLike, mask: ArrayLike) -> float:
    """Share of the map's positive mass inside the mask (energy-based pointing game); NaN if no positive mass."""
    m, k = _map_mask(saliency, mask)
    pos = np.clip(m, 0, None)
    return float(pos[k].sum() / pos.sum()) if pos.sum() > 0 else float("nan")


def sparseness(saliency: ArrayLike) -> float:
    """Gini index of |map| over all its entries: 0 = uniform, (n - 1) / n ~ 1 = one-hot; NaN for an all-zero map."""
    x = np.sort(np.abs(as_numpy(saliency)).ravel())
    n = x.size
    if x.sum() == 0:
        return float("nan")
    return float(np.sum((2 * np.arange(1, n + 1) - n - 1) * x) / (n * x.sum()))


def complexity(saliency: ArrayLike) -> float:
    """Entropy (nats) of p = |map| / sum |map|: 0 = one-hot, log(n) = uniform; NaN for an all-zero map."""
    x = np.abs(as_numpy(saliency)).ravel()
    if x.sum() == 0:
        return float("nan")
    p = x[x > 0] / x.sum()
    return float(-(p * np.log(p)).sum())
