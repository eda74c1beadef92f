"""Random transforms drawn once per step for the whole batch, composed into ONE affine warp (affine_grid + grid_sample)."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from methods.base import invalid_choice, pair


@dataclass(frozen=True)
class TransformSpec:
    """Lucid-style robustness transforms, in the order pad -> jitter[0] -> scale -> rotate -> jitter[1].

    `box` replaces padding with MACO's random crops: the crop side as a fraction of the image, going linearly
    from box[0] to box[1] over the steps, centre ~ N(0.5, 0.15). `noise` adds Gaussian pixel noise of that std.
    """

    pad: int = 0
    pad_value: float = 0.5
    jitter: tuple[int, ...] = ()
    scales: tuple[float, ...] = (1.0,)
    angles: tuple[float, ...] = (0.0,)  # degrees
    box: tuple[float, float] | None = None
    noise: float = 0.0


# Lucid's `standard_transforms` (lucid/optvis/transform.py): angles -10..10 plus five extra zeros, as Lucid has.
STANDARD = TransformSpec(pad=12, jitter=(8, 4), scales=tuple(1 + (i - 5) / 50 for i in range(11)),
                         angles=tuple(float(a) for a in range(-10, 11)) + (0.0,) * 5)
PRESETS: dict[str, TransformSpec | None] = {"standard": STANDARD, "none": None}


def resolve(spec: str | Mapping[str, Any] | TransformSpec | None) -> TransformSpec | None:
    """A TransformSpec from a preset name, a mapping of its fields (e.g. from YAML), a spec, or None (no transforms)."""
    if spec is None or isinstance(spec, TransformSpec):
        return spec
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise invalid_choice("transforms", spec, PRESETS, " (or a mapping of TransformSpec fields)")
        return PRESETS[spec]
    valid = {f.name for f in fields(TransformSpec)}
    bad = [k for k in spec if k not in valid]
    if bad:
        raise invalid_choice("transform field", bad[0], sorted(valid))
    return TransformSpec(**{k: tuple(v) if isinstance(v, Sequence) and not isinstance(v, str) else v for k, v in spec.items()})


def _choice(values: tuple[float, ...], steps: int, gen: torch.Generator) -> Tensor:
    """`steps` uniform draws from `values`."""
    return torch.tensor(values, dtype=torch.float64)[torch.randint(len(values), (steps,), generator=gen)]


def _shift(jitter: int, steps: int, gen: torch.Generator) -> Tensor:
    """Lucid's random crop of side - (jitter - 1) as a centred pixel shift [steps, 2]."""
    return torch.randint(jitter, (steps, 2), generator=gen).double() - (jitter - 1) / 2


def draw(spec: TransformSpec, steps: int, size: int | tuple[int, int], gen: torch.Generator) -> Tensor:
    """Affine matrices [steps, 2, 3] (output -> source, normalized coordinates) for every step, drawn up front.

    Shifts, scales and rotations are in pixels, so they are the same in both directions of a non-square image.
    """
    jit = list(spec.jitter) + [1] * (2 - len(spec.jitter))
    if len(spec.jitter) > 2:
        raise ValueError(f"transforms.jitter={spec.jitter} has more than two entries (before and after scale/rotate)")
    h, w = pair(size)
    xy = torch.tensor([w, h], dtype=torch.float64)  # affine_grid's coordinates are (x, y)
    t1, t2 = _shift(jit[0], steps, gen), _shift(jit[1], steps, gen)
    scale = _choice(tuple(spec.scales), steps, gen)
    angle = _choice(tuple(spec.angles), steps, gen) * math.pi / 180
    if spec.box is None:
        view = (xy + float(2 * spec.pad - (jit[0] - 1) - (jit[1] - 1))).expand(steps, 2)
        centre = torch.zeros(steps, 2, dtype=torch.float64)
    else:
        mean_box = torch.linspace(spec.box[0], spec.box[1], steps, dtype=torch.float64)
        view = (mean_box + 0.05 * torch.randn(steps, generator=gen, dtype=torch.float64)).clamp(0.05, 1.0)[:, None] * xy
        centre = 0.15 * torch.randn(steps, 2, generator=gen, dtype=torch.float64) * xy
    cos, sin = angle.cos(), angle.sin()
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # [steps, 2, 2]
    # in pixels: source = rot @ (view / size * out + t2) / scale + t1 + centre, about the centre; then normalized
    # by the half sides (x by w / 2, y by h / 2): lin_ij * side_j / side_i, exactly lin on a square
    lin = rot * (view / xy / scale.view(-1, 1)).view(-1, 1, 2) * (xy.view(1, 2) / xy.view(2, 1))
    shift = (rot @ t2.unsqueeze(-1)).squeeze(-1) / scale.view(-1, 1) + t1 + centre
    return torch.cat([lin, (2 / xy * shift).unsqueeze(-1)], -1).float()


def warp(images: Tensor, theta: Tensor, out_size: int | tuple[int, int], fill: float) -> Tensor:
    """Resample images [B, C, H, W] through one affine map theta [2, 3] to out_size, filling outside with `fill`."""
    b, c = images.shape[:2]
    grid = F.affine_grid(theta[None], [1, c, *pair(out_size, "out_size")], align_corners=False).expand(b, -1, -1, -1)
    return F.grid_sample(images - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill
