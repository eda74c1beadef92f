"""What every method shares: the target to visualize, the result, input normalization and the truncated model."""
from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass
from numbers import Integral
from typing import Any, Iterable, Sequence

import torch
from torch import Tensor, nn

from methods.layout import as_map

KINDS = ("channel", "neuron", "layer", "class", "direction")
GREY = 0.5  # display-space grey: what fills pixels outside an image, and the centre the regularizers pull to


def invalid_choice(key: str, value: Any, valid: Iterable[Any], extra: str = "") -> ValueError:
    """The one-line error for a value (or key) outside a known set: `unknown <key> <value>; valid: a, b<extra>`."""
    names = [str(v) for v in valid]
    close = difflib.get_close_matches(str(value), names, n=3, cutoff=0.75)
    hint = f"did you mean {', '.join(close)}? " if close and str(value) not in names else ""
    return ValueError(f"unknown {key} {value!r}; {hint}valid: {', '.join(names)}{extra}")


def one_line(err: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


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
            raise invalid_choice("target.kind", self.kind, KINDS)

    def position_in(self, h: int, w: int) -> tuple[int, int]:
        """The neuron's (row, col) in an h x w map: the configured position, else the centre."""
        return tuple(self.position) if self.position is not None else (h // 2, w // 2)


@dataclass
class Visualization:
    """A method's result: display images in [0, 1], unit-major, `images_per_unit` per unit, for `layer`.

    Each method returns its own subclass, whose fields hold what it computed besides the pictures.
    """

    images: Tensor  # [U * images_per_unit, C, H, W] float in [0, 1]
    units: tuple[int, ...]
    layer: str  # the layer the units belong to ('' = the model's output)
    images_per_unit: int = 1

    def unit_images(self) -> list[Tensor]:
        """Each unit's images [images_per_unit, C, H, W], in unit order."""
        return list(self.images.split(self.images_per_unit))

    def compared(self) -> list[Tensor]:
        """One array per unit that stands for the result on it (what the sanity metrics compare)."""
        return [imgs.flatten(0, 1) for imgs in self.unit_images()]

    @property
    def values(self) -> dict[str, Tensor]:
        """Per-unit values [U] the method measured itself, by name."""
        return {}

    @property
    def flags(self) -> dict[str, dict[int, str]]:
        """Statuses ('flagged: ...') of some of the `values` rows, by value name and unit; a row absent here is ok."""
        return {}

    @property
    def work(self) -> dict[str, float]:
        """The work one call did, by kind (units, images, perturbations), for throughputs."""
        return {"units": len(self.units)}


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
    """Normalizes [0, 1] images and runs `model` only up to `layer`, returning that layer's output as a map
    [N, C, H, W] (token and channels-last outputs folded back, see methods.layout) or a vector [N, C]."""

    def __init__(self, model: nn.Module, layer: str, normalize: nn.Module | None = None) -> None:
        super().__init__()
        self.model = model
        self.layer = layer
        self.normalize = normalize if normalize is not None else nn.Identity()
        self._module = get_module(model, layer) if layer else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.normalize(x)
        if self._module is None:
            return as_map(self.model(x), x.shape[-2:], len(x))
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
        return as_map(captured[0], x.shape[-2:], len(x))


MODULE_TABLES = ("_parameters", "_buffers", "_modules")  # nn.Module's own registries in its __dict__


def copy_module(module: nn.Module | Tensor) -> nn.Module | Tensor:
    """copy.deepcopy of `module` (or of a tensor), where tensors with autograd history, which deepcopy refuses, are
    copied detached: a tensor itself, or one a forward left in a plain attribute (caches such as the attention-bias
    dicts of timm's LeViT and EfficientViT)."""
    if isinstance(module, Tensor):
        return module.detach().clone() if module.grad_fn is not None else copy.deepcopy(module)
    memo: dict[int, Any] = {}
    for m in module.modules():
        for key, value in vars(m).items():
            if key in MODULE_TABLES:
                continue
            items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple, set)) else [value]
            memo.update({id(t): t.detach().clone() for t in items if isinstance(t, Tensor) and t.grad_fn is not None})
    return copy.deepcopy(module, memo)


def to_channels_last(module: nn.Module) -> nn.Module:
    """`module` with its 4-D parameters and buffers in channels_last (NHWC) memory format, in place. Unlike
    `module.to(memory_format=torch.channels_last)` it leaves 5-D tensors alone (timm's Swin keeps a 5-D buffer),
    which that call refuses."""
    return module._apply(lambda t: t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t)


def truncate(model: nn.Module, layer: str, normalize: nn.Module | None = None) -> Truncated:
    """The model cut after `layer` ('' = whole model): nothing above the layer is computed."""
    return Truncated(model, layer, normalize)


def pair(size: Any, name: str = "input_size") -> tuple[int, int]:
    """(h, w) from a square side or an (h, w) pair of positive ints (numpy ints and config lists too); one line
    naming `name` and the bad value otherwise."""
    values = (size,) * 2 if isinstance(size, Integral) else tuple(size) if hasattr(size, "__len__") and not isinstance(size, str) else ()
    if len(values) != 2 or not all(isinstance(v, Integral) and not isinstance(v, bool) and v > 0 for v in values):
        raise ValueError(f"{name}={size!r} must be a positive number of pixels or [h, w]")
    return int(values[0]), int(values[1])


def layer_shape(model: nn.Module, layer: str, input_size: int | Sequence[int], in_channels: int = 3) -> tuple[int, ...]:
    """Shape [C, H, W] (or [C]) of `layer`'s output seen as a map (see truncate) for one input image of
    `input_size` pixels (a side or (h, w)); one line if the output is not one tensor."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        out = truncate(model, layer)(torch.zeros(1, in_channels, *pair(input_size), device=device))
    if not isinstance(out, Tensor):
        raise ValueError(f"layer {layer or 'output'!r} returns a {type(out).__name__}, not one tensor")
    return tuple(out.shape[1:])


def nan_last(scores: Tensor) -> Tensor:
    """`scores` with NaN replaced by -inf, so that topk / max / descending sorts rank NaN last (torch ranks it first)."""
    return scores.masked_fill(scores.isnan(), float("-inf")) if scores.is_floating_point() else scores


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
        r, c = target.position_in(h, w)
        sel = acts[:, :, r, c]
    else:  # channel
        sel = acts.flatten(2).mean(2)
    if units is not None:
        return sel.gather(1, idx.view(-1, 1)).squeeze(1)
    return sel[:, idx]
