"""The RGB photographs bundled with scikit-image, centre-cropped and resized: a small natural-image set that needs no download."""
from __future__ import annotations

import numpy as np
import skimage.data
import torch
from skimage.transform import resize

from experiments.data.spec import DataSpec

# RGB photographs shipped inside scikit-image 0.26 (others in skimage.data need pooch and a download)
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")


def _load(name: str) -> np.ndarray | None:
    """The photo as an [H, W, 3] array, or None where this install cannot load it offline."""
    try:
        image = getattr(skimage.data, name)()
    except (ImportError, OSError, ValueError, AttributeError, ConnectionError):
        return None
    return image if image.ndim == 3 and image.shape[2] == 3 else None


def _square(image: np.ndarray, size: int) -> np.ndarray:
    """Centre crop to a square, then resize (anti-aliased) to `size` px; float in [0, 1]."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[top : top + side, left : left + side]
    return resize(crop, (size, size), anti_aliasing=True, preserve_range=False).clip(0, 1)


def load_photos(size: int = 64) -> DataSpec:
    """The bundled photos that load offline (in PHOTOS order), as [N, 3, size, size] in [0, 1]; labels -1, no masks."""
    if size < 8:
        raise ValueError(f"data=skimage needs images of >= 8 px; the model's input is {size} px (model.input_size={size})")
    loaded = {name: image for name in PHOTOS if (image := _load(name)) is not None}
    if not loaded:
        raise RuntimeError(f"none of the scikit-image photos {', '.join(PHOTOS)} could be loaded")
    images = torch.tensor(np.stack([_square(im, size) for im in loaded.values()]), dtype=torch.float32)
    return DataSpec(
        name="photos", images=images.permute(0, 3, 1, 2).contiguous(), labels=torch.full((len(loaded),), -1),
        masks=None, class_names=(),
    )
