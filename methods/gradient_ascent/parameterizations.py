"""Image parameterizations: pixels, Lucid's Fourier basis with colour decorrelation, and MACO's phase-only spectrum."""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.base import invalid_choice

PARAMS = ("pixel", "fourier", "maco")
SQUASHES = ("sigmoid", "clamp")

# Lucid's square root of ImageNet's colour correlation (lucid/optvis/param/color.py), columns scaled to max norm 1.
_COLOR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32)
COLOR_CORRELATION = torch.from_numpy(_COLOR_SQRT / np.max(np.linalg.norm(_COLOR_SQRT, axis=0)))


def decorrelate(x: Tensor, matrix: Tensor | None = None) -> Tensor:
    """Map decorrelated colour channels [B, 3, H, W] to RGB with Lucid's fixed 3x3 matrix (out = M @ x per pixel)."""
    m = COLOR_CORRELATION.to(x) if matrix is None else matrix
    return torch.einsum("ck,bkhw->bchw", m, x)  # a matmul: faster than a 3-channel 1x1 conv on CPU


def rfft_freqs(size: int) -> Tensor:
    """Radial frequency (cycles per pixel) of each rfft2 coefficient of a size x size image: [size, size // 2 + 1]."""
    fy = torch.fft.fftfreq(size).view(-1, 1)
    fx = torch.fft.rfftfreq(size).view(1, -1)
    return (fx**2 + fy**2).sqrt()


def _randn(shape: Sequence[int], seeds: Sequence[int], sd: float) -> Tensor:
    """One normal draw of `shape` per seed, stacked: the start of image i depends only on seeds[i]."""
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    return torch.stack([torch.randn(*shape, generator=g) for g in gens]) * sd


class PixelImage(nn.Module):
    """Pixels optimized directly: `sigmoid` of free logits, or raw values kept in [0, 1] by `project()` (clamp)."""

    def __init__(self, seeds: Sequence[int], size: int, squash: str = "sigmoid", decorrelate: bool = False, sd: float = 0.01) -> None:
        super().__init__()
        if squash not in SQUASHES:
            raise invalid_choice("squash", squash, SQUASHES)
        if decorrelate and squash != "sigmoid":
            raise ValueError("decorrelate=True needs squash='sigmoid' for param='pixel'")
        self.squash, self.decorrelate = squash, decorrelate
        self.centre = 0.0 if squash == "sigmoid" else 0.5  # the grey image, in raw units
        self.register_buffer("color", COLOR_CORRELATION.clone())
        self.raw = nn.Parameter(_randn((3, size, size), seeds, sd) + self.centre)

    def forward(self) -> Tensor:
        """Images [B, 3, S, S] in [0, 1]."""
        if self.squash == "clamp":
            return self.raw
        return torch.sigmoid(decorrelate(self.raw, self.color) if self.decorrelate else self.raw)

    @torch.no_grad()
    def project(self) -> None:
        """Keep clamp-mode pixels in [0, 1] after an optimizer step."""
        if self.squash == "clamp":
            self.raw.clamp_(0.0, 1.0)


