"""random_baseline in a run: another method's kind of result drawn at random, scored by that method's metrics.

`method.params.like` names the method it stands in for; the other params are the settings of that method
the result is drawn or scored with (occlusion's window, fill, reduce and output decide its deletion curves).
The occlusion stand-in maps the same images occlusion would (each unit's most activating ones), so both are
scored on the same images.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from experiments.adapters import occlusion as occlusion_adapter
from experiments.adapters import raw_weights as raw_weights_adapter
from experiments.adapters import top_patches as top_patches_adapter
from experiments.adapters.base import Method, RunOptions, signature_schema
from experiments.data.spec import DataSpec
from experiments.zoo.spec import ModelSpec
from methods import random_baseline
from methods.base import Target, Visualization


def settings(params: dict[str, Any]) -> dict[str, Any]:
    """Every param, defaults filled in."""
    return {**METHOD.defaults(), **params}


def call(spec: ModelSpec, data: DataSpec, target: Target, params: dict[str, Any], opts: RunOptions,
         model: nn.Module) -> Visualization:
    """The stood-in method's kind of result, drawn with the run's seed."""
    run = {"input_size": spec.hw, "normalize": spec.normalizer(), "seed": opts.seed, **params}
    if settings(params)["like"] != "occlusion":
        return random_baseline.visualize(model, target, data.images, **run)
    per_unit = occlusion_adapter.chosen_images(spec, data, target, opts)
    source = per_unit.flatten().unique()
    result = random_baseline.visualize(model, target, data.images[source], image_ids=source, **run)
    return dataclasses.replace(result, unit_sources=per_unit)


def check_target(spec: ModelSpec, data: DataSpec, target: Target, params: dict[str, Any]) -> None:
    """What the stood-in method refuses, this refuses too."""
    like = settings(params)["like"]
    stood_in = {"raw_weights": raw_weights_adapter.METHOD, "occlusion": occlusion_adapter.METHOD,
                "top_patches": top_patches_adapter.METHOD}
    if like in stood_in:
        own = {key: value for key, value in params.items() if key in stood_in[like].schema}
        stood_in[like].check_target(spec, data, target, own)


def default_targets(model: nn.Module, targets: list[Target], params: dict[str, Any]) -> list[Target]:
    """raw_weights' first-layer targets when standing in for it, else the model's defaults."""
    if settings(params)["like"] == "raw_weights":
        return raw_weights_adapter.first_layer(model, targets, params)
    return targets


METHOD = Method(
    name="random_baseline", visualize=random_baseline.visualize, call=call, inputs="images",
    check=random_baseline.check_params, schema=signature_schema(random_baseline.visualize), stochastic=True,
    default_targets=default_targets, check_target=check_target,
    sized=lambda params, hw: occlusion_adapter.sized(params, hw) if settings(params)["like"] == "occlusion" else params,
)
