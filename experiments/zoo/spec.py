"""What the zoo hands to a run: the model and everything needed to feed and score it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from torch import Tensor, nn

from methods.base import Normalize, pair

DEFAULT_CHANNELS = 3  # a model without any Conv2d is taken to read RGB


@dataclass
class ModelSpec:
    """A ready model (eval mode) with its input format, default targets and, for planted models, ground truth."""

    name: str
    model: nn.Module
    weights: str | None  # None = random init, "built-in", a torchvision weights enum name, or a file path
    input_size: int | tuple[int, int]  # a square side in pixels, or (height, width)
    mean: tuple[float, ...]  # one value per input channel
    std: tuple[float, ...]
    default_targets: dict[str, list[int]] = field(default_factory=dict)  # layer -> units
    # planted models: (layer, unit) -> ground-truth preferred stimulus [3, h, w] in [0, 1], over the unit's
    # receptive field at the centre position of the layer's map
    ground_truth: Callable[[str, int], Tensor] | None = None
    num_classes: int | None = None
    unit_classes: dict[tuple[str, int], str] = field(default_factory=dict)  # planted unit -> shapes class it detects
    in_channels: int | None = None  # None: read from the model's first Conv2d (3 where it has none)

    def __post_init__(self) -> None:
        if self.in_channels is None:
            self.in_channels = first_conv_channels(self.model)
        if not isinstance(self.input_size, int):
            self.input_size = pair(self.input_size)

    @property
    def hw(self) -> tuple[int, int]:
        """The input's (height, width)."""
        return pair(self.input_size)

    def normalizer(self) -> Normalize:
        """The model's input normalization ([0, 1] images -> model input), on the model's device."""
        return Normalize(self.mean, self.std).to(next(self.model.parameters()).device)


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d] | None:
    """The first nn.Conv2d in module order, with its name; None where there is none."""
    return next(((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)


def first_conv_channels(model: nn.Module) -> int:
    """The input channels of the model's first Conv2d; DEFAULT_CHANNELS where it has none."""
    found = first_conv(model)
    return found[1].in_channels if found else DEFAULT_CHANNELS


def check_size(input_size: Any) -> None:
    """Raise one line unless `input_size` is a positive side or an [H, W] pair of them."""
    sides = (input_size,) if isinstance(input_size, int) else input_size
    if not (isinstance(sides, (list, tuple)) and (len(sides) == 2 or isinstance(input_size, int))
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sides)):
        raise ValueError(f"model.input_size={input_size!r} must be a positive number of pixels or [height, width]")


def check_channels(mean: Sequence[float], std: Sequence[float], in_channels: int) -> None:
    """Raise one line naming model.mean or model.std when it has not one value per input channel."""
    for key, values in (("mean", mean), ("std", std)):
        if len(values) != in_channels:
            raise ValueError(f"model.{key}={list(values)} has {len(values)} value{'s' * (len(values) != 1)} but the "
                             f"model takes {in_channels} input channel{'s' * (in_channels != 1)} (one value each)")


def check_input(input_size: Any, mean: Sequence[float], std: Sequence[float], num_classes: int | None = None,
                in_channels: int | None = None) -> None:
    """Raise one line naming the model config key whose input format (size, mean/std, class count) is unusable;
    mean/std lengths are checked against `in_channels` where it is known."""
    check_size(input_size)
    if in_channels is not None:
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"model.in_channels={in_channels!r} must be a positive number of channels")
        check_channels(mean, std, in_channels)
    if any(s <= 0 for s in std):
        raise ValueError(f"model.std={list(std)} must be positive")
    if num_classes is not None and num_classes < 1:
        raise ValueError(f"model.num_classes={num_classes} must be >= 1")
