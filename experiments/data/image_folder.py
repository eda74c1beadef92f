"""Images from any ImageFolder tree (e.g. ImageNet val), fitted to the model's input, with the user's masks or boxes.

Each image is fitted to the model's (h, w) by data.resize (experiments.data.fit: pad keeps the whole image, the
default; crop or stretch). Object masks, where given, are fitted exactly like their image:
- a mask PNG beside its image, `<stem>.mask.png` (root/cats/001.jpg -> root/cats/001.mask.png), in the image's
  own pixels; non-zero (after PIL's convert("L")) is the object. Mask files are never read as images.
- and/or data.boxes=<file.csv> with the header path,top,left,bottom,right (or <file.json>, a list of objects with
  those keys): one box per row in the image's own
  pixels (rows top..bottom-1, columns left..right-1), path relative to data.root (or absolute); several rows
  for one image are their union, and union with its mask PNG.
When any drawn image has a mask (or data.boxes is set), those without one get an empty mask (pointing_game is then
NaN on them) and one warning counts them; otherwise DataSpec.masks is None.

data.n=all takes every image in ImageFolder's sorted order; a count draws that many (seeded) in the draw's order.
Eager (data.stream=false, or auto for up to experiments.data.count.STREAM_ABOVE images) decodes them all up front
and leaves out, with a warning each (DataSpec.skipped), those that fail to decode. Streamed (data.stream=true, or
auto for data.n=all or more images), images and masks are FolderImages and FolderMasks, decoded as they are read
(experiments.data.stream): only each file's header is read up front (PIL.Image.open without load), leaving out
files that are no image (DataSpec.skipped); a file whose header reads but whose pixels fail to decode later (e.g.
truncated) becomes a NaN image, with a warning naming it: its activations are NaN and rank last everywhere. A
streamed mask is read, checked and fitted when its image's mask is indexed; a bad mask file fails then.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
from typing import Any, Iterator

import torch
from PIL import Image
from torch import Tensor
from torchvision import datasets
from torchvision.transforms.functional import pil_to_tensor

from experiments.data.channels import as_channels, check_channels
from experiments.data.count import ALL, check_n, check_stream, check_workers, streams, worker_count
from experiments.data.fit import check_resize, fit_image, fit_mask
from experiments.data.spec import DataSpec
from experiments.data.stream import LazyImages
from methods.base import one_line, pair

log = logging.getLogger(__name__)
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)  # what PIL raises on a bad file
LAYOUT = "expected an ImageFolder tree: root/<class>/<image>"
MASK_SUFFIX = ".mask.png"
BOX_COLUMNS = ("path", "top", "left", "bottom", "right")
Box = tuple[int, int, int, int]  # top, left, bottom, right


def check_root(root: str | None) -> str:
    """`root` if it is a folder; one line naming data.root otherwise."""
    if not root:
        raise ValueError(f"data=image_folder needs data.root=<folder> ({LAYOUT})")
    if not os.path.isdir(root):
        problem = "is a file, not a folder" if os.path.exists(root) else "does not exist"
        raise FileNotFoundError(f"data.root={root!r} {problem} ({LAYOUT})")
    return root


def is_image(path: str) -> bool:
    """Whether ImageFolder should read `path`: an image extension, and not a `<stem>.mask.png` mask."""
    return datasets.folder.has_file_allowed_extension(path, datasets.folder.IMG_EXTENSIONS) and \
        not path.lower().endswith(MASK_SUFFIX)


def open_folder(root: str) -> datasets.ImageFolder:
    """The ImageFolder at `root` (mask files left out); one line if it has no images."""
    try:
        folder = datasets.ImageFolder(root, is_valid_file=is_image, allow_empty=True)
    except FileNotFoundError:  # torchvision's message for a root without class subfolders
        raise FileNotFoundError(f"data.root={root!r} has no class subfolders ({LAYOUT})") from None
    if not len(folder):
        raise FileNotFoundError(f"data.root={root!r} holds no image files in its class subfolders "
                                f"{', '.join(folder.classes[:3])}{'...' if len(folder.classes) > 3 else ''} "
                                f"(extensions read: {', '.join(datasets.folder.IMG_EXTENSIONS)})")
    return folder


def decode_image(path: str) -> Tensor:
    """The image at `path` as RGB [3, H, W] in [0, 1]; raises one of UNREADABLE when it cannot be decoded."""
    with open(path, "rb") as f:
        return pil_to_tensor(Image.open(f).convert("RGB")).float().div_(255)


def read_image(path: str) -> Tensor | None:
    """The image at `path` as RGB [3, H, W] in [0, 1], or None (with one warning naming it) when it cannot be decoded."""
    try:
        return decode_image(path)
    except UNREADABLE as err:
        log.warning("skipped unreadable image %s (%s)", path, one_line(err))
        return None


def image_size(path: str) -> tuple[int, int]:
    """The (height, width) of the image at `path` from its header alone; raises one of UNREADABLE if it has none."""
    with open(path, "rb") as f, Image.open(f) as image:
        return image.height, image.width


def header_problem(path: str) -> str | None:
    """Why the file at `path` is no image its header shows (one line), or None: its pixels are not decoded."""
    try:
        image_size(path)
    except UNREADABLE as err:
        return one_line(err)
    return None


def draw_order(n: int | str, count: int, seed: int) -> list[int]:
    """The order a folder of `count` images is read in: ImageFolder's sorted one for data.n=all, else seeded."""
    if n == ALL:
        return list(range(count))
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()


