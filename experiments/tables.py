"""The long-format results table and the pictures and arrays a run writes beside it."""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.utils import make_grid, save_image

COLUMNS = ["run_id", "experiment", "method", "preset", "model", "weights", "data", "layer", "unit", "seed",
           "device", "metric", "value", "status"]


def to_frame(rows: Iterable[dict[str, Any]], context: dict[str, Any]) -> pd.DataFrame:
    """Rows (each at least metric/value) merged with the run's context columns, required columns first."""
    df = pd.DataFrame([{**context, **row} for row in rows])
    for col in COLUMNS:
        if col not in df:
            df[col] = None
    df["status"] = df["status"].fillna("ok")
    mark_unearned(df)
    df["unit"] = df["unit"].astype("Int64")
    extra = [c for c in df.columns if c not in COLUMNS]
    return df[COLUMNS + extra]


def not_a_number(metric: str) -> str:
    """The status of an ok row whose value is not a finite number, with no more specific reason known."""
    return f"degenerate: {metric} is not a number"


def mark_unearned(df: pd.DataFrame) -> pd.DataFrame:
    """Give every ok row whose value is not a finite number the not_a_number status (in place; returns df)."""
    values = pd.to_numeric(df["value"], errors="coerce").astype(float)
    unearned = (df["status"] == "ok") & ~np.isfinite(values)
    df.loc[unearned, "status"] = [not_a_number(m) for m in df.loc[unearned, "metric"]]
    return df


def failed(df: pd.DataFrame) -> pd.DataFrame:
    """The rows whose status says something failed (a target, a metric, a contender, the whole run)."""
    return df[df["status"].astype(str).str.startswith("failed")]


def write_csv_atomic(df: pd.DataFrame, path: str | Path) -> None:
    """Write `df` to `path` through a temp file and a rename, so a reader never sees half a table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            df.to_csv(f, index=False)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


PANEL_GAP = 1  # pixels of white between the channel panels of one picture
PADDING, PANEL_PADDING = 2, 8  # pixels of white between the pictures of a grid, and between paneled pictures


def upscale(images: Tensor, min_side: int = 64) -> Tensor:
    """Nearest-neighbour upsampling so small images (e.g. 7x7 filters) are legible: the shorter side to >= min_side."""
    factor = max(1, math.ceil(min_side / min(images.shape[-2:])))
    return F.interpolate(images, scale_factor=factor, mode="nearest") if factor > 1 else images


def picture(images: Tensor, rgb_channels: Sequence[int] | None = None) -> Tensor:
    """Images [K, C, H, W] as pictures: C = 1 grey and C = 3 RGB as they are; any other C one grey panel per
    channel, side by side from channel 0 on the left, PANEL_GAP white pixels apart: [K, 1, H, C*W + (C-1)*gap].
    rgb_channels=[i, j, k]: instead the RGB composite of channels i, j, k."""
    k, c, h, w = images.shape
    if rgb_channels is not None:
        if len(rgb_channels) != 3 or not all(0 <= i < c for i in rgb_channels):
            raise ValueError(f"rgb_channels={list(rgb_channels)} must be three channels [r, g, b] in 0..{c - 1}")
        return images[:, list(rgb_channels)]
    if c in (1, 3):
        return images
    padded = F.pad(images, (0, PANEL_GAP), value=1.0)
    return padded.permute(0, 2, 1, 3).reshape(k, 1, h, c * (w + PANEL_GAP))[..., : c * (w + PANEL_GAP) - PANEL_GAP]


def save_grid(images: Tensor, path: str | Path, nrow: int, rgb_channels: Sequence[int] | None = None) -> None:
    """Save [K, C, H, W] images in [0, 1] as one PNG grid with `nrow` pictures (`picture`) per row, PADDING apart
    (PANEL_PADDING for pictures made of channel panels, so that each picture stands apart from its panels)."""
    if images.dim() != 4:
        raise ValueError(f"save_grid needs images [K, C, H, W], got shape {tuple(images.shape)}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    shown = picture(upscale(images.detach().float().cpu().clamp(0, 1)), rgb_channels)
    paneled = rgb_channels is None and images.shape[1] not in (1, 3)
    grid = make_grid(shown, nrow=nrow, padding=PANEL_PADDING if paneled else PADDING, pad_value=1.0)
    save_image(grid, str(path))


def safe_name(*parts: Any) -> str:
    """A file name from parts joined by '__' ('' becomes 'output')."""
    return "__".join(str(p) if str(p) else "output" for p in parts).replace("/", "-")


def save_arrays(obj: dict[str, Any], path: str | Path) -> None:
    """Save tensors (and plain values) with torch.save, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def summary_markdown(df: pd.DataFrame) -> str:
    """A compact markdown table: mean value of each metric (rows) per method and layer (columns), over units."""
    ok = df[df["status"] == "ok"]
    if ok.empty:
        return "(no ok rows)"
    table = ok.pivot_table(index="metric", columns=["method", "layer"], values="value", aggfunc="mean")
    return table.round(3).to_markdown()
