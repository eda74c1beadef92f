"""Image statistics of a visualization: high-frequency energy, spectral slope, total variation, diversity.

Natural photos have little power at high frequencies and a radial power spectrum falling as ~1/f^2;
adversarial-looking, noisy visualizations have a flat spectrum (hf_energy near 0.75, slope near 0) and
high total variation.
"""
from __future__ import annotations

import numpy as np
import skimage.data
from skimage.color import rgb2gray
from skimage.filters import window

from ._common import ArrayLike, as_map, as_numpy

PHOTOS = ("astronaut", "coffee", "chelsea")


def _power(image: ArrayLike) -> np.ndarray:
    """Power spectrum [H, W] (fft-ordered) of the image, summed over channels, each channel's mean removed."""
    x = as_map(image)
    x = x - x.mean(axis=(1, 2), keepdims=True)
    return (np.abs(np.fft.fft2(x)) ** 2).sum(0)


def hf_energy(image: ArrayLike) -> float:
    """Share of spectral power (DC excluded) where max(|fx|, |fy|) > half the Nyquist frequency (0.25 cycles/pixel).

    image: [H, W] or [C, H, W]. White noise -> ~0.75 (the share of such frequencies); a smooth image -> ~0.
    A constant image has no power and gives NaN.
    """
    p = _power(image)
    fy, fx = np.meshgrid(np.fft.fftfreq(p.shape[0]), np.fft.fftfreq(p.shape[1]), indexing="ij")
    total = p.sum()
    if total == 0:
        return float("nan")
    return float(p[np.maximum(np.abs(fx), np.abs(fy)) > 0.25].sum() / total)


def radial_spectrum(image: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(frequency in cycles/pixel, mean power) over integer-radius rings 1..min(H, W)//2, after a Hann window."""
    x = as_map(image)
    x = (x - x.mean(axis=(1, 2), keepdims=True)) * window("hann", x.shape[1:])[None]
    p = np.fft.fftshift((np.abs(np.fft.fft2(x)) ** 2).sum(0))
    h, w = p.shape
    fy, fx = np.meshgrid(np.fft.fftshift(np.fft.fftfreq(h)), np.fft.fftshift(np.fft.fftfreq(w)), indexing="ij")
    n = min(h, w)
    ring = np.rint(np.hypot(fy, fx) * n).astype(int)
    radii = np.arange(1, n // 2 + 1)
    power = np.bincount(ring.ravel(), p.ravel())[radii] / np.bincount(ring.ravel())[radii]
    return radii / n, power


def spectral_slope(image: ArrayLike) -> float:
    """Least-squares slope of log radial power vs log frequency (see `radial_spectrum`).

    image: [H, W] or [C, H, W], at least 8 pixels a side. Natural photos ~-2, white noise ~0.
    """
    x = as_map(image)
    if min(x.shape[1:]) < 8:
        raise ValueError(f"image of {x.shape[1]}x{x.shape[2]} pixels is too small for a spectral slope (need >= 8)")
    f, p = radial_spectrum(x)
    if np.any(p <= 0):
        return float("nan")
    return float(np.polyfit(np.log(f), np.log(p), 1)[0])


def photo_slopes(names: tuple[str, ...] = PHOTOS) -> dict[str, float]:
    """Reference: `spectral_slope` of scikit-image's bundled photos (grayscale in [0, 1]), by name."""
    return {n: spectral_slope(rgb2gray(getattr(skimage.data, n)())) for n in names}


def tv(image: ArrayLike) -> float:
    """Total variation per pixel: (sum |horizontal diffs| + sum |vertical diffs|) / (C * H * W).

    image: [H, W] or [C, H, W] (display range [0, 1] makes values comparable). Constant -> 0;
    a 0/1 checkerboard -> ~2.
    """
    x = as_map(image)
    return float((np.abs(np.diff(x, axis=2)).sum() + np.abs(np.diff(x, axis=1)).sum()) / x.size)


def diversity(images: ArrayLike) -> float:
    """Mean over pairs of (1 - cosine similarity) of a unit's images [n, C, H, W] (n >= 2).

    Each image's own mean is removed first, so that two unrelated images score ~1 rather than sharing
    the positive offset of the [0, 1] range. Identical images -> 0.
    """
    x = as_numpy(images)
    if x.ndim < 2 or x.shape[0] < 2:
        raise ValueError(f"diversity needs >= 2 images [n, C, H, W], got shape {tuple(x.shape)}")
    v = x.reshape(x.shape[0], -1)
    v = v - v.mean(1, keepdims=True)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    v = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)
    cos = v @ v.T
    i, j = np.triu_indices(len(v), k=1)
    return float(np.mean(1 - cos[i, j]))