def read_mask(image_path: str, shape: tuple[int, int]) -> Tensor | None:
    """The `<stem>.mask.png` beside `image_path` as [H, W] bool (non-zero = object), or None where there is none."""
    path = os.path.splitext(image_path)[0] + MASK_SUFFIX
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as f:
            mask = pil_to_tensor(Image.open(f).convert("L"))[0] > 0
    except UNREADABLE as err:
        raise ValueError(f"mask {path} cannot be decoded ({one_line(err)})") from None
    if tuple(mask.shape) != shape:
        raise ValueError(f"mask {path} is {mask.shape[1]}x{mask.shape[0]} px but its image is {shape[1]}x{shape[0]} "
                         f"(width x height): masks are in the image's own pixels")
    return mask


def read_boxes(boxes: str, root: str, folder: datasets.ImageFolder) -> dict[str, list[tuple[str, Box]]]:
    """data.boxes as {image path: [(where in the file, box)]}; one line for a missing file, column, number or image."""
    if not os.path.isfile(boxes):
        raise FileNotFoundError(f"data.boxes={boxes!r} does not exist (a CSV with the header {','.join(BOX_COLUMNS)}, "
                                "or a JSON list of objects with those keys)")
    known = {os.path.normpath(path) for path, _ in folder.samples}
    table: dict[str, list[tuple[str, Box]]] = {}
    for where, row in box_rows(boxes):
        path = os.path.normpath(os.path.join(root, str(row["path"] or "")))
        if path not in known:
            example = os.path.relpath(folder.samples[0][0], root)
            raise ValueError(f"data.boxes={boxes!r} {where}: {row['path']!r} is no image under "
                             f"data.root={root!r} (paths are relative to data.root, e.g. {example!r})")
        values = [row[k] for k in BOX_COLUMNS[1:]]
        try:
            box = tuple(pixel(v) for v in values)
        except (TypeError, ValueError):
            raise ValueError(f"data.boxes={boxes!r} {where}: top,left,bottom,right must be integers (pixels), "
                             f"got {','.join(str(v) for v in values)}") from None
        table.setdefault(path, []).append((where, box))
    return table


def pixel(value: Any) -> int:
    """An integer pixel coordinate from a CSV string or a JSON number (2.0 is 2; 1.5, "1.5" and true raise)."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"{value!r} is not a whole number of pixels")
    return int(value)


def box_rows(boxes: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, row) of each box in a CSV (header path,top,left,bottom,right) or a JSON list of objects with those
    keys; one line where the columns or the JSON are wrong."""
    if boxes.lower().endswith(".json"):
        try:
            with open(boxes) as f:
                rows = json.load(f)
        except (ValueError, UnicodeDecodeError) as err:
            raise ValueError(f"data.boxes={boxes!r} is not valid JSON ({one_line(err)})") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) and set(BOX_COLUMNS) <= set(r) for r in rows):
            raise ValueError(f"data.boxes={boxes!r} must hold a JSON list of objects with the keys {','.join(BOX_COLUMNS)}")
        yield from ((f"entry {i}", row) for i, row in enumerate(rows))
        return
    with open(boxes, newline="") as f:
        rows = csv.DictReader(f)
        if not set(BOX_COLUMNS) <= set(rows.fieldnames or ()):
            raise ValueError(f"data.boxes={boxes!r} needs the columns {','.join(BOX_COLUMNS)} "
                             f"(header found: {','.join(rows.fieldnames or ()) or 'none'})")
        for row in rows:
            yield f"line {rows.line_num}", row


