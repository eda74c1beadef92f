"""The model zoo: torchvision by name, user models with checkpoints, and the built-in planted and shapes_cnn."""
from __future__ import annotations

from typing import Any

from torch import nn

from experiments.zoo.spec import ModelSpec

SOURCES = ("planted", "shapes_cnn", "torchvision", "custom")


def build_model(cfg: Any) -> ModelSpec:
    """Build the model a `model` config describes (see conf/model/)."""
    if cfg.source == "planted":
        from experiments.zoo.planted import build_planted
        spec = build_planted()
    elif cfg.source == "shapes_cnn":
        from experiments.zoo.shapes_cnn import build_shapes_cnn
        spec = build_shapes_cnn(cfg.checkpoint)
    elif cfg.source == "torchvision":
        from experiments.zoo.torchvision_models import build_torchvision
        spec = build_torchvision(cfg.name, cfg.weights)
    elif cfg.source == "custom":
        spec = build_custom(cfg)
    else:
        raise ValueError(f"unknown model.source={cfg.source!r}; valid: {', '.join(SOURCES)}")
    if cfg.get("targets"):
        spec.default_targets = {layer: list(units) for layer, units in cfg.targets.items()}
    if not spec.default_targets:
        spec.default_targets = auto_targets(spec.model)
    return spec


def build_custom(cfg: Any) -> ModelSpec:
    """A user model from `model.factory` (import path) and optional `model.checkpoint`."""
    from experiments.zoo.custom import import_factory, load_checkpoint
    if not cfg.factory:
        raise ValueError("model.source=custom needs model.factory=<import path of a callable returning an nn.Module>")
    model = import_factory(cfg.factory)()
    if cfg.checkpoint:
        load_checkpoint(model, cfg.checkpoint)
    return ModelSpec(name=cfg.name or cfg.factory, model=model.eval(), weights=cfg.checkpoint, input_size=cfg.input_size,
                     mean=tuple(cfg.mean), std=tuple(cfg.std), num_classes=cfg.get("num_classes"))


def first_conv(model: nn.Module) -> str:
    """Name of the first Conv2d in module order (the one that consumes the image)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name
    raise ValueError(f"{type(model).__name__} has no Conv2d layer")


def auto_targets(model: nn.Module, units: int = 4) -> dict[str, list[int]]:
    """Default targets: the first conv layer and the conv layer halfway down the network, first `units` units."""
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    layers = [convs[0], convs[len(convs) // 2]] if len(convs) > 1 else convs
    return {layer: list(range(units)) for layer in dict.fromkeys(layers)}
