"""Image parameterizations: pixels, Lucid's Fourier basis with colour decorrelation, and MACO's phase-only spectrum.

Images have C channels (the model's input channels) and h x w pixels. Colour decorrelation is Lucid's 3x3 RGB
matrix, so it applies only where C = 3; other channel counts are parameterized channel by channel.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.base import invalid_choice, pair


PARAMS = ("pixel", "fourier", "maco")
SQUASHES = ("sigmoid", "clamp")

# Lucid's square root of ImageNet's colour correlation (lucid/optvis/param/color.py), columns scaled to max norm 1.
_COLOR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32)
COLOR_CORRELATION = torch.from_numpy(_COLOR_SQRT / np.max(np.linalg.norm(_COLOR_SQRT, axis=0)))


def decorrelate(x: Tensor, matrix: Tensor | None = None) -> Tensor:
    """Map decorrelated colour channels [B, 3, H, W] to RGB with Lucid's fixed 3x3 matrix (out = M @ x per pixel)."""
    m = COLOR_CORRELATION.to(x) if matrix is None else matrix
    return torch.einsum("ck,bkhw->bchw", m, x)  # a matmul: faster than a 3-channel 1x1 conv on CPU


def rfft_freqs(h: int, w: int | None = None) -> Tensor:
    """Radial frequency (cycles per pixel) of each rfft2 coefficient of an h x w image (w = None: square): [h, w // 2 + 1]."""
    fy = torch.fft.fftfreq(h).view(-1, 1)
    fx = torch.fft.rfftfreq(h if w is None else w).view(1, -1)
    return (fx**2 + fy**2).sqrt()


def _randn(shape: Sequence[int], seeds: Sequence[int], sd: float) -> Tensor:
    """One normal draw of `shape` per seed, stacked: the start of image i depends only on seeds[i]."""
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    return torch.stack([torch.randn(*shape, generator=g) for g in gens]) * sd


class PixelImage(nn.Module):
    """Pixels optimized directly: `sigmoid` of free logits, or raw values kept in [0, 1] by `project()` (clamp)."""

    def __init__(self, seeds: Sequence[int], size: int | tuple[int, int], squash: str = "sigmoid",
                 decorrelate: bool = False, sd: float = 0.01, channels: int = 3) -> None:
        super().__init__()
        if squash not in SQUASHES:
            raise invalid_choice("squash", squash, SQUASHES)
        decorrelate = decorrelate and channels == 3
        if decorrelate and squash != "sigmoid":
            raise ValueError("decorrelate=True needs squash='sigmoid' for param='pixel'")
        self.squash, self.decorrelate = squash, decorrelate
        self.centre = 0.0 if squash == "sigmoid" else 0.5  # the grey image, in raw units
        self.register_buffer("color", COLOR_CORRELATION.clone())
        self.raw = nn.Parameter(_randn((channels, *pair(size)), seeds, sd) + self.centre)

    def forward(self) -> Tensor:
        """Images [B, C, H, W] in [0, 1]."""
        if self.squash == "clamp":
            return self.raw
        return torch.sigmoid(decorrelate(self.raw, self.color) if self.decorrelate else self.raw)

    @torch.no_grad()
    def project(self) -> None:
        """Keep clamp-mode pixels in [0, 1] after an optimizer step."""
        if self.squash == "clamp":
            self.raw.clamp_(0.0, 1.0)


