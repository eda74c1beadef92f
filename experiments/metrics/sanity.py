"""Model-randomization sanity checks (Adebayo et al. 2018) and seed stability.

`randomize` re-initializes a copy of the model; the comparison functions score how similar a method's
result on the randomized model is to its result on the original one. Low similarity = the method is
sensitive to the model's weights (good); a signed similarity below 0 means the result flipped sign, which
also shows that it depends on the weights. As in Adebayo et al. 2018, each similarity comes signed (tells a
result from its negation) or on absolute values (`_abs`: a result and its negation score 1):

- `sanity_ssim`: SSIM of the results each min-max rescaled to [0, 1], as their `normalize_image` (window 5,
  uniform, where they use skimage's Gaussian window); `sanity_ssim_abs`: the same on |result|. Not [-1, 1]:
  there SSIM's luminance term changes sign with the local means, so a map and its negation scored +0.75
  (measured on a grating with noise; [0, 1]: -0.66).
- `sanity_spearman` / `sanity_spearman_abs`: Spearman rank correlation of the values / of |values| (their
  per-map division by max |value| does not change ranks, so it is left out).
- `sanity_hog_abs`: correlation of HOG features of |result|. HOG orientations are unsigned, so HOG cannot
  see a sign flip; there is no signed variant. They rank-correlate the HOG vectors; here Pearson of the HOG
  features after removing each orientation's mean (`hog_features`).

Results in [0, 1] (gradient-ascent images, top patches) equal their absolute values, so there the signed
and `_abs` variants coincide. Multi-channel results keep their channels (SSIM: mean over channels; HOG:
skimage's strongest channel per pixel); their code first collapses 3-channel masks to one grey map.

A similarity of a result that is constant (all zero included; |result| for the `_abs` variants) or not
finite is undefined: the functions return NaN and `undefined` says why (scoring reports it as a degenerate
row, never as a pass). `seed_ssim` (stability over two seeds, high = stable) is `sanity_ssim` on the two
seeds' results, so both read alike; `gt_ssim` (ground_truth) uses the same [0, 1] SSIM.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr
from skimage.feature import hog
from skimage.transform import resize
from torch import nn

from methods.base import copy_module, get_module, invalid_choice

from ._common import ArrayLike, as_map, as_numpy, flat, rescale, ssim

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
    out = copy_module(model)
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
        torch.manual_seed(seed)
        for name, module in out.named_modules():
            if name in names:
                _reset(module)
    return out


def undefined(x: ArrayLike, absolute: bool = False) -> str | None:
    """Why a similarity of result `x` (its |values| if `absolute`) is undefined: not finite or constant; else None."""
    a = as_numpy(x)
    if not np.isfinite(a).all():
        return "NaN or Inf in result"
    if flat(np.abs(a) if absolute else a):
        return "constant |result|" if absolute else "constant result"
    return None


def _pair(a: ArrayLike, b: ArrayLike, absolute: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """Both results as arrays (|values| if `absolute`) after checking their shapes; None if either is undefined."""
    x, y = as_numpy(a), as_numpy(b)
    if x.shape != y.shape:
        raise ValueError(f"results must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if undefined(x, absolute) or undefined(y, absolute):
        return None
    return (np.abs(x), np.abs(y)) if absolute else (x, y)


def _ssim(a: ArrayLike, b: ArrayLike, absolute: bool) -> float:
    """SSIM of two results each min-max rescaled to [0, 1] (see `_common.ssim`); NaN if either is undefined."""
    pair = _pair(a, b, absolute)
    return float("nan") if pair is None else ssim(*pair)


def _spearman(a: ArrayLike, b: ArrayLike, absolute: bool) -> float:
    """Spearman rank correlation of two flattened results (ties: average ranks); NaN if either is undefined."""
    pair = _pair(a, b, absolute)
    return float("nan") if pair is None else float(spearmanr(pair[0].ravel(), pair[1].ravel())[0])


def sanity_ssim(a: ArrayLike, b: ArrayLike) -> float:
    """Signed SSIM: two same-shape results [H, W] / [C, H, W], each min-max rescaled to [0, 1] (window 5)."""
    return _ssim(a, b, absolute=False)


def sanity_ssim_abs(a: ArrayLike, b: ArrayLike) -> float:
    """SSIM of |a| and |b|, each min-max rescaled to [0, 1] (window 5)."""
    return _ssim(a, b, absolute=True)


def sanity_spearman(a: ArrayLike, b: ArrayLike) -> float:
    """Spearman rank correlation of two same-shape results (signed values)."""
    return _spearman(a, b, absolute=False)


def sanity_spearman_abs(a: ArrayLike, b: ArrayLike) -> float:
    """Spearman rank correlation of the absolute values of two same-shape results."""
    return _spearman(a, b, absolute=True)


def hog_features(x: ArrayLike, cells: int = 16, min_side: int = 64) -> np.ndarray:
    """Spatial HOG pattern of a [H, W] / [C, H, W] result rescaled to [0, 1], on about `cells` x `cells` cells.

    Results smaller than `min_side` pixels are first upsampled bilinearly to it (on 7x7 filters, 1-pixel
    cells make HOGs of independent noise correlate from border effects alone). The cell size scales with
    the image: max(1, side // cells) pixels; blocks of 2x2 cells, 9 unsigned orientations; for several
    channels skimage keeps, per pixel, the channel with the strongest gradient. Each orientation's mean over
    all positions is subtracted, so a global orientation bias every image shares (e.g. the pixel grid's
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


def sanity_hog_abs(a: ArrayLike, b: ArrayLike) -> float:
    """Pearson correlation of the HOG features (`hog_features`) of |a| and |b|; NaN if either is undefined or
    its features are constant."""
    pair = _pair(a, b, absolute=True)
    if pair is None:
        return float("nan")
    fa, fb = hog_features(pair[0]), hog_features(pair[1])
    return float("nan") if np.ptp(fa) == 0 or np.ptp(fb) == 0 else float(pearsonr(fa, fb)[0])


def seed_ssim(a: ArrayLike, b: ArrayLike) -> float:
    """SSIM of one method's results for two seeds: `sanity_ssim` (each rescaled to [0, 1]; NaN if undefined)."""
    return sanity_ssim(a, b)


# name -> (similarity, whether it compares absolute values)
SIMILARITIES: dict[str, tuple[Callable[[ArrayLike, ArrayLike], float], bool]] = {
    "sanity_ssim": (sanity_ssim, False),
    "sanity_ssim_abs": (sanity_ssim_abs, True),
    "sanity_spearman": (sanity_spearman, False),
    "sanity_spearman_abs": (sanity_spearman_abs, True),
    "sanity_hog_abs": (sanity_hog_abs, True),
}


def compare(a: ArrayLike, b: ArrayLike) -> dict[str, float]:
    """Every sanity similarity (`SIMILARITIES`) of two results, keyed by metric name."""
    return {name: fn(a, b) for name, (fn, _) in SIMILARITIES.items()}
