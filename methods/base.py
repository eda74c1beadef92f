"""What every method shares: the target to visualize, the result, input normalization and the truncated model."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor, nn

KINDS = ("channel", "neuron", "layer", "class", "direction")


@dataclass(frozen=True)
class Target:
    """A layer (module name as `named_modules()` gives it), unit indices and how a unit is read out."""

    layer: str
    units: tuple[int, ...]
    kind: str = "channel"
    position: tuple[int, int] | None = None  # neuron kind: (row, col) in the layer's map; None = centre
    direction: tuple[float, ...] | None = None  # direction kind: a vector in channel space

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"target.kind={self.kind!r} is not one of {', '.join(KINDS)}")


@dataclass
class Visualization:
    """A method's result: display images in [0, 1], per-unit values it measured, and method-specific extras."""

    images: Tensor  # [K, C, H, W] float in [0, 1]; K = units (x images per unit / x input images)
    units: tuple[int, ...]
    values: dict[str, Tensor] = field(default_factory=dict)  # name -> [U] per-unit values
    extras: dict[str, Any] = field(default_factory=dict)  # maps, boxes, snapshots, ...


class Normalize(nn.Module):
    """Maps display-space images in [0, 1] to the model's input space: (x - mean) / std."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def get_module(model: nn.Module, layer: str) -> nn.Module:
    """The submodule called `layer`; an unknown name raises one line suggesting the closest names."""
    modules = dict(model.named_modules())
    if layer in modules:
        return modules[layer]
    names = [n for n in modules if n]
    close = difflib.get_close_matches(layer, names, n=5, cutoff=0.4)
    hint = f"closest: {', '.join(close)}" if close else f"valid: {', '.join(names[:20])}..."
    raise ValueError(f"unknown layer {layer!r} in {type(model).__name__}; {hint}")


class _Stop(Exception):
    """Raised by a forward hook to end the forward pass at the target layer."""


class Truncated(nn.Module):
    """Normalizes [0, 1] images and runs `model` only up to `layer`, returning that layer's output."""

    def __init__(self, model: nn.Module, layer: str, normalize: nn.Module | None = None) -> None:
        super().__init__()
        self.model = model
        self.layer = layer
        self.normalize = normalize if normalize is not None else nn.Identity()
        self._module = get_module(model, layer) if layer else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.normalize(x)
        if self._module is None:
            return self.model(x)
        captured: list[Tensor] = []

        def hook(_m: nn.Module, _i: Any, out: Tensor) -> None:
            captured.append(out)
            raise _Stop

        handle = self._module.register_forward_hook(hook)
        try:
            self.model(x)
        except _Stop:
            pass
        finally:
            handle.remove()
        if not captured:
            raise RuntimeError(f"layer {self.layer!r} was not reached in the forward pass")
        return captured[0]


def truncate(model: nn.Module, layer: str, normalize: nn.Module | None = None) -> Truncated:
    """The model cut after `layer` ('' = whole model): nothing above the layer is computed."""
    return Truncated(model, layer, normalize)


def layer_shape(model: nn.Module, layer: str, input_size: int, in_channels: int = 3) -> tuple[int, ...]:
    """Shape [C, H, W] of `layer`'s output for one input image of `input_size` pixels."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        out = truncate(model, layer)(torch.zeros(1, in_channels, input_size, input_size, device=device))
    return tuple(out.shape[1:])


def check_units(units: Sequence[int], n_channels: int, layer: str) -> None:
    """Raise one line if a unit index is outside the layer's channel count."""
    bad = [u for u in units if not 0 <= u < n_channels]
    if bad:
        raise ValueError(f"unit index {bad[0]} out of range for layer {layer!r}, which has {n_channels} channels (0..{n_channels - 1})")


def read_out(acts: Tensor, target: Target, units: Tensor | None = None) -> Tensor:
    """Per-image score of the target from a layer's output [B, C, H, W] (or [B, C] logits).

    With `units` (one index per image, [B]) each image is read at its own unit; otherwise all target
    units are read for every image, giving [B, U].
    """
    idx = units if units is not None else torch.tensor(target.units, device=acts.device)
    if target.kind == "direction":
        vec = torch.tensor(target.direction, device=acts.device, dtype=acts.dtype).view(1, -1, *[1] * (acts.dim() - 2))
        proj = (acts * vec).sum(1)
        return proj.flatten(1).mean(1)
    if target.kind == "layer":
        return acts.pow(2).flatten(1).mean(1)
    if acts.dim() == 2 or target.kind == "class":
        sel = acts.flatten(2).mean(2) if acts.dim() > 2 else acts
    elif target.kind == "neuron":
        h, w = acts.shape[-2:]
        r, c = target.position if target.position is not None else (h // 2, w // 2)
        sel = acts[:, :, r, c]
    else:  # channel
        sel = acts.flatten(2).mean(2)
    if units is not None:
        return sel.gather(1, idx.view(-1, 1)).squeeze(1)
    return sel[:, idx]
