"""What the zoo hands to a run: the model and everything needed to feed and score it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from torch import Tensor, nn

from methods.base import Normalize


@dataclass
class ModelSpec:
    """A ready model (eval mode) with its input format, default targets and, for planted models, ground truth."""

    name: str
    model: nn.Module
    weights: str | None  # None = random init, "built-in", a torchvision weights enum name, or a file path
    input_size: int  # square input side in pixels
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    default_targets: dict[str, list[int]] = field(default_factory=dict)  # layer -> units
    # planted models: (layer, unit) -> ground-truth preferred stimulus [3, h, w] in [0, 1], over the unit's
    # receptive field at the centre position of the layer's map
    ground_truth: Callable[[str, int], Tensor] | None = None
    num_classes: int | None = None
    unit_classes: dict[tuple[str, int], str] = field(default_factory=dict)  # planted unit -> shapes class it detects

    def normalizer(self) -> Normalize:
        """The model's input normalization ([0, 1] images -> model input), on the model's device."""
        return Normalize(self.mean, self.std).to(next(self.model.parameters()).device)


def check_input(input_size: int, mean: Sequence[float], std: Sequence[float], num_classes: int | None = None) -> None:
    """Raise one line naming the model config key whose input format (size, RGB mean/std, class count) is unusable."""
    if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size < 1:
        raise ValueError(f"model.input_size={input_size!r} must be a positive number of pixels")
    for key, values in (("mean", mean), ("std", std)):
        if len(values) != 3:
            raise ValueError(f"model.{key}={list(values)} needs 3 values (R, G, B), got {len(values)}")
    if any(s <= 0 for s in std):
        raise ValueError(f"model.std={list(std)} must be positive")
    if num_classes is not None and num_classes < 1:
        raise ValueError(f"model.num_classes={num_classes} must be >= 1")
