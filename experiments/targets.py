"""Turn the `target` config and a model's defaults into checked Targets."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from torch import nn

from experiments.builders import plain
from experiments.zoo.spec import ModelSpec
from methods.base import KINDS, Target, check_units, get_module, invalid_choice, layer_shape, one_line

OUTPUT = "output"  # target.layer naming the model's own output (logits, or a dense map), unless a module has the name
CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _is_int(value: Any) -> bool:
    """True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def unit_list(units: Any, n_channels: int | None = None, key: str = "target.units") -> tuple[int, ...]:
    """`units` as indices: a list as is, an int n (or its digits as a string) as the first n units."""
    units = plain(units)
    if isinstance(units, str) and units.strip().isdigit():
        units = int(units)
    if _is_int(units):
        if units < 1:
            raise ValueError(f"{key}={units} selects no units; give a count >= 1 or a list of indices like [3, 7]")
        if n_channels is not None and units > n_channels:
            raise ValueError(f"{key}={units} asks for more units than the layer's {n_channels} channels")
        return tuple(range(units))
    if not isinstance(units, (list, tuple)) or not all(_is_int(u) for u in units):
        raise ValueError(f"{key}={units!r} is not a unit count or a list of unit indices; "
                         f"use e.g. {key}=8 (the first 8) or {key}=[3,7]")
    if not units:
        raise ValueError(f"{key}=[] selects no units")
    return tuple(units)


def numbers(value: Any, key: str, kind: type) -> tuple | None:
    """A config list (position, direction) as a tuple of `kind`; one line naming `key` if it is not a list of numbers."""
    value = plain(value)
    if value is None:
        return None
    ok = (int,) if kind is int else (int, float)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, ok) and not isinstance(v, bool) for v in value):
        raise ValueError(f"{key}={value!r} must be a list of {kind.__name__}s")
    return tuple(kind(v) for v in value)


def check_config(cfg: Any) -> Target:
    """The config's kind, position and direction checked on their own (before any model work), as a Target to fill in."""
    if cfg.kind not in KINDS:
        raise invalid_choice("target.kind", cfg.kind, KINDS)
    position = numbers(cfg.position, "target.position", int)
    if position is not None and len(position) != 2:
        raise ValueError(f"target.position={list(position)} needs 2 values (row, col), got {len(position)}")
    direction = numbers(cfg.direction, "target.direction", float)
    if cfg.kind == "direction" and not direction:
        raise ValueError("target.kind=direction needs target.direction=[...] (one weight per channel of target.layer)")
    for key, value, kind in (("position", position, "neuron"), ("direction", direction, "direction")):
        if value is not None and cfg.kind != kind:
            raise ValueError(f"target.{key}={list(value)} applies to target.kind={kind}, not {cfg.kind}")
    if cfg.units is not None and not cfg.layer and cfg.kind != "class":
        raise ValueError(f"target.units={plain(cfg.units)!r} needs target.layer (without it the model's default targets "
                         "are used, each with its own units)")
    return Target(layer="", units=(), kind=cfg.kind, position=position, direction=direction)


def first_layer(model: nn.Module) -> tuple[str, nn.Module] | None:
    """The first registered conv or linear layer: where the input most likely goes in."""
    for name, module in model.named_modules():
        if isinstance(module, (*CONVS, nn.Linear)):
            return name, module
    return None


def probe(spec: ModelSpec, layer: str) -> tuple[int, ...]:
    """`layer`'s output shape as a map, [C, H, W] or [C], for one input image; one line on failure, naming the
    channel counts if they differ."""
    try:
        return layer_shape(spec.model, layer, spec.hw, spec.in_channels)
    except Exception as err:  # the model's own forward fails: any type, reported with the input it got
        found = first_layer(spec.model)
        if found and isinstance(found[1], CONVS) and found[1].in_channels != spec.in_channels:
            raise ValueError(
                f"model {spec.name!r} takes {found[1].in_channels}-channel input (its first layer {found[0]!r} is "
                f"{type(found[1]).__name__} with in_channels={found[1].in_channels}) but model.in_channels="
                f"{spec.in_channels}; set model.in_channels={found[1].in_channels}") from None
        shape = [1, spec.in_channels, *spec.hw]
        raise ValueError(f"model {spec.name!r} fails on a {shape} input (model.input_size={spec.input_size}) "
                         f"while probing layer {layer or OUTPUT!r}: {one_line(err)}") from None


