"""The shapes data as PNG files in an ImageFolder tree (root/<class>/<i>.png), for streamed benchmarks and tests."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

from experiments.data.shapes import CLASSES, make_shapes
from methods.base import pair

CHUNK = 1024  # images drawn at a time, so writing many never holds them all
DONE = "COMPLETE"  # written last: a folder without it is unfinished


def cache_root() -> Path:
    """Where shapes folders are cached between runs: vizbench_shapes_folders in the system's temp dir."""
    return Path(tempfile.gettempdir()) / "vizbench_shapes_folders"


def shapes_folder(n: int, size: Any, seed: int = 0, root: Path | None = None) -> Path:
    """A folder of `n` seeded shapes images at `size` (px, or (h, w)) as PNG files, written once under `root`
    (default: cache_root()) and reused while complete."""
    h, w = pair(size)
    folder = (root or cache_root()) / f"shapes_{n}_{h}x{w}_seed{seed}"
    if (folder / DONE).exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", dir=folder.parent))
    for name in CLASSES:
        (partial / name).mkdir()
    for start in range(0, n, CHUNK):
        data = make_shapes(n=min(CHUNK, n - start), size=(h, w), seed=seed + start)
        pixels = data.images.mul(255).round_().byte().permute(0, 2, 3, 1).numpy()
        for i, (image, label) in enumerate(zip(pixels, data.labels.tolist())):
            Image.fromarray(image).save(partial / CLASSES[label] / f"{start + i:07d}.png")
    (partial / DONE).touch()
    try:
        os.rename(partial, folder)
    except OSError:  # another process finished the same folder first: keep its copy
        shutil.rmtree(partial, ignore_errors=True)
        if not (folder / DONE).exists():
            raise FileExistsError(f"{folder} exists but is no complete shapes folder (no {DONE} file): "
                                  "remove it") from None
    return folder
