"""What a data source hands to a run, and the input size it is built at."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from experiments.data.stream import LazyImages
from methods.base import pair


@dataclass
class DataSpec:
    """Images in display space [N, C, H, W] float in [0, 1], with labels and, where known, object masks; a streamed
    source's images and masks are LazyImages (experiments.data.stream), decoded as they are indexed or batched."""

    name: str
    images: Tensor | LazyImages
    labels: Tensor  # [N] int64 (-1 where unknown)
    masks: Tensor | LazyImages | None  # [N, H, W] bool, True on the object
    class_names: tuple[str, ...]
    skipped: tuple[str, ...] = ()  # files the source could not read and left out (each logged as a warning)
    index: Tensor | None = None  # [N] each image's index in the whole (unsharded) source; None: 0..N-1
    workers: int = 0  # DataLoader workers that decode a streamed source in parallel (experiments.data.stream)

    def global_index(self) -> Tensor:
        """Each image's index in the whole source [N] (a shard's images are a part of it)."""
        return self.index if self.index is not None else torch.arange(len(self.images))


def describe(size: Any) -> str:
    """An input size as the error messages name it: '16 px (model.input_size=16)' or '16x40 px (... [16, 40])'."""
    h, w = pair(size)
    return f"{h} px (model.input_size={h})" if h == w else f"{h}x{w} px (model.input_size=[{h}, {w}])"
