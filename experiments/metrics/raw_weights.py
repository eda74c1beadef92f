"""Raw first-layer filters: smoothness, colour and how Gabor-like they are (trained CNNs learn smooth,
often coloured, Gabor-like first-layer filters; random ones are noise).

Filters have C input channels, any C: smoothness and the Gabor fit read all channels, "colour" is the difference
between channels (whatever they are: RGB, or bands such as near-infrared), undefined for C = 1.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from skimage.filters import gabor_kernel

from ._common import ArrayLike, as_numpy, rescale
from .images import tv


def _filters(weights: ArrayLike) -> np.ndarray:
    """Weights as [F, C, h, w] (a single [C, h, w] filter gets F = 1)."""
    w = as_numpy(weights)
    if w.ndim == 3:
        w = w[None]
    if w.ndim != 4:
        raise ValueError(f"expected conv weights [F, C, h, w], got shape {tuple(w.shape)}")
    return w


def filter_smoothness(weights: ArrayLike) -> np.ndarray:
    """Per filter: total variation per pixel (`images.tv`) of the filter rescaled to [0, 1]; lower = smoother.

    weights: [F, C, h, w] (or one [C, h, w]) -> [F].
    """
    return np.array([tv(rescale(f, 0.0, 1.0)) for f in _filters(weights)])


def color_undefined(weights: ArrayLike) -> str | None:
    """Why the filters have no colour ratio (one input channel), or None."""
    c = _filters(weights).shape[1]
    return f"{c}-channel filters have no colour (colour is a difference between input channels)" if c < 2 else None


def color_ratio(weights: ArrayLike) -> np.ndarray:
    """Per filter: share of its energy that differs between channels, ||w - channel mean||^2 / ||w||^2 (0 = grey).

    weights: [F, C, h, w] -> [F], C >= 2 (any channels, not only RGB). The filter's mean colour counts: a filter
    uniform in space whose channels differ (a colour blob) is coloured, while a grey pattern plus an offset common
    to all channels is grey. Energy, not display: a mostly grey blob with a slight tint, e.g. channels (0.5, 0.4,
    0.3), has ratio 0.04 although a per-filter min-max display shows it orange. Independent zero-mean noise in C
    channels -> ~(C - 1) / C (2/3 for RGB); NaN for an all-zero filter, and for every filter when C = 1
    (`color_undefined`).
    """
    w = _filters(weights)
    if color_undefined(w):
        return np.full(len(w), np.nan)
    total = (w**2).sum(axis=(1, 2, 3))
    colour = ((w - w.mean(1, keepdims=True)) ** 2).sum(axis=(1, 2, 3))
    return np.divide(colour, total, out=np.full_like(total, np.nan), where=total > 0)


def color_fraction(weights: ArrayLike, threshold: float = 0.2) -> float:
    """Share of filters whose `color_ratio` exceeds `threshold` (their channels differ, mean colour included);
    NaN for 1-channel filters (`color_undefined`)."""
    r = color_ratio(weights)
    return float(np.mean(r[~np.isnan(r)] > threshold)) if np.any(~np.isnan(r)) else float("nan")


def _fit(kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Centre crop (or zero-pad) a kernel to `shape`."""
    out = np.zeros(shape)
    kh, kw = kernel.shape
    h, w = shape
    ch, cw = min(h, kh), min(w, kw)
    ky, kx, oy, ox = (kh - ch) // 2, (kw - cw) // 2, (h - ch) // 2, (w - cw) // 2
    out[oy : oy + ch, ox : ox + cw] = kernel[ky : ky + ch, kx : kx + cw]
    return out


SIGMAS = (0.1, 0.2, 0.3, 0.45, 0.6)  # envelope sigma as a fraction of the filter side
FREQUENCIES = tuple(np.linspace(0.05, 0.45, 17))  # cycles per pixel


@lru_cache(maxsize=8)
def gabor_bank(shape: tuple[int, int], orientations: int = 12) -> np.ndarray:
    """Centred skimage Gabor kernels cropped to `shape`: [K, 2, h*w], an orthonormal basis of each kernel's
    zero-mean real and imaginary parts (the span of all its phases).

    Grid: `orientations` in [0, pi) x FREQUENCIES x isotropic envelopes with sigma = SIGMAS x the side.
    A degenerate imaginary part (no variation left) gets a zero basis vector.
    """
    side = max(shape)
    bank = []
    for sigma in SIGMAS:
        for freq in FREQUENCIES:
            for theta in np.arange(orientations) * np.pi / orientations:
                k = gabor_kernel(freq, theta=theta, sigma_x=sigma * side, sigma_y=sigma * side, n_stds=4)
                bank.append([_fit(k.real, shape).ravel(), _fit(k.imag, shape).ravel()])
    b = np.array(bank)
    b = b - b.mean(2, keepdims=True)
    q1 = b[:, 0] / np.linalg.norm(b[:, 0], axis=1, keepdims=True)
    r = b[:, 1] - (b[:, 1] * q1).sum(1, keepdims=True) * q1
    n = np.linalg.norm(r, axis=1, keepdims=True)
    q2 = np.divide(r, n, out=np.zeros_like(r), where=n > 1e-8 * n.max())
    return np.stack([q1, q2], axis=1)


def dominant_pattern(weights: ArrayLike) -> np.ndarray:
    """Per filter the spatial pattern [F, h, w] shared by its channels (first singular vector of [C, h*w]),
    so gray and colour-opponent filters are both captured (any C; C = 1: the filter itself, up to scale and sign)."""
    w = _filters(weights)
    f, c, h, wd = w.shape
    _, _, vt = np.linalg.svd(w.reshape(f, c, h * wd), full_matrices=False)
    return vt[:, 0].reshape(f, h, wd)


def gabor_fit(weights: ArrayLike) -> np.ndarray:
    """Per filter: the best correlation of its `dominant_pattern` with a Gabor kernel of `gabor_bank`, at any phase.

    For each kernel this is the multiple correlation with its real and imaginary parts,
    ||Q^T v|| / ||v|| for the zero-mean pattern v; the sign of the filter does not matter.
    weights: [F, C, h, w] (or one [C, h, w]), h, w >= 3 -> [F] in [0, 1]. A Gabor filter -> ~1; noise
    lower but not 0, since the bank is large (measured: ~0.58 on 5x5, ~0.44 on 7x7, ~0.23 on 15x15 noise).
    NaN for a constant filter.
    """
    p = dominant_pattern(weights)
    f, h, w = p.shape
    if min(h, w) < 3:
        raise ValueError(f"filters of {h}x{w} pixels are too small for a Gabor fit (need >= 3x3)")
    v = p.reshape(f, -1)
    v = v - v.mean(1, keepdims=True)
    norm = np.linalg.norm(v, axis=1)
    proj = np.einsum("kjn,fn->fkj", gabor_bank((h, w)), v)
    best = np.sqrt((proj**2).sum(2)).max(1)
    return np.divide(best, norm, out=np.full_like(norm, np.nan), where=norm > 0)
