"""Model-randomization sanity checks (Adebayo et al. 2018) and seed stability.

`randomize` re-initializes a copy of the model; the comparison functions score how similar a method's
result on the randomized model is to its result on the original one. Low similarity = the method is
sensitive to the model's weights (good). The same comparisons between two seeds give `seed_ssim`
(high = the method is stable).
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr
from skimage.feature import hog
from skimage.transform import resize
from torch import nn

from methods.base import get_module, invalid_choice

from ._common import ArrayLike, as_map, as_numpy, rescale, ssim

MODES = ("cascading", "independent")


def randomized_layers(model: nn.Module, layer: str, mode: str = "cascading") -> list[str]:
    """Names of the modules `randomize` re-initializes, in `named_modules()` order.

    cascading: `layer`, its submodules and every module after it in `named_modules()` order (the top of
    the network down to and including `layer`); independent: `layer` and its submodules only.
    """
    if mode not in MODES:
        raise invalid_choice("mode", mode, MODES)
    get_module(model, layer)
    names = [n for n, _ in model.named_modules()]
    start = names.index(layer)
    if mode == "cascading":
        return names[start:]
    prefix = f"{layer}." if layer else ""
    return [n for n in names if n == layer or n.startswith(prefix)]


def _reset(module: nn.Module) -> None:
    """Re-initialize the module's own parameters: `reset_parameters` where it exists, else same-scale Gaussian."""
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
        return
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            std = p.std() if p.numel() > 1 else p.abs()
            p.normal_(0.0, float(std) if float(std) > 0 else 1.0)


def randomize(model: nn.Module, layer: str, mode: str = "cascading", seed: int = 0) -> nn.Module:
    """A copy of `model` with the modules of `randomized_layers(model, layer, mode)` re-initialized.

    Modules with `reset_parameters` (Conv, Linear, BatchNorm: also resets running stats) use it; other
    modules holding parameters get each parameter redrawn from N(0, its current std). The original model
    and the global RNG state are untouched; the same seed gives the same copy.
    """
    names = set(randomized_layers(model, layer, mode))
    out = copy.deepcopy(model)
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
        torch.manual_seed(seed)
        for name, module in out.named_modules():
            if name in names:
                _reset(module)
    return out


def _flat_pair(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs flattened, after checking they have the same shape."""
    x, y = as_numpy(a), as_numpy(b)
    if x.shape != y.shape:
        raise ValueError(f"results must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    return x.ravel(), y.ravel()


def _corr(fn, x: np.ndarray, y: np.ndarray) -> float:
    """A correlation that is NaN (not a warning) when either input is constant."""
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(fn(x, y)[0])


def sanity_ssim(a: ArrayLike, b: ArrayLike) -> float:
    """SSIM of two results [H, W] or [C, H, W] of the same shape, each rescaled to [-1, 1] (window 5)."""
    return ssim(a, b)


def sanity_spearman(a: ArrayLike, b: ArrayLike) -> float:
    """Spearman rank correlation of two same-shape results (signed values)."""
    return _corr(spearmanr, *_flat_pair(a, b))


def sanity_spearman_abs(a: ArrayLike, b: ArrayLike) -> float:
    """Spearman rank correlation of the absolute values of two same-shape results."""
    x, y = _flat_pair(a, b)
    return _corr(spearmanr, np.abs(x), np.abs(y))


def hog_features(x: ArrayLike, cells: int = 16, min_side: int = 64) -> np.ndarray:
    """Spatial HOG pattern of a [H, W] / [C, H, W] result rescaled to [0, 1], on about `cells` x `cells` cells.

    Results smaller than `min_side` pixels are first upsampled bilinearly to it (on 7x7 filters, 1-pixel
    cells make HOGs of independent noise correlate from border effects alone). The cell size scales with
    the image: max(1, side // cells) pixels; blocks of 2x2 cells, 9 orientations; for several channels
    skimage keeps, per pixel, the channel with the strongest gradient. Each orientation's mean over all
    positions is subtracted, so a global orientation bias every image shares (e.g. the pixel grid's
    preference in noise: raw HOGs of independent 224x224 uniform noise correlate at ~0.27) does not count
    as similarity; measured on independent noise afterwards: ~0.03 (>= 11 px), ~0.1 (7x7).
    """
    m = rescale(as_map(x), 0.0, 1.0)
    h, w = m.shape[1:]
    if min(h, w) < min_side:
        f = min_side / min(h, w)
        m = resize(m, (m.shape[0], round(h * f), round(w * f)), order=1)
    ppc = (max(1, m.shape[1] // cells), max(1, m.shape[2] // cells))
    f = hog(m, orientations=9, pixels_per_cell=ppc, cells_per_block=(2, 2), channel_axis=0, feature_vector=False)
    return (f - f.mean(axis=(0, 1, 2, 3), keepdims=True)).ravel()


def sanity_hog(a: ArrayLike, b: ArrayLike) -> float:
    """Pearson correlation of the HOG features (`hog_features`) of two same-shape results."""
    _flat_pair(a, b)
    return _corr(pearsonr, hog_features(a), hog_features(b))


def seed_ssim(a: ArrayLike, b: ArrayLike) -> float:
    """SSIM of one method's results for two seeds (same shapes, each rescaled to [-1, 1])."""
    return ssim(a, b)


def compare(a: ArrayLike, b: ArrayLike) -> dict[str, float]:
    """All four sanity similarities of two results, keyed by metric name."""
    return {
        "sanity_ssim": sanity_ssim(a, b),
        "sanity_spearman": sanity_spearman(a, b),
        "sanity_spearman_abs": sanity_spearman_abs(a, b),
        "sanity_hog": sanity_hog(a, b),
    }
