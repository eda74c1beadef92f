"""The floor every method must beat: what each method would return with no knowledge of the model.

Each function returns one method's typed result (Filters, Ascent, OcclusionMaps, TopPatches) drawn at random
in that method's output shapes. The model is read only for shapes and to measure what the random output
achieves (an image's activation, a patch's activation, as the real method reports them), never to choose the
output. Scored by the same metrics as the real methods, it shows what each metric gives with no information.
`minimize` (asked for by mis_proxy's minimally activating references) only draws from another random stream:
without knowledge of the model there is nothing to minimize.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from methods import occlusion, raw_weights, top_patches
from methods.base import Target, Visualization, invalid_choice, pair, read_out
from methods.graph import fast_forward
from methods.gradient_ascent import Ascent
from methods.occlusion import OcclusionMaps
from methods.raw_weights import Filters
from methods.top_patches import TopPatches

LIKES = ("raw_weights", "gradient_ascent", "occlusion", "top_patches")


def generator(seed: int, *salt: int) -> torch.Generator:
    """A CPU generator seeded from (seed, salt...), independent of the global RNG."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, *salt]).generate_state(1)[0]))


def in_channels(model: nn.Module, images: Tensor | None = None) -> int:
    """The input's channel count: the given images', else the in_channels of the model's first conv."""
    if images is not None:
        return images.shape[1]
    try:
        return model.get_submodule(raw_weights.first_conv_name(model)).in_channels
    except ValueError:
        raise ValueError(f"{type(model).__name__} has no Conv2d to read its input channels from; pass images") from None


def random_filters(model: nn.Module, target: Target, *, seed: int = 0, normalization: str = "per_filter",
                   rgb_channels: Sequence[int] | None = None) -> Filters:
    """Filters of the target's first conv drawn as a fresh default init would: U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    each from its own (seed, unit) stream, and drawn as raw_weights draws them."""
    conv = raw_weights.check_target(model, target)
    shape = tuple(conv.weight.shape[1:])
    bound = 1 / math.sqrt(math.prod(shape))
    w = torch.stack([(2 * torch.rand(shape, generator=generator(seed, 1, u)) - 1) * bound for u in target.units])
    layer = target.layer or raw_weights.first_conv_name(model)
    return Filters(images=raw_weights.draw(w, normalization, rgb_channels), units=tuple(target.units), layer=layer,
                   weights=w)


def unit_scores(net: nn.Module, images: Tensor, target: Target, per_unit: int) -> Tensor:
    """[U] mean read-out of each unit on its own `per_unit` images (unit-major), as gradient ascent reports it."""
    device = next(net.parameters()).device
    units = torch.tensor(target.units).repeat_interleave(per_unit).to(device)
    with torch.inference_mode():
        acts = torch.cat([read_out(net(x.to(device)), target, units[i:i + len(x)])
                          for i, x in zip(range(0, len(images), 64), images.split(64))])
    return acts.float().cpu().view(len(target.units), per_unit).mean(1)


def random_ascent(model: nn.Module, target: Target, *, input_size: int | tuple[int, int], channels: int = 3,
                  normalize: nn.Module | None = None, seed: int = 0, images_per_unit: int = 1,
                  minimize: bool = False) -> Ascent:
    """Uniform noise images [U * images_per_unit, channels, H, W] in [0, 1] (one stream per unit and image;
    input_size: a side or (h, w)), with the activation they reach."""
    shape = (channels, *pair(input_size))
    images = torch.stack([torch.rand(shape, generator=generator(seed, 2, int(minimize), u, j))
                          for u in target.units for j in range(images_per_unit)])
    net = fast_forward(model, target.layer, normalize)
    return Ascent(images=images, units=tuple(target.units), layer=target.layer, images_per_unit=images_per_unit,
                  activation=unit_scores(net, images, target, images_per_unit), snapshots={}, steps=0,
                  trace=torch.empty(0, len(target.units)))  # no steps, so nothing to trace


def random_maps(images: Tensor, target: Target, *, seed: int = 0, window: int | str = "auto", stride: int | str = "auto",
                image_ids: Tensor | None = None) -> OcclusionMaps:
    """Occlusion-shaped maps of `images` [N, C, H, W]: a standard normal drop per window, spread as occlusion does;
    each (unit, image id) has its own stream (image_ids: the images' data indices, default 0..N-1)."""
    n, _, h, w = images.shape
    window, stride = occlusion.sizes(window, stride, (h, w))
    ids = range(n) if image_ids is None else image_ids.tolist()
    rows, cols = occlusion.window_starts(h, window, stride), occlusion.window_starts(w, window, stride)
    drops = torch.stack([torch.stack([torch.randn(len(rows), len(cols), generator=generator(seed, 3, u, j))
                                      for u in target.units]) for j in ids])
    maps = occlusion.spread(drops, window, stride, h, w)
    return OcclusionMaps(images=occlusion.heatmaps(images.cpu(), maps), units=tuple(target.units), layer=target.layer,
                         images_per_unit=n, maps=maps, perturbations=0, windows=(rows, cols),
                         evaluated=torch.ones(len(rows), len(cols), dtype=torch.bool), image_indices=image_ids)


