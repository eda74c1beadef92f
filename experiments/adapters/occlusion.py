"""occlusion in a run and in the speed experiment: each unit's most exciting images, against bare forwards and captum."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
from torch import Tensor, nn

from experiments.adapters.base import Method, RunOptions, signature_schema
from experiments.contenders import Contender, Setup, bare_module, formatted
from experiments.data.spec import DataSpec
from experiments.data.stream import batches
from experiments.devices import autocast, prepare_input
from experiments.metrics.occlusion import approx_max_abs_error
from experiments.zoo.spec import ModelSpec
from methods import occlusion
from methods.base import Target, invalid_choice, nan_last, read_out
from methods.graph import fast_forward


def top_images(spec: ModelSpec, data: DataSpec, target: Target, n: int, batch_size: int = 64,
               channels_last: bool = True) -> Tensor:
    """Indices [U, n] of each unit's most activating images: highest logit (class), own position (neuron), or
    spatial max (channel: the image holding the strongest instance, as top_patches ranks them); NaN ranks last."""
    trunc = fast_forward(spec.model, target.layer, spec.normalizer(), channels_last)
    device = next(spec.model.parameters()).device
    scores = []
    with torch.inference_mode():
        for batch in batches(data.images, batch_size, data.workers):
            acts = trunc(batch.to(device))
            if target.kind == "channel" and acts.dim() == 4:
                scores.append(nan_last(acts[:, list(target.units)].flatten(2)).amax(2).float().cpu())
            else:
                scores.append(read_out(acts, target).float().cpu())
    return nan_last(torch.cat(scores)).topk(min(n, len(data.images)), dim=0).indices.T


def chosen_images(spec: ModelSpec, data: DataSpec, target: Target, opts: RunOptions) -> Tensor:
    """Indices [U, n] of the images to occlude per unit: `opts.images` (method.images) for every unit, else each
    unit's `opts.n_images` most activating ones."""
    if opts.images is None:
        return top_images(spec, data, target, opts.n_images, channels_last=opts.channels_last)
    bad = [i for i in opts.images if not 0 <= i < len(data.images)]
    if bad or not opts.images:
        raise ValueError(f"method.images={list(opts.images)}: {'index ' + str(bad[0]) + ' is' if bad else 'no images'} "
                         f"out of range for data {data.name!r} with {len(data.images)} images (0..{len(data.images) - 1})")
    return torch.tensor(opts.images).repeat(len(target.units), 1)


def call(spec: ModelSpec, data: DataSpec, target: Target, params: dict[str, Any], opts: RunOptions,
         model: nn.Module) -> occlusion.OcclusionMaps:
    """Maps of each unit's chosen images (its most exciting ones by default); every unit is mapped on their union."""
    per_unit = chosen_images(spec, data, target, opts)
    source = per_unit.flatten().unique()
    device = next(model.parameters()).device
    result = occlusion.visualize(model, data.images[source].to(device), target, normalize=spec.normalizer(),
                                 channels_last=opts.channels_last, progress=opts.progress, **params)
    return dataclasses.replace(result, image_indices=source, unit_sources=per_unit)


