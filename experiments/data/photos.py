"""The photographs bundled with scikit-image: each one's centre crop at the model's aspect ratio, then seeded random
crops of them, resized to the model's (h, w): a natural-image set that needs no download (grey for 1-channel models)."""
from __future__ import annotations

import logging

import numpy as np
import skimage.data
import torch
from PIL import Image

from experiments.data.channels import as_channels, check_channels
from experiments.data.count import check_n
from experiments.data.spec import DataSpec, describe
from methods.base import one_line, pair

log = logging.getLogger("vizbench")

# The natural photographs in scikit-image 0.26 that load without pooch: RGB first, then grey ones (copied to RGB).
# Left out: cat (= chelsea), clock (synthetic motion blur), page (a scanned document), cell (one blob on flat grey),
# microaneurysms (a 102 px retina crop), lfw_subset (25 px faces), the synthetic or binary ones (binary_blobs,
# checkerboard, colorwheel, horse, logo, shepp_logan_phantom) and those that need a download (brain, eagle, lily, ...).
PHOTOS = (
    "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
    "stereo_motorcycle", "camera", "coins", "moon", "text", "brick", "grass", "gravel",
)
SCALES = (0.25, 1.0)  # a random crop's side, as a fraction of the photo's largest crop at the model's aspect ratio

Box = tuple[int, int, int, int]  # top, left, height, width


def _load(name: str) -> np.ndarray | None:
    """The photo as an [H, W, 3] uint8 array (grey copied to 3 channels), or None where it does not load offline."""
    try:
        image = getattr(skimage.data, name)()
    except Exception as err:  # noqa: BLE001 - a photo this install cannot give is left out, whatever the reason
        log.warning("data skimage: skipped photo %s (%s)", name, one_line(err))
        return None
    image = np.asarray(image[0] if isinstance(image, tuple) else image)  # stereo_motorcycle: (left, right, disparity)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        log.warning("data skimage: skipped photo %s (not an 8-bit grey or RGB image: %s %s)", name, image.dtype,
                    list(image.shape))
        return None
    return image


def _largest(size: tuple[int, int], shape: tuple[int, ...]) -> tuple[int, int]:
    """The (height, width) of the largest crop of an image of `shape` with the aspect ratio of `size` (h, w)."""
    (h, w), (ih, iw) = size, shape[:2]
    return (ih, min(iw, round(ih * w / h))) if iw * h >= ih * w else (min(ih, round(iw * h / w)), iw)


def _centre_box(size: tuple[int, int], shape: tuple[int, ...]) -> Box:
    """The largest centred crop with the aspect ratio of `size`."""
    ch, cw = _largest(size, shape)
    return (shape[0] - ch) // 2, (shape[1] - cw) // 2, ch, cw


def _random_box(rng: np.random.Generator, size: tuple[int, int], shape: tuple[int, ...]) -> Box:
    """A crop at the aspect ratio of `size`, of random scale (SCALES) and position inside an image of `shape`."""
    ch, cw = _largest(size, shape)
    scale = rng.uniform(*SCALES)
    bh, bw = max(1, round(scale * ch)), max(1, round(scale * cw))
    return int(rng.integers(shape[0] - bh + 1)), int(rng.integers(shape[1] - bw + 1)), bh, bw


def _resized(photo: Image.Image, box: Box, size: tuple[int, int], flip: bool) -> np.ndarray:
    """The `box` of `photo` resized (anti-aliased bilinear) to `size` (h, w), mirrored if `flip`: [h, w, 3] uint8."""
    top, left, bh, bw = box
    crop = np.asarray(photo.crop((left, top, left + bw, top + bh)).resize(size[::-1], Image.Resampling.BILINEAR))
    return crop[:, ::-1] if flip else crop


def _crops(photos: list[np.ndarray], n: int, size: tuple[int, int], seed: int) -> list[tuple[int, Box, bool]]:
    """(photo index, box, flip) of `n` distinct crops: each photo's centre crop (the first n where fewer), then
    seeded random ones, taking the photos in turn."""
    rng = np.random.default_rng(seed)
    crops = [(i, _centre_box(size, p.shape), False) for i, p in enumerate(photos[:n])]
    seen = set(crops)
    while len(crops) < n:
        i = len(crops) % len(photos)
        crop = (i, _random_box(rng, size, photos[i].shape), bool(rng.random() < 0.5))
        if crop not in seen:
            seen.add(crop)
            crops.append(crop)
    return crops


def check_load_photos(n: int = 256) -> None:
    """data.n is a count (crops are drawn: there is no all), checked without loading anything
    (experiments.builders.check_builder)."""
    check_n(n, "skimage")


def load_photos(size: int | tuple[int, int] = 64, channels: int = 3, n: int = 256, seed: int = 0) -> DataSpec:
    """`n` images [n, channels, h, w] in [0, 1] (channels 1: their luminance, experiments.data.channels): the centre
    crop of each photo in PHOTOS that loads (the first n where fewer), then seeded random crops; labels -1, no masks."""
    check_load_photos(n)
    h, w = pair(size)
    if min(h, w) < 8:
        raise ValueError(f"data=skimage needs images of >= 8 px; the model's input is {describe(size)}")
    check_channels("skimage", channels)
    loaded = {name: image for name in PHOTOS if (image := _load(name)) is not None}
    if not loaded:
        raise RuntimeError(f"none of the scikit-image photos {', '.join(PHOTOS)} could be loaded")
    photos = list(loaded.values())
    pictures = [Image.fromarray(p) for p in photos]  # PIL: anti-aliased and ~10x faster than skimage.transform.resize
    images = np.stack([_resized(pictures[i], box, (h, w), flip) for i, box, flip in _crops(photos, n, (h, w), seed)])
    centres = min(n, len(photos))
    log.info("data skimage: %d images at %dx%d (%d photos + %d random crops, seed %d)", n, h, w, centres,
             n - centres, seed)
    rgb = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)
    return DataSpec(
        name="photos", images=as_channels(rgb.contiguous(), "skimage", channels),
        labels=torch.full((n,), -1), masks=None, class_names=(),
        skipped=tuple(name for name in PHOTOS if name not in loaded),
    )
