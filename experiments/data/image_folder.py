"""Images from any ImageFolder tree (e.g. ImageNet val), resized and centre-cropped to the model's input."""
from __future__ import annotations

import os

import torch
from torchvision import datasets, transforms

from experiments.data.spec import DataSpec


def load_image_folder(root: str | None, size: int, n: int = 512, seed: int = 0) -> DataSpec:
    """Up to `n` images drawn (seeded) from an ImageFolder at `root`, as a DataSpec in [0, 1]."""
    if not root or not os.path.isdir(root):
        raise FileNotFoundError(f"data.root={root!r} is not a folder (expected an ImageFolder tree: root/<class>/<image>)")
    tf = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor()])
    folder = datasets.ImageFolder(root, transform=tf)
    order = torch.randperm(len(folder), generator=torch.Generator().manual_seed(seed))[:n]
    pairs = [folder[int(i)] for i in order]
    images = torch.stack([p[0] for p in pairs])
    labels = torch.tensor([p[1] for p in pairs])
    return DataSpec(name="image_folder", images=images, labels=labels, masks=None, class_names=tuple(folder.classes))
