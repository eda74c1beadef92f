"""What a data source hands to a run."""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class DataSpec:
    """Images in display space [N, 3, H, W] float in [0, 1], with labels and, where known, object masks."""

    name: str
    images: Tensor
    labels: Tensor  # [N] int64 (-1 where unknown)
    masks: Tensor | None  # [N, H, W] bool, True on the object
    class_names: tuple[str, ...]
    skipped: tuple[str, ...] = ()  # files the source could not read and left out (each logged as a warning)
