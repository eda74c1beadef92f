"""Objectives: per-image scores [B] from the target layer's activations and each image's unit index.

An Objective wraps a callable (acts [B, ...], units [B]) -> [B]; objectives compose with + - * and scalars.
Each image's score depends only on that image (diversity: on the images of the same unit), so summing the
scores of a batch gives every image the gradient of its own objective.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from methods.base import Target, read_out

Score = Callable[[Tensor, Tensor], Tensor]


class Objective:
    """A named per-image score (acts, units) -> [B] that composes with +, -, * and scalars."""

    def __init__(self, fn: Score, name: str) -> None:
        self.fn, self.name = fn, name

    def __call__(self, acts: Tensor, units: Tensor) -> Tensor:
        return self.fn(acts, units)

    def __add__(self, other: Objective | float) -> Objective:
        other = as_objective(other)
        return Objective(partial(_sum, self, other), f"{self.name} + {other.name}")

    def __radd__(self, other: float) -> Objective:
        return self + other

    def __mul__(self, c: float) -> Objective:
        if not isinstance(c, (int, float)):
            raise TypeError(f"an Objective can only be multiplied by a number, not {type(c).__name__}")
        return Objective(partial(_scale, self, float(c)), f"{c} * ({self.name})")

    def __rmul__(self, c: float) -> Objective:
        return self * c

    def __neg__(self) -> Objective:
        return self * -1.0

    def __sub__(self, other: Objective | float) -> Objective:
        return self + (-1.0) * as_objective(other)

    def __rsub__(self, other: float) -> Objective:
        return as_objective(other) - self

    def __repr__(self) -> str:
        return f"Objective({self.name})"


def _sum(a: Objective, b: Objective, acts: Tensor, units: Tensor) -> Tensor:
    """a + b."""
    return a(acts, units) + b(acts, units)


def _scale(a: Objective, c: float, acts: Tensor, units: Tensor) -> Tensor:
    """c * a."""
    return c * a(acts, units)


def _constant(c: float, acts: Tensor, units: Tensor) -> Tensor:
    """The same value c for every image."""
    return acts.new_full((acts.shape[0],), c)


def as_objective(x: Objective | float) -> Objective:
    """An Objective as is, a number as a constant objective."""
    if isinstance(x, Objective):
        return x
    if isinstance(x, (int, float)):
        return Objective(partial(_constant, float(x)), repr(x))
    raise TypeError(f"cannot combine an Objective with {type(x).__name__}")


def _read(target: Target, acts: Tensor, units: Tensor) -> Tensor:
    """methods.base.read_out at each image's own unit."""
    return read_out(acts, target, units=units)


def channel() -> Objective:
    """Spatial mean of the unit's channel."""
    return Objective(partial(_read, Target("", (0,), "channel")), "channel")


def neuron(position: tuple[int, int] | None = None) -> Objective:
    """The unit's channel at one position (row, col) of the map; None = centre."""
    return Objective(partial(_read, Target("", (0,), "neuron", position)), f"neuron{position or ''}")


def layer() -> Objective:
    """DeepDream: mean of squares of the whole layer (the unit index is ignored)."""
    return Objective(partial(_read, Target("", (0,), "layer")), "layer")


def class_logit() -> Objective:
    """The unit's logit (target layer '' = the model's output)."""
    return Objective(partial(_read, Target("", (0,), "class")), "class")


def _direction(vec: Tensor, cossim_pow: float, acts: Tensor, units: Tensor) -> Tensor:
    """Mean over positions of <acts, vec> * max(0.1, cos)^cossim_pow (Lucid's direction_cossim)."""
    a = acts.flatten(2) if acts.dim() > 2 else acts.unsqueeze(-1)  # [B, C, P]
    v = vec.to(a.dtype).view(1, -1, 1)
    dot = (a * v).sum(1)
    if cossim_pow:
        cos = dot / (a.norm(dim=1) * v.norm() + 1e-8)
        dot = dot * cos.clamp(min=0.1).pow(cossim_pow)
    return dot.mean(1)


def direction(vec: Sequence[float] | Tensor, cossim_pow: float = 0.0, device: torch.device | str | None = None) -> Objective:
    """A direction in channel space, optionally weighted by cosine similarity to the power `cossim_pow`."""
    v = torch.as_tensor(vec, dtype=torch.float32, device=device)
    return Objective(partial(_direction, v, float(cossim_pow)), f"direction(cossim_pow={cossim_pow})")


def _diversity(k: int, acts: Tensor, units: Tensor) -> Tensor:
    """Minus the summed cosine similarity of each image's Gram matrix to those of the other k - 1 images of its unit."""
    a = acts.flatten(2) if acts.dim() > 2 else acts.unsqueeze(-1)  # [B, C, P]
    gram = F.normalize((a @ a.transpose(1, 2)).flatten(1), dim=1)  # [B, C*C]
    g = gram.view(-1, k, gram.shape[1])  # [U, k, C*C]
    sim = g @ g.transpose(1, 2)  # [U, k, k]
    return -(sim.sum(2) - sim.diagonal(dim1=1, dim2=2)).flatten()


def diversity(images_per_unit: int) -> Objective:
    """Olah et al. 2017: penalize Gram-matrix similarity between the images of one unit (consecutive groups of k)."""
    return Objective(partial(_diversity, int(images_per_unit)), "diversity")


def from_target(target: Target, cossim_pow: float = 0.0, device: torch.device | str | None = None) -> Objective:
    """The objective a Target names (its kind and, for neuron/direction, position or vector)."""
    if target.kind == "channel":
        return channel()
    if target.kind == "neuron":
        return neuron(target.position)
    if target.kind == "layer":
        return layer()
    if target.kind == "class":
        return class_logit()
    if target.direction is None:
        raise ValueError("target.kind='direction' needs target.direction (a vector in channel space)")
    return direction(target.direction, cossim_pow, device)