class FourierImage(nn.Module):
    """Lucid's Fourier parameterization: rfft2 coefficients scaled by 1/freq^decay_power, decorrelated, sigmoid."""

    def __init__(self, seeds: Sequence[int], size: int, decay_power: float = 1.0, decorrelate: bool = True, sd: float = 0.01) -> None:
        super().__init__()
        self.size, self.decorrelate = size, decorrelate
        scale = 1.0 / rfft_freqs(size).clamp(min=1.0 / size) ** decay_power
        self.register_buffer("gain", scale[None, None, :, :, None] / 4.0)  # Lucid's magic 4, folded into the scale
        self.register_buffer("color", COLOR_CORRELATION.clone())
        self.coeffs = nn.Parameter(_randn((3, size, size // 2 + 1, 2), seeds, sd))

    @property
    def scale(self) -> Tensor:
        """The 1/freq^decay_power scale of each coefficient [1, 1, S, S//2+1, 1] (gain without Lucid's 1/4)."""
        return self.gain * 4.0

    def forward(self) -> Tensor:
        """Images [B, 3, S, S] in [0, 1]."""
        spectrum = torch.view_as_complex(self.coeffs * self.gain)
        image = torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho")
        return torch.sigmoid(decorrelate(image, self.color) if self.decorrelate else image)

    def project(self) -> None:
        """Nothing to keep in range."""


class MacoImage(nn.Module):
    """MACO (Fel et al. 2023): a fixed natural-image magnitude spectrum; only the phase is optimized."""

    def __init__(self, seeds: Sequence[int], size: int, magnitude: Tensor, sd: float = 1.0) -> None:
        super().__init__()
        if magnitude.shape != (3, size, size // 2 + 1):
            raise ValueError(f"maco magnitude has shape {tuple(magnitude.shape)}, expected (3, {size}, {size // 2 + 1})")
        self.size = size
        self.register_buffer("magnitude", magnitude.float())
        self.register_buffer("color", COLOR_CORRELATION.clone())
        self.phase = nn.Parameter(_randn((3, size, size // 2 + 1), seeds, sd))

    def spectrum(self) -> Tensor:
        """The complex spectrum [B, 3, S, S//2+1]: fixed magnitude, standardized phase (per image)."""
        phase = self.phase - self.phase.mean((1, 2, 3), keepdim=True)
        phase = phase / (phase.std((1, 2, 3), keepdim=True) + 1e-5)
        return torch.polar(self.magnitude.expand_as(phase), phase)

    def forward(self) -> Tensor:
        """Images [B, 3, S, S] in [0, 1]: inverse FFT, standardized per image, recorrelated, sigmoid."""
        image = torch.fft.irfft2(self.spectrum(), s=(self.size, self.size), norm="ortho")
        image = image - image.mean((1, 2, 3), keepdim=True)
        image = image / (image.std((1, 2, 3), keepdim=True) + 1e-5)
        return torch.sigmoid(decorrelate(image, self.color))

    def project(self) -> None:
        """Nothing to keep in range."""


def natural_magnitude(size: int, images: Tensor | None = None) -> Tensor:
    """Mean rfft2 magnitude [3, S, S//2+1] of natural images in decorrelated colour space (default: skimage photos)."""
    if images is None:
        return _skimage_magnitude(size).clone()
    x = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    x = torch.einsum("ck,bkhw->bchw", torch.linalg.inv(COLOR_CORRELATION), x)  # undo decorrelate()
    x = x - x.mean((2, 3), keepdim=True)
    return torch.fft.rfft2(x, norm="ortho").abs().mean(0)


@lru_cache(maxsize=8)
def _skimage_magnitude(size: int) -> Tensor:
    """natural_magnitude of scikit-image's bundled photos (offline), centre-cropped to squares."""
    from skimage import data

    crops = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        img = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1).float() / 255.0
        side = min(img.shape[1:])
        top, left = (img.shape[1] - side) // 2, (img.shape[2] - side) // 2
        crops.append(F.interpolate(img[None, :, top : top + side, left : left + side], size=(size, size), mode="bilinear", antialias=True)[0])
    return natural_magnitude(size, torch.stack(crops))


def make_param(name: str, seeds: Sequence[int], size: int, *, decorrelate: bool, decay_power: float, squash: str,
               init_sd: float | None, maco_images: Tensor | None) -> nn.Module:
    """Build the parameterization `name` for one image per seed."""
    if name == "pixel":
        return PixelImage(seeds, size, squash, decorrelate, 0.01 if init_sd is None else init_sd)
    if name == "fourier":
        return FourierImage(seeds, size, decay_power, decorrelate, 0.01 if init_sd is None else init_sd)
    if name == "maco":
        return MacoImage(seeds, size, natural_magnitude(size, maco_images), 1.0 if init_sd is None else init_sd)
    raise invalid_choice("param", name, PARAMS)