def box_mask(boxes: list[tuple[str, Box]], shape: tuple[int, int], source: str) -> Tensor:
    """The union of `boxes` as an [H, W] bool mask; one line for a box outside the image."""
    mask = torch.zeros(shape, dtype=torch.bool)
    for where, (top, left, bottom, right) in boxes:
        if not (0 <= top < bottom <= shape[0] and 0 <= left < right <= shape[1]):
            raise ValueError(f"data.boxes={source!r} {where}: box top,left,bottom,right={top},{left},{bottom},"
                             f"{right} is not inside its {shape[1]}x{shape[0]} image (width x height; need "
                             f"0 <= top < bottom <= height, 0 <= left < right <= width)")
        mask[top:bottom, left:right] = True
    return mask


def user_mask(path: str, shape: tuple[int, int], boxes: dict[str, list[tuple[str, Box]]],
              source: str | None) -> Tensor | None:
    """The object mask of the image at `path`: its mask PNG united with its boxes; None where it has neither."""
    mask = read_mask(path, shape)
    if (own := boxes.get(os.path.normpath(path))) is not None:
        union = box_mask(own, shape, source or "")
        mask = union if mask is None else mask | union
    return mask


def check_load_image_folder(root: str | None = None, n: int | str = 512, resize: str = "pad", stream: Any = "auto",
                            workers: Any = "auto") -> None:
    """data.root is set, data.n is a count or all, data.resize, data.stream and data.workers are known, checked
    without reading anything (experiments.builders.check_builder; the folder and data.boxes may exist only where
    the jobs run)."""
    if not root:
        check_root(root)
    check_n(n)
    check_resize(resize)
    check_stream(stream)
    check_workers(workers)


def load_image_folder(root: str | None, size: int | tuple[int, int], n: int | str = 512, seed: int = 0,
                      channels: int = 3, resize: str = "pad", boxes: str | None = None, stream: Any = "auto",
                      workers: Any = "auto") -> DataSpec:
    """Up to `n` readable images (all, or a seeded draw) from an ImageFolder at `root`, fitted to `size` by `resize`,
    as a DataSpec in [0, 1] with `channels` channels (1: luminance) and the user's masks, decoded up front or
    streamed by `workers` DataLoader processes (see the module docstring)."""
    check_load_image_folder(root, n, resize, stream, workers)
    check_channels("image_folder", channels)
    folder = open_folder(check_root(root))
    table = read_boxes(boxes, root, folder) if boxes else {}
    read = stream_folder if streams(stream, n, len(folder)) else eager_folder
    return dataclasses.replace(read(folder, root, size, n, seed, channels, resize, table, boxes),
                               workers=worker_count(workers))


def eager_folder(folder: datasets.ImageFolder, root: str, size: Any, n: int | str, seed: int, channels: int,
                 resize: str, table: dict[str, list[tuple[str, Box]]], boxes: str | None) -> DataSpec:
    """The first `n` images of the draw that decode, decoded, fitted and stacked, with their masks."""
    images, labels, masks, skipped = [], [], [], []
    for i in draw_order(n, len(folder), seed):
        if len(images) == n:
            break
        path, label = folder.samples[i]
        image = read_image(path)
        if image is None:
            skipped.append(path)
            continue
        mask = user_mask(path, tuple(image.shape[-2:]), table, boxes)
        images.append(fit_image(image, size, resize))
        labels.append(label)
        masks.append(None if mask is None else fit_mask(mask, size, resize))
    if not images:
        raise ValueError(f"data.root={root!r} holds no readable images: all {len(skipped)} failed to decode "
                         f"(e.g. {skipped[0]})")
    stacked = torch.stack(images)
    return DataSpec(name="image_folder", images=as_channels(stacked, "image_folder", channels),
                    labels=torch.tensor(labels), masks=fill_masks(masks, stacked.shape[-2:], root, bool(boxes)),
                    class_names=tuple(folder.classes), skipped=tuple(skipped))


