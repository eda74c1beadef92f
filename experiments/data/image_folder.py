"""Images from any ImageFolder tree (e.g. ImageNet val), resized and centre-cropped to the model's input."""
from __future__ import annotations

import logging
import os

import torch
from PIL import Image
from torch import Tensor
from torchvision import datasets, transforms

from experiments.data.spec import DataSpec
from methods.base import one_line

log = logging.getLogger(__name__)
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)  # what PIL raises on a bad file
LAYOUT = "expected an ImageFolder tree: root/<class>/<image>"


def check_root(root: str | None) -> str:
    """`root` if it is a folder; one line naming data.root otherwise."""
    if not root:
        raise ValueError(f"data=image_folder needs data.root=<folder> ({LAYOUT})")
    if not os.path.isdir(root):
        problem = "is a file, not a folder" if os.path.exists(root) else "does not exist"
        raise FileNotFoundError(f"data.root={root!r} {problem} ({LAYOUT})")
    return root


def open_folder(root: str, size: int) -> datasets.ImageFolder:
    """The ImageFolder at `root`, its images resized and centre-cropped to `size`; one line if it has no images."""
    tf = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor()])
    try:
        folder = datasets.ImageFolder(root, transform=tf, allow_empty=True)
    except FileNotFoundError:  # torchvision's message for a root without class subfolders
        raise FileNotFoundError(f"data.root={root!r} has no class subfolders ({LAYOUT})") from None
    if not len(folder):
        raise FileNotFoundError(f"data.root={root!r} holds no image files in its class subfolders "
                                f"{', '.join(folder.classes[:3])}{'...' if len(folder.classes) > 3 else ''} "
                                f"(extensions read: {', '.join(datasets.folder.IMG_EXTENSIONS)})")
    return folder


def read_image(folder: datasets.ImageFolder, index: int) -> tuple[Tensor, int] | None:
    """Image `index` and its label, or None (with one warning naming the file) when it cannot be decoded."""
    try:
        return folder[index]
    except UNREADABLE as err:
        log.warning("skipped unreadable image %s (%s)", folder.samples[index][0], one_line(err))
        return None


def check_load_image_folder(root: str | None = None, n: int = 512) -> None:
    """data.root is set and data.n is positive, checked without reading anything (experiments.builders.check_builder;
    the folder itself may exist only where the jobs run)."""
    if not root:
        check_root(root)
    if n < 1:
        raise ValueError(f"data.n={n} must be >= 1")


def load_image_folder(root: str | None, size: int, n: int = 512, seed: int = 0) -> DataSpec:
    """Up to `n` readable images drawn (seeded) from an ImageFolder at `root`, as a DataSpec in [0, 1]."""
    if n < 1:
        raise ValueError(f"data.n={n} must be >= 1")
    folder = open_folder(check_root(root), size)
    pairs, skipped = [], []
    for i in torch.randperm(len(folder), generator=torch.Generator().manual_seed(seed)).tolist():
        if len(pairs) == n:
            break
        pair = read_image(folder, i)
        if pair is None:
            skipped.append(folder.samples[i][0])
        else:
            pairs.append(pair)
    if not pairs:
        raise ValueError(f"data.root={root!r} holds no readable images: all {len(skipped)} failed to decode "
                         f"(e.g. {skipped[0]})")
    return DataSpec(name="image_folder", images=torch.stack([p[0] for p in pairs]),
                    labels=torch.tensor([p[1] for p in pairs]), masks=None, class_names=tuple(folder.classes),
                    skipped=tuple(skipped))
