"""The RGB photographs bundled with scikit-image, centre-cropped to the model's aspect ratio and resized: a small
natural-image set that needs no download (grey for 1-channel models)."""
from __future__ import annotations

import numpy as np
import skimage.data
import torch
from skimage.transform import resize

from experiments.data.channels import as_channels, check_channels
from experiments.data.spec import DataSpec, describe
from methods.base import pair

# RGB photographs shipped inside scikit-image 0.26 (others in skimage.data need pooch and a download)
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")


def _load(name: str) -> np.ndarray | None:
    """The photo as an [H, W, 3] array, or None where this install cannot load it offline."""
    try:
        image = getattr(skimage.data, name)()
    except (ImportError, OSError, ValueError, AttributeError, ConnectionError):
        return None
    return image if image.ndim == 3 and image.shape[2] == 3 else None


def _centre_crop(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The largest centred crop with the aspect ratio of `size` (h, w), resized (anti-aliased) to it; float in [0, 1]."""
    (h, w), (ih, iw) = size, image.shape[:2]
    ch, cw = (ih, min(iw, round(ih * w / h))) if iw * h >= ih * w else (min(ih, round(iw * h / w)), iw)
    top, left = (ih - ch) // 2, (iw - cw) // 2
    crop = image[top : top + ch, left : left + cw]
    return resize(crop, (h, w), anti_aliasing=True, preserve_range=False).clip(0, 1)


def load_photos(size: int | tuple[int, int] = 64, channels: int = 3) -> DataSpec:
    """The bundled photos that load offline (in PHOTOS order), as [N, channels, h, w] in [0, 1] (channels 1: their
    luminance, experiments.data.channels); labels -1, no masks."""
    h, w = pair(size)
    if min(h, w) < 8:
        raise ValueError(f"data=skimage needs images of >= 8 px; the model's input is {describe(size)}")
    check_channels("skimage", channels)
    loaded = {name: image for name in PHOTOS if (image := _load(name)) is not None}
    if not loaded:
        raise RuntimeError(f"none of the scikit-image photos {', '.join(PHOTOS)} could be loaded")
    images = torch.tensor(np.stack([_centre_crop(im, (h, w)) for im in loaded.values()]), dtype=torch.float32)
    return DataSpec(
        name="photos", images=as_channels(images.permute(0, 3, 1, 2).contiguous(), "skimage", channels),
        labels=torch.full((len(loaded),), -1), masks=None, class_names=(),
    )