def stream_folder(folder: datasets.ImageFolder, root: str, size: Any, n: int | str, seed: int, channels: int,
                  resize: str, table: dict[str, list[tuple[str, Box]]], boxes: str | None) -> DataSpec:
    """The first `n` images of the draw whose headers read, as FolderImages (masks: FolderMasks), none decoded."""
    rows, skipped = [], []
    for i in draw_order(n, len(folder), seed):
        if len(rows) == n:
            break
        path = folder.samples[i][0]
        if (why := header_problem(path)) is not None:
            log.warning("skipped unreadable image %s (%s)", path, why)
            skipped.append(path)
            continue
        rows.append(i)
    if not rows:
        raise ValueError(f"data.root={root!r} holds no readable images: all {len(skipped)} have no image header "
                         f"(e.g. {skipped[0]})")
    keep, paths = torch.tensor(rows), [path for path, _ in folder.samples]
    masks = None
    if boxes or any(has_mask(paths[r], table) for r in rows):
        warn_missing(root, sum(not has_mask(paths[r], table) for r in rows), len(rows))
        masks = FolderMasks(keep, paths, size, resize, table, boxes)
    return DataSpec(name="image_folder", images=FolderImages(keep, paths, size, resize, channels),
                    labels=torch.tensor(folder.targets)[keep], masks=masks, class_names=tuple(folder.classes),
                    skipped=tuple(skipped))


class FolderImages(LazyImages):
    """A streamed folder's images [C, H, W]: each file decoded, fitted and given its channels as it is read."""

    def __init__(self, rows: Tensor, paths: list[str], size: Any, resize: str, channels: int) -> None:
        super().__init__(rows, (channels, *pair(size)))
        self.paths, self.size, self.resize, self.channels = paths, size, resize, channels

    def read(self, row: int) -> Tensor:
        """The image in file `row`, fitted as the eager path fits it; NaN (and one warning) if it fails to decode."""
        path = self.paths[row]
        try:
            image = decode_image(path)
        except UNREADABLE as err:
            log.warning("image %s failed to decode (%s): streamed as a NaN image, which ranks last", path,
                        one_line(err))
            return torch.full(self.item, float("nan"))
        return as_channels(fit_image(image, self.size, self.resize), "image_folder", self.channels)


class FolderMasks(LazyImages):
    """A streamed folder's masks [H, W]: each image's mask PNG and boxes read, united and fitted as it is read."""

    dtype = torch.bool

    def __init__(self, rows: Tensor, paths: list[str], size: Any, resize: str,
                 table: dict[str, list[tuple[str, Box]]], boxes: str | None) -> None:
        super().__init__(rows, pair(size))
        self.paths, self.size, self.resize, self.table, self.boxes = paths, size, resize, table, boxes

    def read(self, row: int) -> Tensor:
        """The mask of the image in file `row` (empty where it has none); one line for a bad mask file or box."""
        path = self.paths[row]
        mask = user_mask(path, image_size(path), self.table, self.boxes)
        return torch.zeros(self.item, dtype=torch.bool) if mask is None else fit_mask(mask, self.size, self.resize)


def has_mask(path: str, table: dict[str, list[tuple[str, Box]]]) -> bool:
    """Whether the image at `path` has a mask PNG or a box, without reading either."""
    return os.path.isfile(os.path.splitext(path)[0] + MASK_SUFFIX) or os.path.normpath(path) in table


def warn_missing(root: str, missing: int, total: int) -> None:
    """One warning counting the images without a mask or box (none: no warning)."""
    if missing:
        log.warning("data.root=%r: %d of %d images have no mask (<stem>%s) nor box (data.boxes): their masks are "
                    "empty (pointing_game is NaN on them)", root, missing, total, MASK_SUFFIX)


def fill_masks(masks: list[Tensor | None], shape: tuple[int, int], root: str, boxes: bool) -> Tensor | None:
    """The masks as [N, H, W], empty where an image has none (one warning counting them); None if none has one."""
    missing = sum(m is None for m in masks)
    if missing == len(masks) and not boxes:
        return None
    warn_missing(root, missing, len(masks))
    empty = torch.zeros(shape, dtype=torch.bool)
    return torch.stack([empty if m is None else m for m in masks])