def check_position(position: tuple[int, int] | None, shape: tuple[int, ...], layer: str) -> None:
    """Raise one line if target.position is outside `layer`'s [C, H, W] map."""
    if position is None:
        return
    h, w = shape[1:]
    if not (0 <= position[0] < h and 0 <= position[1] < w):
        raise ValueError(f"target.position={list(position)} is outside layer {layer!r}'s {h}x{w} map "
                         f"(row 0..{h - 1}, col 0..{w - 1})")


def class_target(units: Any, num_classes: int | None) -> Target:
    """The class target: logits `units`, checked against the model's class count."""
    chosen = unit_list(units if units is not None else min(4, num_classes or 4), num_classes)
    bad = [u for u in chosen if u < 0 or (num_classes is not None and u >= num_classes)]
    if bad:
        valid = f"the model has {num_classes} classes (0..{num_classes - 1})" if num_classes else "indices are >= 0"
        raise ValueError(f"target.units={list(chosen)}: class index {bad[0]} out of range; {valid}")
    return Target(layer="", units=chosen, kind="class")


def layer_target(spec: ModelSpec, layer: str, units: Any, keys: tuple[str, str], proto: Target) -> Target:
    """`proto` on `layer` with `units`, all checked against the layer's output shape; `keys` name (layer, units) in errors."""
    try:
        get_module(spec.model, layer)
    except ValueError as err:
        raise ValueError(f"{keys[0]}: {err}") from None
    shape = probe(spec, layer)
    n_channels = shape[0]
    chosen = unit_list(units if units is not None else min(4, n_channels), n_channels, keys[1])
    try:
        check_units(chosen, n_channels, layer)
    except ValueError as err:
        raise ValueError(f"{keys[1]}={list(chosen)}: {err}") from None
    if proto.kind == "neuron":
        if len(shape) != 3:
            raise ValueError(f"target.kind=neuron needs a layer with a 2-D map; {layer!r} outputs {list(shape)} per image")
        check_position(proto.position, shape, layer)
    if proto.kind == "direction" and len(proto.direction) != n_channels:
        raise ValueError(f"target.direction has {len(proto.direction)} values but layer {layer!r} has {n_channels} channels")
    return replace(proto, layer=layer, units=chosen)


def layer_name(layer: str | None, model: nn.Module) -> str | None:
    """The module name a configured target.layer means: 'output' is the model's own output ('') unless a module has
    that name."""
    if layer == OUTPUT and OUTPUT not in dict(model.named_modules()):
        return ""
    return layer


def resolve_targets(cfg: Any, spec: ModelSpec) -> list[Target]:
    """One Target per layer: the configured one, or the model's default targets."""
    proto = check_config(cfg)
    layer = layer_name(cfg.layer, spec.model)
    if proto.kind == "class":
        return [class_target(cfg.units, spec.num_classes)]
    if cfg.layer:
        wanted = {layer: (("target.layer", "target.units"), cfg.units)}
    else:
        wanted = {layer: (("model.targets", f"model.targets.{layer}"), units) for layer, units in spec.default_targets.items()}
    if not wanted:
        names = [n for n, _ in spec.model.named_modules() if n]
        raise ValueError(f"model {spec.name!r} has no default targets (no Conv2d layer); set target.layer to one of "
                         f"{', '.join(names[:10])}{'...' if len(names) > 10 else ''}")
    return [layer_target(spec, layer, units, keys, proto) for layer, (keys, units) in wanted.items()]
