"""One forward pass of zero images with a hook on every module: each module's output shape per image, in execution
order."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from methods.base import one_line
from methods.layout import Layout, detect

PROBE_BATCH = 2  # images per probe: an output whose first dim is not 2 does not hold one map per image


@dataclass(frozen=True)
class Call:
    """A module's first call: its name, the module and its per-image output shape (None: not one tensor with one row
    per image)."""

    name: str
    module: nn.Module
    shape: tuple[int, ...] | None
    kind: str  # the output's type name: Tensor, tuple, dict...


@dataclass(frozen=True)
class Trace:
    """What one forward pass showed: every called module in the order its output was produced (the root last)."""

    calls: list[Call]
    output: Any  # the model's own output for the first image (batch dim kept: [1, ...])
    hw: tuple[int, int]

    def layout(self, call: Call) -> Layout | None:
        """How `call`'s output reads as a map or vector (methods.layout); None where it cannot."""
        if call.shape is None:
            return None
        try:
            return detect(call.shape, self.hw)
        except ValueError:
            return None

    def map_shape(self, call: Call) -> tuple[int, ...] | None:
        """`call`'s output as (C, H, W) or (C,); None where it cannot be seen as either."""
        found = self.layout(call)
        return found.map_shape(call.shape) if found else None

    def is_map(self, call: Call) -> bool:
        """Whether `call`'s output is a spatial map larger than 1x1."""
        shape = self.map_shape(call)
        return shape is not None and len(shape) == 3 and shape[1] * shape[2] > 1


def trace(model: nn.Module, hw: tuple[int, int], in_channels: int, name: str = "model") -> Trace:
    """Run zero images [PROBE_BATCH, in_channels, *hw] through `model`, recording each module's first output shape
    per image (None where the output is not one tensor with one row per image); one line naming the input when
    the model fails on it."""
    calls: dict[str, Call] = {}

    def hook(module_name: str):
        def record(module: nn.Module, args: Any, out: Any) -> None:
            if module_name not in calls:
                per_image = isinstance(out, Tensor) and out.dim() >= 1 and out.shape[0] == len(images)
                shape = tuple(out.shape[1:]) if per_image else None
                kind = "Tensor, not one per image" if isinstance(out, Tensor) and not per_image else type(out).__name__
                calls[module_name] = Call(module_name, module, shape, kind)
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()]
    device = next(iter(model.parameters()), torch.zeros(())).device
    shape = [PROBE_BATCH, in_channels, *hw]
    images = torch.zeros(shape, device=device)
    try:
        with torch.inference_mode():
            output = first_image(model(images))
    except Exception as err:  # the model's own forward: any type, reported with the input it got
        raise ValueError(f"model {name!r} fails on a {shape} input ({in_channels} channel{'s' * (in_channels != 1)}, "
                         f"{hw[0]}x{hw[1]} px: model.in_channels, model.input_size): {one_line(err)}") from None
    finally:
        for handle in handles:
            handle.remove()
    return Trace(list(calls.values()), output, hw)


def first_image(out: Any) -> Any:
    """The model output `out` for the first image alone: each tensor with a batch dim cut to [1, ...], through
    tuples, lists and dicts."""
    if isinstance(out, Tensor):
        return out[:1] if out.dim() else out
    if isinstance(out, (tuple, list)):
        return type(out)(first_image(v) for v in out) if not hasattr(out, "_fields") else type(out)(*map(first_image, out))
    if isinstance(out, dict):
        cut = {k: first_image(v) for k, v in out.items()}
        try:
            return type(out)(cut)
        except Exception:  # noqa: BLE001 - a dict type that cannot be rebuilt from a dict: a plain one
            return cut
    return out
