"""Arrays as data, any channel count: data.path= one .npy, .npz or .pt file, or a folder of them.

Images are channels first: [C, H, W] (one image) or [N, C, H, W] (a batch), C the model's input channels.
- .npy: images only.
- .npz: key `images`, optional `labels` ([N] integers) and `masks` ([N, H, W], non-zero = object); a file
  holding one array under another name (np.savez(f, x)) is images only.
- .pt (torch.save): a tensor of images, or a dict with those keys.
- a folder: every .npy, .npz and .pt file directly in it, in name order, each read as above and concatenated;
  images of a file without labels get -1, and where some files have masks the others' images get empty masks
  (one warning counts them).
Values: float in [0, 1] as they are, uint8 divided by 255; anything else needs data.value_range=[lo, hi], which
(for any dtype, when given) maps lo..hi linearly to 0..1, values outside it being an error. Images at another
(H, W) than the model's are resized to it (bilinear, antialiased; masks by nearest neighbour), stretching them:
give the model's aspect ratio. data.n caps the count with a seeded draw, kept in file order (data.n=all: every
image). Nothing is unpickled: np.load(allow_pickle=False), torch.load(weights_only=True).
Streamed (data.stream=true, or auto for data.n=all or more than experiments.data.count.STREAM_ABOVE images), the
images and masks are ArrayImages and ArrayMasks (experiments.data.stream): .npy files are memory-mapped
(np.load(mmap_mode="r")), .pt files too (torch.load(mmap=True)), and each image is converted, checked and resized
as it is read, so a value outside [0, 1] or data.value_range fails when its image is read, not up front. A .npz
cannot be memory-mapped (its members are zip entries, maybe compressed): it is read into memory whole, with a
warning; save large sets as .npy or .pt to stream them. Labels are read up front (one integer per image).
"""
from __future__ import annotations

import bisect
import dataclasses
import logging
import os
import pickle
import re
import zipfile
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from experiments.data.count import ALL, check_n, check_stream, check_workers, streams, worker_count
from experiments.data.fit import resize_images, resize_masks
from experiments.data.spec import DataSpec
from experiments.data.stream import LazyImages
from methods.base import invalid_choice, one_line, pair

log = logging.getLogger(__name__)
KEYS = ("images", "labels", "masks")
SUFFIXES = (".npy", ".npz", ".pt")
Part = dict[str, Any]  # KEYS -> an np.ndarray or Tensor (labels and masks optional), read from one file


def problem(err: BaseException) -> str:
    """Why a file did not load, as the end of a sentence naming it: pickled objects are refused, not unpickled."""
    text = str(err)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found or "allow_pickle" in text or "Python objects" in text:
        return (f"is refused: it holds pickled Python objects{f' ({found.group(1)})' if found else ''}, and data files "
                f"are never unpickled (save plain arrays with np.save/np.savez, or tensors with torch.save)")
    if operand := re.search(r"Unsupported operand \d+", text):
        return (f"cannot be read: corrupt, or not written by np.save/np.savez/torch.save (the weights-only unpickler "
                f"stops at {operand.group(0)})")
    return f"cannot be read ({one_line(err)})"


def _keys(found: dict[str, Any], source: str) -> Part:
    """A dict of arrays as a Part: `images` (or the one array there is) plus optional labels and masks."""
    if len(found) == 1 and not set(found) & set(KEYS):  # e.g. np.savez(f, x), which names its one array arr_0
        found = {"images": next(iter(found.values()))}
    for key, value in found.items():
        if key not in KEYS:
            raise invalid_choice(f"key in data.path={source!r}:", key, KEYS)
        if not isinstance(value, (np.ndarray, Tensor)):
            raise ValueError(f"data.path={source!r}: {key!r} is a {type(value).__name__}, not an array or tensor")
    if "images" not in found:
        raise ValueError(f"data.path={source!r} has no 'images' (keys found: {', '.join(found) or 'none'})")
    return dict(found)


