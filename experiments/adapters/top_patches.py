"""top_patches in a run and in the speed experiment: one streaming pass over the data, against the bare forwards."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from experiments.adapters.base import Method, RunOptions, signature_schema
from experiments.contenders import Contender, Setup, bare_module, formatted
from experiments.data.spec import DataSpec
from experiments.devices import autocast, prepare_input
from experiments.zoo.spec import ModelSpec
from methods import top_patches
from methods.base import Target, invalid_choice, layer_shape


def call(spec: ModelSpec, data: DataSpec, target: Target, params: dict[str, Any], opts: RunOptions,
         model: nn.Module) -> top_patches.TopPatches:
    """Every data image searched for each unit's top-k patches."""
    return top_patches.visualize(model, data.images, target, normalize=spec.normalizer(), channels_last=opts.channels_last,
                                 progress=opts.progress, **params)


def contenders(s: Setup, peers: bool) -> tuple[list[Contender], dict[str, float]]:
    """vizbench top patches over the images, and the bare forward of every image at the same batch size."""
    target, bs = s.case.target(), s.params["batch_size"]
    model = formatted(s)
    images = prepare_input(s.images, s.device, s.channels_last)
    net = bare_module(s)

    def vizbench() -> Any:
        with autocast(s.device, s.amp):
            return top_patches.visualize(model, images, target, normalize=s.normalize, channels_last=s.channels_last,
                                         **s.case.params)

    def bare() -> None:
        with torch.inference_mode(), autocast(s.device, s.amp):
            for batch in images.split(bs):
                net(batch)

    return [Contender("vizbench", vizbench, batch_size=bs), Contender("bare", bare, batch_size=bs)], {"images": len(images)}


def check_target(spec: ModelSpec, data: DataSpec, target: Target, params: dict[str, Any]) -> None:
    """A channel or neuron target on a layer with a spatial map (patches need one)."""
    if target.kind not in top_patches.KINDS:
        raise invalid_choice("target.kind for top_patches", target.kind, top_patches.KINDS)
    shape = layer_shape(spec.model, target.layer, spec.hw, data.images.shape[1])
    if len(shape) != 3:
        raise ValueError(f"top_patches needs a layer with a spatial map [C, H, W]; target.layer={target.layer!r} "
                         f"gives {list(shape)} per image")


METHOD = Method(
    name="top_patches", order=3, visualize=top_patches.visualize, call=call, inputs="images", check=top_patches.check_params,
    schema=signature_schema(top_patches.visualize), batch="batch_size", contenders=contenders, check_target=check_target,
    smoke=lambda side: ["method=top_patches", "method.params.k=2"],
)
