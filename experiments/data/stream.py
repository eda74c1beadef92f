"""Images in batches, whether a source holds them in memory (a Tensor) or reads them as they are needed (LazyImages).

A LazyImages stands in for the eager [N, C, H, W] float tensor where the code uses it: len(), .shape, .dtype; an
int gives one decoded image [C, H, W]; a list, array or 1-D tensor of indices a decoded batch [B, C, H, W] (a copy,
as numpy's fancy indexing); a slice, or subset(), another LazyImages of those images, nothing decoded (a view,
as a numpy memmap's slice). Masks stream the same way: items [H, W] bool. `batches` reads a LazyImages through a
DataLoader, in order, `workers` processes decoding in parallel with at most 2 batches each in flight, so memory
does not grow with the number of images.
"""
from __future__ import annotations

import abc
import copy
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader


class LazyImages(abc.ABC):
    """Items of one shape (`item`) and dtype, each read from its source row (`rows`) when indexed."""

    dtype: torch.dtype = torch.float32

    def __init__(self, rows: Tensor, item: tuple[int, ...]) -> None:
        self.rows = rows  # [N] int64: each item's row in the source, what `read` is given
        self.item = tuple(item)

    @abc.abstractmethod
    def read(self, row: int) -> Tensor:
        """Source row `row` decoded: a tensor of shape `item` and dtype `dtype`."""

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> torch.Size:
        """[N, *item], as the eager tensor's."""
        return torch.Size((len(self.rows), *self.item))

    @property
    def ndim(self) -> int:
        return 1 + len(self.item)

    def dim(self) -> int:
        """The number of dimensions, as Tensor.dim()."""
        return self.ndim

    def subset(self, indices: Any) -> "LazyImages":
        """The items at `indices` (a slice, or indices as __getitem__ takes them), still read as they are needed."""
        out = copy.copy(self)
        out.rows = self.rows[indices if isinstance(indices, slice) else index_tensor(indices, len(self))]
        return out

    def __getitem__(self, key: Any) -> "Tensor | LazyImages":
        if isinstance(key, slice):
            return self.subset(key)
        if is_integer(key):
            i = int(key)
            if not -len(self) <= i < len(self):
                raise IndexError(f"index {i} is out of range for {len(self)} images")
            return self.read(int(self.rows[i]))
        rows = self.rows[index_tensor(key, len(self))].tolist()
        return torch.stack([self.read(r) for r in rows]) if rows else torch.empty((0, *self.item), dtype=self.dtype)

    def __iter__(self) -> Iterator[Tensor]:
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} x {list(self.item)} {str(self.dtype).removeprefix('torch.')}, lazy)"


def is_integer(key: Any) -> bool:
    """Whether `key` indexes one item: a Python or numpy integer, or a 0-d integer tensor."""
    if isinstance(key, Tensor):
        return key.dim() == 0 and not key.is_floating_point() and key.dtype != torch.bool
    return isinstance(key, (int, np.integer)) and not isinstance(key, bool)


def index_tensor(key: Any, n: int) -> Tensor:
    """Indices (a list, array or 1-D tensor of integers, or a bool mask of length n) as a 1-D tensor; one line else."""
    idx = key if isinstance(key, Tensor) else torch.as_tensor(np.asarray(key))
    if idx.dim() != 1 or idx.is_floating_point() or (idx.dtype == torch.bool and len(idx) != n):
        raise IndexError(f"a lazy image set takes an int, a slice or 1-D integer indices, not {type(key).__name__} "
                         f"of shape {list(idx.shape)} and dtype {str(idx.dtype).removeprefix('torch.')}")
    return idx if idx.dtype == torch.bool else idx.long()


def batches(images: Tensor | LazyImages, batch_size: int, workers: int = 0) -> Iterator[Tensor]:
    """Consecutive batches [B, ...] of `images`, in order: slices of a Tensor, or a LazyImages decoded by a
    DataLoader with `workers` processes (0: in this one)."""
    if isinstance(images, Tensor):
        yield from images.split(batch_size)
        return
    loader = DataLoader(images, batch_size=batch_size, shuffle=False, num_workers=workers)
    try:
        yield from loader
    except Exception as err:  # a worker's error arrives wrapped in many lines: raise it as the worker raised it
        raise unwrapped(err) from None


def unwrapped(err: Exception) -> Exception:
    """A DataLoader worker's exception as it was raised there (its type and last line), or `err` itself."""
    lines = [line for line in str(err).splitlines() if line.strip()]
    if not lines or not (lines[0].startswith("Caught ") and "DataLoader worker" in lines[0]):
        return err
    message = lines[-1].removeprefix(f"{type(err).__name__}: ")
    try:
        return type(err)(message)
    except Exception:  # noqa: BLE001 - an exception type that takes other arguments: keep the original
        return err