def contenders(s: Setup, peers: bool) -> tuple[list[Contender], dict[str, float]]:
    """vizbench occlusion, its full-forward path (where it computes incrementally), its approximate mode (where the
    case has `approx`: the maps' error against the exact ones is a check row), the bare forwards of every image the
    full path evaluates, captum at ppe 1 and at the batch size.

    Work: perturbations = images x windows of the full map x units, the same for every contender.
    """
    target, p = s.case.target(), sized(s.params, (s.size, s.size))
    model = formatted(s)
    images = prepare_input(s.images, s.device, s.channels_last)
    bs = p["batch_size"]

    def run(**overrides: Any) -> occlusion.OcclusionMaps:
        with autocast(s.device, s.amp):
            return occlusion.visualize(model, images, target, normalize=s.normalize, channels_last=s.channels_last,
                                       **{**s.case.params, **overrides})

    def vizbench() -> Any:
        result = run()
        s.state["forwards"] = len(images) + result.perturbations
        if (note := f"vizbench engine: {result.engine}") not in s.notes:
            s.notes.append(note)
        return result

    def approximate() -> Any:
        s.state["approx_maps"] = run(engine="incremental", approx=s.case.approx).maps

    net = bare_module(s)
    x = prepare_input(images[torch.arange(bs) % len(images)], s.device, s.channels_last)  # real images: speed depends a little on content

    def bare() -> None:
        if "forwards" not in s.state:
            raise RuntimeError("vizbench did not run, so the bare work (its forward count) is unknown")
        with torch.inference_mode(), autocast(s.device, s.amp):
            for start in range(0, s.state["forwards"], bs):
                net(x[: min(bs, s.state["forwards"] - start)])

    out = [Contender("vizbench", vizbench, batch_size=bs), Contender("bare", bare, batch_size=bs)]
    if p.get("engine", "auto") != "full":
        out.append(Contender("vizbench_full", lambda: run(engine="full"), "engine=full", bs))
    if s.case.approx is not None:
        out.append(Contender("vizbench_approx", approximate, f"approx={s.case.approx}", bs))
        s.checks["approx_max_abs_error"] = lambda: approx_max_abs_error(s.state["approx_maps"], run(approx=None).maps)
    if peers:
        out += [Contender("captum_occlusion", captum_fn(s, model, images, p, ppe), f"ppe={ppe}", ppe)
                for ppe in dict.fromkeys((1, bs))]
    windows = len(occlusion.window_starts(s.size, p["window"], p["stride"])) ** 2
    return out, {"perturbations": len(images) * windows * len(target.units)}


def captum_fn(s: Setup, model: nn.Module, images: Tensor, params: dict[str, Any], ppe: int) -> Callable[[], Tensor]:
    """captum's Occlusion with vizbench's window, stride, baseline and scores, at perturbations_per_eval=ppe."""
    from experiments.peers.captum_occlusion import captum_occlusion

    def run() -> Tensor:
        with autocast(s.device, s.amp):
            return captum_occlusion(model, images, s.case.target(), params["window"], params["stride"], params["fill"],
                                    ppe, normalize=s.normalize, reduce=params["reduce"], output=params["output"])

    return run


def sized(params: dict[str, Any], hw: tuple[int, int]) -> dict[str, Any]:
    """params with window and stride in pixels for images of side `hw` (their "auto" resolved)."""
    full = {**METHOD.defaults(), **params}
    window, stride = occlusion.sizes(full["window"], full["stride"], hw)
    return {**params, "window": window, "stride": stride}


def check_target(spec: ModelSpec, data: DataSpec, target: Target, params: dict[str, Any]) -> None:
    """A target kind occlusion reads, and a window no larger than the images."""
    if target.kind not in occlusion.KINDS:
        raise invalid_choice("target.kind for occlusion", target.kind, occlusion.KINDS)
    params = {**METHOD.defaults(), **params}
    window, output = params["window"], params["output"]
    if output == "prob" and target.kind != "class":
        raise ValueError(f"method.params.output=prob needs target.kind=class; the target is a {target.kind}")
    side = min(data.images.shape[-2:])
    if window > side:
        raise ValueError(f"method.params.window={window} must be in 1..{side}, the side of data {data.name!r}'s images")


METHOD = Method(
    name="occlusion", order=2, visualize=occlusion.visualize, call=call, inputs="images", check=occlusion.check_params,
    schema=signature_schema(occlusion.visualize), batch="batch_size", contenders=contenders,
    peers={"captum_occlusion": ("captum.attr", "experiments.peers.captum_occlusion")}, check_target=check_target,
    sized=sized,
    smoke=lambda side: ["method=occlusion", f"method.params.window={max(1, side // 4)}",
                        f"method.params.stride={max(1, side // 4)}", "method.n_images=1"],  # 4x4 windows, one image
)
