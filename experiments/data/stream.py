"""Images in batches, whether a source holds them in memory (a Tensor) or reads them as they are needed."""
from __future__ import annotations

from typing import Iterator

from torch import Tensor


def batches(images: Tensor, batch_size: int, workers: int = 0) -> Iterator[Tensor]:
    """Consecutive batches [B, C, H, W] of `images`, in order."""
    yield from images.split(batch_size)