def read_file(path: str, mmap: bool = False) -> Part:
    """One .npy, .npz or .pt file as a Part (.npy memory-mapped, .pt too with `mmap` unless saved in the legacy
    format); one line for a file that cannot be read or holds pickled objects."""
    try:
        if path.endswith(".npy"):
            return {"images": np.load(path, mmap_mode="r", allow_pickle=False)}
        if path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as npz:
                found = {key: npz[key] for key in npz.files}
        else:
            found = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except (ValueError, OSError, RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise ValueError(f"data.path={path!r} {problem(err)}") from None
    if isinstance(found, Tensor):
        return {"images": found}
    if isinstance(found, dict):
        return _keys(found, path)
    raise ValueError(f"data.path={path!r} holds a {type(found).__name__}; a .pt file holds a tensor of images or a "
                     f"dict with keys {', '.join(KEYS)}")


def list_files(path: str | None) -> list[str]:
    """The array files data.path names: itself, or the .npy/.npz/.pt files in the folder; one line if none."""
    if not path:
        raise ValueError("data=arrays needs data.path=<a .npy, .npz or .pt file, or a folder of them>")
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(SUFFIXES))
        if not files:
            raise FileNotFoundError(f"data.path={path!r} is a folder without {', '.join(SUFFIXES)} files")
        return files
    if not os.path.exists(path):
        raise FileNotFoundError(f"data.path={path!r} does not exist")
    if not path.endswith(SUFFIXES):
        raise ValueError(f"data.path={path!r} is not a {', '.join(SUFFIXES)} file, nor a folder of them")
    return [path]


def as_batch(part: Part, source: str) -> Part:
    """A Part with images [N, C, H, W], labels [N] and masks [N, H, W] (where given); one line for other shapes."""
    images = part["images"]
    single = images.ndim == 3
    if images.ndim not in (3, 4):
        raise ValueError(f"data.path={source!r}: images are [C, H, W] or [N, C, H, W], got shape {list(images.shape)}")
    n, (h, w) = 1 if single else images.shape[0], images.shape[-2:]
    out = {"images": images[None] if single else images}
    if (labels := part.get("labels")) is not None:
        out["labels"] = labels.reshape(-1) if single else labels
        if tuple(out["labels"].shape) != (n,):
            raise ValueError(f"data.path={source!r}: labels of shape {list(labels.shape)} for {n} images; need [{n}]")
    if (masks := part.get("masks")) is not None:
        out["masks"] = masks[None] if single and masks.ndim == 2 else masks
        if tuple(out["masks"].shape) != (n, h, w):
            raise ValueError(f"data.path={source!r}: masks of shape {list(masks.shape)} for images of shape "
                             f"{list(images.shape)}; need [{n}, {h}, {w}]")
    return out


def tensor(array: Any, source: str, what: str) -> Tensor:
    """An array or tensor of numbers as a Tensor (wide unsigned ints as int64); one line for non-numbers."""
    if isinstance(array, Tensor):
        return array.to(torch.int64) if array.dtype in (torch.uint16, torch.uint32, torch.uint64) else array
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"data.path={source!r}: {what} are {array.dtype}, not numbers")
    if array.dtype.kind == "u" and array.dtype != np.uint8:
        array = array.astype(np.int64)
    return torch.from_numpy(np.ascontiguousarray(array))


def integers(labels: Tensor, source: str) -> Tensor:
    """Labels as int64; one line for labels that are not integers."""
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"data.path={source!r}: labels are {str(labels.dtype).removeprefix('torch.')}, not integers")
    return labels.long()


