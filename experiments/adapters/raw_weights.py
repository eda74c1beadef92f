"""raw_weights in a run: the first conv layer's filters, straight from the model."""
from __future__ import annotations

from typing import Any

from torch import nn

from experiments.adapters.base import Method, RunOptions, signature_schema
from experiments.data.spec import DataSpec
from experiments.zoo.spec import ModelSpec
from methods import raw_weights
from methods.base import Target


def call(spec: ModelSpec, data: DataSpec, target: Target, params: dict[str, Any], opts: RunOptions,
         model: nn.Module) -> raw_weights.Filters:
    """The target layer's filters (only the first conv layer can be drawn)."""
    return raw_weights.visualize(model, target, **params)


def check_target(spec: ModelSpec, data: DataSpec, target: Target, params: dict[str, Any]) -> None:
    """Only the first conv layer's filters can be drawn."""
    raw_weights.check_target(spec.model, target)


def first_layer(model: nn.Module, targets: list[Target], params: dict[str, Any]) -> list[Target]:
    """The model's default targets on its first conv layer, else its first 8 filters; a target of another kind
    (class, neuron...) is refused in one line rather than replaced."""
    for target in targets:
        if target.kind != "channel":
            raw_weights.check_target(model, target)
    first = raw_weights.first_conv_name(model)
    n_filters = dict(model.named_modules())[first].out_channels
    return [t for t in targets if t.layer == first] or [Target(layer=first, units=tuple(range(min(8, n_filters))))]


METHOD = Method(
    name="raw_weights", order=0, visualize=raw_weights.visualize, call=call, inputs="weights",
    check=raw_weights.check_params, schema=signature_schema(raw_weights.visualize), default_targets=first_layer,
    check_target=check_target, smoke=lambda side: ["method=raw_weights"],
)