class FourierImage(nn.Module):
    """Lucid's Fourier parameterization: rfft2 coefficients scaled by 1/freq^decay_power, decorrelated (C = 3), sigmoid."""

    def __init__(self, seeds: Sequence[int], size: int | tuple[int, int], decay_power: float = 1.0,
                 decorrelate: bool = True, sd: float = 0.01, channels: int = 3) -> None:
        super().__init__()
        h, w = self.size = pair(size)
        self.decorrelate = decorrelate and channels == 3
        scale = 1.0 / rfft_freqs(h, w).clamp(min=1.0 / max(h, w)) ** decay_power
        self.register_buffer("gain", scale[None, None, :, :, None] / 4.0)  # Lucid's magic 4, folded into the scale
        self.register_buffer("color", COLOR_CORRELATION.clone())
        self.coeffs = nn.Parameter(_randn((channels, h, w // 2 + 1, 2), seeds, sd))

    @property
    def scale(self) -> Tensor:
        """The 1/freq^decay_power scale of each coefficient [1, 1, H, W//2+1, 1] (gain without Lucid's 1/4)."""
        return self.gain * 4.0

    def forward(self) -> Tensor:
        """Images [B, C, H, W] in [0, 1]."""
        spectrum = torch.view_as_complex(self.coeffs * self.gain)
        image = torch.fft.irfft2(spectrum, s=self.size, norm="ortho")
        return torch.sigmoid(decorrelate(image, self.color) if self.decorrelate else image)

    def project(self) -> None:
        """Nothing to keep in range."""


class MacoImage(nn.Module):
    """MACO (Fel et al. 2023): a fixed natural-image magnitude spectrum [C, H, W//2+1]; only the phase is optimized."""

    def __init__(self, seeds: Sequence[int], size: int | tuple[int, int], magnitude: Tensor, sd: float = 1.0) -> None:
        super().__init__()
        h, w = self.size = pair(size)
        if magnitude.dim() != 3 or magnitude.shape[1:] != (h, w // 2 + 1):
            raise ValueError(f"maco magnitude has shape {tuple(magnitude.shape)}, expected (C, {h}, {w // 2 + 1})")
        self.decorrelate = magnitude.shape[0] == 3
        self.register_buffer("magnitude", magnitude.float())
        self.register_buffer("color", COLOR_CORRELATION.clone())
        self.phase = nn.Parameter(_randn(tuple(magnitude.shape), seeds, sd))

    def spectrum(self) -> Tensor:
        """The complex spectrum [B, C, H, W//2+1]: fixed magnitude, standardized phase (per image)."""
        phase = self.phase - self.phase.mean((1, 2, 3), keepdim=True)
        phase = phase / (phase.std((1, 2, 3), keepdim=True) + 1e-5)
        return torch.polar(self.magnitude.expand_as(phase), phase)

    def forward(self) -> Tensor:
        """Images [B, C, H, W] in [0, 1]: inverse FFT, standardized per image, recorrelated (C = 3), sigmoid."""
        image = torch.fft.irfft2(self.spectrum(), s=self.size, norm="ortho")
        image = image - image.mean((1, 2, 3), keepdim=True)
        image = image / (image.std((1, 2, 3), keepdim=True) + 1e-5)
        return torch.sigmoid(decorrelate(image, self.color) if self.decorrelate else image)

    def project(self) -> None:
        """Nothing to keep in range."""


def natural_magnitude(size: int | tuple[int, int], images: Tensor | None = None, channels: int = 3) -> Tensor:
    """Mean rfft2 magnitude [C, H, W//2+1] of natural images [N, C, H', W'] (resized to `size`), RGB in decorrelated
    colour space; without images, scikit-image's photos (RGB for C = 3, grayscale for C = 1; other C need images)."""
    h, w = pair(size)
    if images is None:
        return _skimage_magnitude(h, w, channels).clone()
    if images.dim() != 4 or images.shape[1] != channels:
        raise ValueError(f"maco_images have shape {tuple(images.shape)}; the model takes [N, {channels}, H, W] images")
    x = F.interpolate(images.float(), size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    if channels == 3:
        x = torch.einsum("ck,bkhw->bchw", torch.linalg.inv(COLOR_CORRELATION), x)  # undo decorrelate()
    x = x - x.mean((2, 3), keepdim=True)
    return torch.fft.rfft2(x, norm="ortho").abs().mean(0)


def _centre_crop(img: Tensor, h: int, w: int) -> Tensor:
    """The largest centred crop of img [C, H, W] with the aspect ratio h : w (a square crop for h = w)."""
    rows, cols = img.shape[1:]
    ch, cw = (rows, round(rows * w / h)) if rows * w <= cols * h else (round(cols * h / w), cols)
    top, left = (rows - ch) // 2, (cols - cw) // 2
    return img[:, top : top + ch, left : left + cw]


@lru_cache(maxsize=8)
def _skimage_magnitude(h: int, w: int, channels: int) -> Tensor:
    """natural_magnitude of scikit-image's bundled photos (offline), centre-cropped to the aspect ratio h : w."""
    if channels not in (1, 3):
        raise ValueError(f"param='maco' needs maco_images with {channels} channels ([N, {channels}, H, W] natural "
                         "images for its magnitude spectrum): its built-in photos are RGB or grayscale")
    from skimage import data
    from skimage.color import rgb2gray

    crops = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        photo = getattr(data, name)()
        img = (torch.from_numpy(rgb2gray(photo)).float()[None] if channels == 1
               else torch.from_numpy(photo).permute(2, 0, 1).float() / 255.0)
        crops.append(F.interpolate(_centre_crop(img, h, w)[None], size=(h, w), mode="bilinear", antialias=True)[0])
    return natural_magnitude((h, w), torch.stack(crops), channels)


def make_param(name: str, seeds: Sequence[int], size: int | tuple[int, int], *, decorrelate: bool, decay_power: float,
               squash: str, init_sd: float | None, maco_images: Tensor | None, channels: int = 3) -> nn.Module:
    """Build the parameterization `name` for one C-channel image of `size` (a side or (h, w)) per seed."""
    if name == "pixel":
        return PixelImage(seeds, size, squash, decorrelate, 0.01 if init_sd is None else init_sd, channels)
    if name == "fourier":
        return FourierImage(seeds, size, decay_power, decorrelate, 0.01 if init_sd is None else init_sd, channels)
    if name == "maco":
        return MacoImage(seeds, size, natural_magnitude(size, maco_images, channels), 1.0 if init_sd is None else init_sd)
    raise invalid_choice("param", name, PARAMS)