def to_unit(array: Any, value_range: Sequence[float] | None, source: str) -> Tensor:
    """Images as float32 in [0, 1]: by data.value_range, uint8 / 255, or float already there; one line otherwise."""
    dtype, images = str(array.dtype).removeprefix("torch."), tensor(array, source, "images")
    if images.dtype == torch.bool or images.is_complex():
        raise ValueError(f"data.path={source!r}: images are {dtype}, not numbers")
    x = images.double()
    if not torch.isfinite(x).all():
        raise ValueError(f"data.path={source!r}: images hold NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if value_range is not None:
        low, high = check_value_range(value_range)
        if lo < low or hi > high:
            raise ValueError(f"data.path={source!r}: values in [{lo:g}, {hi:g}] fall outside data.value_range="
                             f"[{low:g}, {high:g}]")
        return ((x - low) / (high - low)).float()
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    if images.is_floating_point() and 0 <= lo and hi <= 1:
        return images.float()
    raise ValueError(f"data.path={source!r}: {dtype} values in [{lo:g}, {hi:g}]; "
                     f"images are float in [0, 1] or uint8: give data.value_range=[lo, hi] to map lo..hi to 0..1")


def check_value_range(value_range: Sequence[float]) -> tuple[float, float]:
    """data.value_range as (lo, hi) with lo < hi; one line otherwise."""
    if len(value_range) != 2 or not float(value_range[0]) < float(value_range[1]):
        raise ValueError(f"data.value_range={list(value_range)} must be [lo, hi] with lo < hi")
    return float(value_range[0]), float(value_range[1])


def check_load_arrays(path: str | None = None, n: int | str = 512, value_range: Sequence[float] | None = None,
                      stream: Any = "auto", workers: Any = "auto") -> None:
    """data.path is set, data.n a count or all, data.value_range a range, data.stream and data.workers known,
    checked without reading anything (experiments.builders.check_builder; the files may exist only where the
    jobs run)."""
    if not path:
        list_files(path)
    check_n(n)
    if value_range is not None:
        check_value_range(value_range)
    check_stream(stream)
    check_workers(workers)


def load_arrays(path: str | None, size: int | tuple[int, int], channels: int = 3, n: int | str = 512, seed: int = 0,
                value_range: Sequence[float] | None = None, stream: Any = "auto", workers: Any = "auto") -> DataSpec:
    """Up to `n` images (all, or a seeded draw, in file order) from the arrays at `path` (see the module docstring),
    with `channels` channels, at `size`, in [0, 1]; their labels (-1 where none) and masks (where any), read up
    front or streamed by `workers` DataLoader processes."""
    check_load_arrays(path, n, value_range, stream, workers)
    files = list_files(path)
    parts = [as_batch(read_file(f, mmap=True), f) for f in files]
    check_part_channels(files, parts, channels)
    counts = [len(p["images"]) for p in parts]
    keep = torch.arange(sum(counts))
    if n != ALL and len(keep) > n:
        keep = torch.randperm(len(keep), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    if streams(stream, n, sum(counts)):
        streamed = stream_arrays(ArrayFiles(files, parts), keep, size, value_range, path)
        return dataclasses.replace(streamed, workers=worker_count(workers))
    images, labels, masks = [], [], []
    for f, part, start, count in zip(files, parts, np.cumsum([0, *counts]), counts):
        idx = (keep[(keep >= start) & (keep < start + count)] - start).numpy()
        if not len(idx):
            continue
        images.append(resize_images(to_unit(part["images"][idx], value_range, f), size))
        labels.append(integers(tensor(part["labels"][idx], f, "labels"), f) if "labels" in part
                      else torch.full((len(idx),), -1))
        masks.append(resize_masks(tensor(part["masks"][idx], f, "masks") != 0, size) if "masks" in part else None)
    return DataSpec(name="arrays", images=torch.cat(images), labels=torch.cat(labels),
                    masks=join_masks(masks, [len(i) for i in images], pair(size), path), class_names=(),
                    workers=worker_count(workers))


def check_part_channels(files: list[str], parts: list[Part], channels: int) -> None:
    """One line for a file whose images have another channel count than the model's."""
    for f, part in zip(files, parts):
        if (c := part["images"].shape[1]) != channels:
            hint = (" (channels-last? arrays are [N, C, H, W]: transpose them)" if part["images"].shape[-1] == channels
                    else "")
            raise ValueError(f"data.path={f!r} holds {c}-channel images (shape {list(part['images'].shape)}); the "
                             f"model takes {channels} channels{hint}")


def join_masks(masks: list[Tensor | None], counts: list[int], size: tuple[int, int], path: str) -> Tensor | None:
    """The files' masks as one [N, H, W], empty for files without (one warning counting them); None if none has any."""
    if all(m is None for m in masks):
        return None
    if missing := sum(c for m, c in zip(masks, counts) if m is None):
        warn_missing(path, missing, sum(counts))
    return torch.cat([torch.zeros(c, *size, dtype=torch.bool) if m is None else m for m, c in zip(masks, counts)])


def warn_missing(path: str, missing: int, total: int) -> None:
    """One warning counting the images that come from files without masks."""
    log.warning("data.path=%r: %d of %d images come from files without masks: their masks are empty "
                "(pointing_game is NaN on them)", path, missing, total)


class ArrayFiles:
    """A streamed data=arrays' files, opened once per process (.npy and .pt memory-mapped, .npz read whole)."""

    def __init__(self, files: list[str], parts: list[Part] | None = None) -> None:
        self.files = files
        self._parts = parts
        self.starts = np.cumsum([0, *(len(p["images"]) for p in self.parts())]).tolist()

    def parts(self) -> list[Part]:
        """Each file's Part, opened on first use in this process."""
        if self._parts is None:
            self._parts = [as_batch(read_file(f, mmap=True), f) for f in self.files]
        return self._parts

    def locate(self, row: int) -> tuple[str, Part, int]:
        """The file holding image `row` of the whole, its Part, and the image's index in it."""
        i = bisect.bisect_right(self.starts, row) - 1
        return self.files[i], self.parts()[i], row - self.starts[i]

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the opened arrays (a memory map would be copied whole): a spawned worker reopens them."""
        return {**self.__dict__, "_parts": None}


def copied(array: Any, i: int) -> Any:
    """Item i of an array or tensor as a batch of one, copied out of any memory map (which is read-only)."""
    return array[i : i + 1].clone() if isinstance(array, Tensor) else np.array(array[i : i + 1])


class ArrayImages(LazyImages):
    """A streamed data=arrays' images [C, H, W]: each converted to [0, 1], checked and resized as it is read."""

    def __init__(self, rows: Tensor, files: ArrayFiles, size: Any, value_range: Sequence[float] | None) -> None:
        super().__init__(rows, (files.parts()[0]["images"].shape[1], *pair(size)))
        self.files, self.size, self.value_range = files, size, value_range

    def read(self, row: int) -> Tensor:
        """Image `row` of the whole, as the eager path converts it; one line naming its file where it is bad."""
        f, part, i = self.files.locate(row)
        return resize_images(to_unit(copied(part["images"], i), self.value_range, f), self.size)[0]


class ArrayMasks(LazyImages):
    """A streamed data=arrays' masks [H, W] (non-zero = object; empty for files without masks), resized as read."""

    dtype = torch.bool

    def __init__(self, rows: Tensor, files: ArrayFiles, size: Any) -> None:
        super().__init__(rows, pair(size))
        self.files, self.size = files, size

    def read(self, row: int) -> Tensor:
        """The mask of image `row` of the whole."""
        f, part, i = self.files.locate(row)
        if "masks" not in part:
            return torch.zeros(self.item, dtype=torch.bool)
        return resize_masks(tensor(copied(part["masks"], i), f, "masks") != 0, self.size)[0]


def stream_arrays(opened: ArrayFiles, keep: Tensor, size: Any, value_range: Sequence[float] | None,
                  path: str) -> DataSpec:
    """Images `keep` of the whole as ArrayImages (masks: ArrayMasks where any file has masks), labels read now."""
    for f in opened.files:
        if f.endswith(".npz"):
            log.warning("data.path=%r: a .npz cannot be memory-mapped, so its arrays are read into memory whole "
                        "(save them with np.save as .npy, or torch.save as .pt, to stream them)", f)
    labels = torch.cat([integers(tensor(p["labels"], f, "labels"), f) if "labels" in p else
                        torch.full((len(p["images"]),), -1) for f, p in zip(opened.files, opened.parts())])[keep]
    masks = None
    if with_masks := [i for i, p in enumerate(opened.parts()) if "masks" in p]:
        starts = torch.tensor(opened.starts)
        file_of = torch.bucketize(keep, starts[1:], right=True)
        if missing := int((~torch.isin(file_of, torch.tensor(with_masks))).sum()):
            warn_missing(path, missing, len(keep))
        masks = ArrayMasks(keep, opened, size)
    return DataSpec(name="arrays", images=ArrayImages(keep, opened, size, value_range), labels=labels, masks=masks,
                    class_names=())
