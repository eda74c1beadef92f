"""top_patches in a run and in the speed experiment: one streaming pass over the data, against the bare forwards."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from experiments.adapters.base import Method, RunOptions, signature_schema
from experiments.contenders import Contender, Setup, bare_module, formatted
from experiments.data import stream
from experiments.data.spec import DataSpec
from experiments.devices import autocast, prepare_input
from experiments.zoo.spec import ModelSpec
from methods import top_patches
from methods.base import Target, invalid_choice, layer_shape


@dataclass
class Streamed:
    """A data source's images in batches as experiments.data.stream reads them; `dataset` (the image set) gives
    top_patches.visualize its progress total, as a DataLoader's does."""

    dataset: Any  # a Tensor [N, C, H, W] or a lazy image set
    batch_size: int
    workers: int = 0

    def __iter__(self) -> Iterator[Tensor]:
        return stream.batches(self.dataset, self.batch_size, self.workers)


def call(spec: ModelSpec, data: DataSpec, target: Target, params: dict[str, Any], opts: RunOptions,
         model: nn.Module) -> top_patches.TopPatches:
    """Every data image searched for each unit's top-k patches, streamed (only the winners are kept); `indices`
    name images of the whole source (a shard's are its images' global indices)."""
    batch = params.get("batch_size") or METHOD.defaults()["batch_size"]
    result = top_patches.visualize(model, Streamed(data.images, batch, data.workers), target,
                                   normalize=spec.normalizer(), channels_last=opts.channels_last,
                                   progress=opts.progress, **params)
    # a shard is a contiguous block in source order, so its own order of images ranks ties as the whole source's
    result.indices = data.global_index().to(result.indices.device)[result.indices]
    return result


def merge(spec: ModelSpec, data: DataSpec, target: Target, params: dict[str, Any], opts: RunOptions,
          parts: list[dict[str, Any]]) -> top_patches.TopPatches:
    """The top patches of one pass over the whole `data`, from each shard's saved arrays (experiments.merge)."""
    settings = {**METHOD.defaults(), **params}
    searched = sum(p["images_processed"] for p in parts)
    if searched != len(data.images):
        raise ValueError(f"the shards searched {searched} images but data {data.name!r} has {len(data.images)}: it "
                         "changed since the shards ran; rerun them")
    winners = [(p["activations"], p["indices"], p["positions"]) for p in parts]
    return top_patches.merge(spec.model, data.images, target, winners, k=settings["k"], minimize=settings["minimize"],
                             crop_size=settings["crop_size"], images_processed=searched)


def contenders(s: Setup, peers: bool) -> tuple[list[Contender], dict[str, float]]:
    """vizbench top patches over the images, and the bare forward of every image at the same batch size; streamed
    images are read by a DataLoader in both (vizbench as a run reads them, bare by a plain DataLoader with the
    same images, workers and batch size), so the bare limit pays the same decoding."""
    target, bs = s.case.target(), s.params["batch_size"]
    model = formatted(s)
    streamed = not isinstance(s.images, Tensor)
    images = s.images if streamed else prepare_input(s.images, s.device, s.channels_last)
    net = bare_module(s)

    def vizbench() -> Any:
        with autocast(s.device, s.amp):
            return top_patches.visualize(model, Streamed(images, bs, s.workers) if streamed else images, target,
                                         normalize=s.normalize, channels_last=s.channels_last, **s.case.params)

    def bare() -> None:
        loader = DataLoader(images, batch_size=bs, num_workers=s.workers) if streamed else images.split(bs)
        with torch.inference_mode(), autocast(s.device, s.amp):
            for batch in loader:
                net(batch.to(s.device))

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
    smoke=lambda side: ["method=top_patches", "method.params.k=2"], merge=merge,
)
