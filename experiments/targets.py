"""Turn the `target` config and a model's defaults into checked Targets."""
from __future__ import annotations

from typing import Any

from methods.base import Target, check_units, get_module, layer_shape
from experiments.zoo.spec import ModelSpec


def unit_list(units: Any, n_channels: int | None = None) -> tuple[int, ...]:
    """`units` as indices: a list as is, an int n as the first n units."""
    if isinstance(units, int):
        if n_channels is not None and units > n_channels:
            raise ValueError(f"target.units={units} asks for more units than the layer's {n_channels} channels")
        return tuple(range(units))
    return tuple(int(u) for u in units)


def resolve_targets(cfg: Any, spec: ModelSpec) -> list[Target]:
    """One Target per layer: the configured one, or the model's default targets."""
    kind = cfg.kind
    position = tuple(cfg.position) if cfg.position is not None else None
    direction = tuple(cfg.direction) if cfg.direction is not None else None
    if kind == "class":
        units = unit_list(cfg.units if cfg.units is not None else 4, spec.num_classes)
        if spec.num_classes is not None:
            check_units(units, spec.num_classes, "logits")
        return [Target(layer="", units=units, kind="class")]
    wanted = {cfg.layer: cfg.units} if cfg.layer else spec.default_targets
    targets = []
    for layer, units in wanted.items():
        get_module(spec.model, layer)
        n_channels = layer_shape(spec.model, layer, spec.input_size)[0]
        chosen = unit_list(units if units is not None else min(4, n_channels), n_channels)
        check_units(chosen, n_channels, layer)
        if kind == "direction" and (direction is None or len(direction) != n_channels):
            raise ValueError(f"target.direction needs {n_channels} values for layer {layer!r}")
        targets.append(Target(layer=layer, units=chosen, kind=kind, position=position, direction=direction))
    return targets
