"""The model zoo: torchvision by name, user models with checkpoints, and the built-in planted and shapes_cnn."""
from __future__ import annotations

from typing import Any

from torch import nn

from experiments.builders import call_builder
from experiments.zoo.spec import ModelSpec


def build_model(cfg: Any) -> ModelSpec:
    """Build the model a `model` config describes: its `_target_` (or conf/model/<source>.yaml's), then its targets."""
    spec = call_builder("model", cfg, "source")
    if cfg.get("targets"):
        spec.default_targets = {layer: list(units) for layer, units in cfg.targets.items()}
    if not spec.default_targets:
        spec.default_targets = auto_targets(spec.model)
    return spec


def auto_targets(model: nn.Module, units: int = 4) -> dict[str, list[int]]:
    """Default targets: the first conv layer and the conv layer halfway down the network, first `units` units."""
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    layers = [convs[0], convs[len(convs) // 2]] if len(convs) > 1 else convs
    return {layer: list(range(units)) for layer in dict.fromkeys(layers)}
