"""Data sources: procedurally generated shapes with masks, scikit-image's photos, and image folders."""
from __future__ import annotations

from typing import Any

from experiments.data.spec import DataSpec

SOURCES = ("shapes", "skimage", "image_folder")


def build_data(cfg: Any, size: int) -> DataSpec:
    """Build the data source a `data` config names, at the model's input `size`."""
    if cfg.name == "shapes":
        from experiments.data.shapes import make_shapes
        return make_shapes(n=cfg.n, size=size, seed=cfg.seed)
    if cfg.name == "skimage":
        from experiments.data.photos import load_photos
        return load_photos(size)
    if cfg.name == "image_folder":
        from experiments.data.image_folder import load_image_folder
        return load_image_folder(cfg.root, size, limit=cfg.n, seed=cfg.seed)
    raise ValueError(f"unknown data.name={cfg.name!r}; valid: {', '.join(SOURCES)}")