def random_patches(model: nn.Module, images: Tensor, target: Target, *, normalize: nn.Module | None = None,
                   seed: int = 0, k: int = 9, minimize: bool = False, crop_size: int | None = None) -> TopPatches:
    """k patches per unit at random positions of k distinct random images, cropped to the receptive field as top
    patches are (neuron targets: at the neuron's position), with the unit's activation there; one stream per unit."""
    if target.kind not in top_patches.KINDS:
        raise invalid_choice("target.kind for top_patches", target.kind, top_patches.KINDS)
    device = next(model.parameters()).device
    net = fast_forward(model, target.layer, normalize)
    with torch.inference_mode():
        first = net(images[[0]].to(device))  # a batch of one by index: a lazy image set's slice stays lazy
    top_patches.check_layer(first, target)
    h, w = first.shape[-2:]
    u, k = len(target.units), min(k, len(images))
    streams = [generator(seed, 4, int(minimize), unit) for unit in target.units]
    idx = torch.stack([torch.randperm(len(images), generator=g)[:k] for g in streams])
    if target.kind == "neuron":
        r, c = target.position_in(h, w)
        pos = torch.full((u, k), r * w + c)
    else:
        pos = torch.stack([torch.randint(h * w, (k,), generator=g) for g in streams])
    with torch.inference_mode():
        acts = torch.stack([net(images[idx[i]].to(device))[:, unit].flatten(1).gather(1, pos[i, :, None].to(device))[:, 0]
                            for i, unit in enumerate(target.units)]).float().cpu()
    return top_patches.assemble(model, target, images, None, (acts, idx, pos), (h, w), tuple(images.shape[1:]),
                               len(images), crop_size)


def visualize(model: nn.Module, target: Target, images: Tensor | None = None, image_ids: Tensor | None = None, *,
              like: str = "occlusion", input_size: int | tuple[int, int] = 64, normalize: nn.Module | None = None,
              seed: int = 0, normalization: str = "per_filter", rgb_channels: Sequence[int] | None = None,
              images_per_unit: int = 1, window: int | str = "auto", stride: int | str = "auto", fill: str | float = "grey",
              reduce: str = "mean", output: str = "logit", k: int = 9, crop_size: int | None = None,
              minimize: bool = False) -> Visualization:
    """The result method `like` would give, drawn at random (images: the data to map or crop from; image_ids:
    their data indices, which seed occlusion-like maps).

    Gradient-ascent-like images have the channels of `images` where given, else those of the model's first conv.
    fill, reduce and output are not used to draw: they are the occlusion settings the maps are scored with.
    """
    check_params(like, normalization, images_per_unit, window, stride, fill, reduce, output, k, crop_size, minimize,
                 rgb_channels)
    if like == "raw_weights":
        return random_filters(model, target, seed=seed, normalization=normalization, rgb_channels=rgb_channels)
    if like == "gradient_ascent":
        return random_ascent(model, target, input_size=input_size, channels=in_channels(model, images),
                             normalize=normalize, seed=seed, images_per_unit=images_per_unit, minimize=minimize)
    if images is None:
        raise ValueError(f"like={like!r} needs images")
    if like == "top_patches":
        return random_patches(model, images, target, normalize=normalize, seed=seed, k=k, minimize=minimize,
                              crop_size=crop_size)
    return random_maps(images, target, seed=seed, window=window, stride=stride, image_ids=image_ids)


def check_params(like: str = "occlusion", normalization: str = "per_filter", images_per_unit: int = 1,
                 window: int | str = "auto", stride: int | str = "auto", fill: str | float = "grey", reduce: str = "mean",
                 output: str = "logit", k: int = 9, crop_size: int | None = None, minimize: bool = False,
                 rgb_channels: Sequence[int] | None = None) -> None:
    """One-line errors for settings that are wrong whatever the model: the stood-in method's own checks."""
    if like not in LIKES:
        raise invalid_choice("like", like, LIKES)
    if like == "raw_weights":
        raw_weights.check_params(normalization, rgb_channels)
    if like == "occlusion":
        occlusion.check_params(window=window, stride=stride, fill=fill, reduce=reduce, output=output)
    for key, value in (("images_per_unit", images_per_unit), ("k", k), ("crop_size", crop_size or 1)):
        if value < 1:
            raise ValueError(f"{key}={value} must be >= 1")
