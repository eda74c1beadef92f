"""Call each method with the inputs it needs (model, images, input size...) from a run's model and data."""
from __future__ import annotations

import importlib
import inspect
import typing
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from experiments.data.spec import DataSpec
from experiments.zoo.spec import ModelSpec
from methods.base import Normalize, Target, Visualization, read_out
from methods.graph import fast_forward

METHODS = {
    "raw_weights": "methods.raw_weights",
    "gradient_ascent": "methods.gradient_ascent",
    "occlusion": "methods.occlusion",
    "top_patches": "methods.top_patches",
}
# arguments the runner supplies itself; everything else comes from the method config's `params`
SUPPLIED = {"model", "target", "images", "input_size", "normalize", "seed", "amp", "channels_last", "compile", "progress"}


@dataclass
class RunOptions:
    """Run-wide options every method honours where it applies."""

    seed: int = 0
    amp: str = "off"
    channels_last: bool = True
    compile: bool = False
    progress: bool = False
    n_images: int = 4


def method_function(name: str) -> Callable[..., Visualization]:
    """The `visualize` function of method `name`."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(METHODS)}")
    return importlib.import_module(METHODS[name]).visualize


def check_params(name: str, params: dict[str, Any]) -> None:
    """Fail before any work if a method param is unknown or of the wrong type, naming it and the valid ones."""
    sig = inspect.signature(method_function(name))
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    known = {k: p for k, p in sig.parameters.items() if k not in SUPPLIED and p.kind is p.KEYWORD_ONLY}
    hints = typing.get_type_hints(method_function(name))
    for key, value in params.items():
        if key in SUPPLIED:
            raise ValueError(f"method.params.{key} is set by the run itself; set it at the top level ({key}=...)")
        if key not in known:
            if accepts_any:
                continue
            raise ValueError(f"unknown key method.params.{key} for {name}; valid: {', '.join(sorted(known))}")
        expected = hints.get(key)
        if expected in (int, float, str, bool) and value is not None and not _fits(value, expected):
            raise ValueError(f"method.params.{key}={value!r} should be {expected.__name__}")


def _fits(value: Any, expected: type) -> bool:
    """Whether a config value fits a simple annotated type (an int is a valid float)."""
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def top_images(spec: ModelSpec, data: DataSpec, target: Target, n: int, batch_size: int = 64,
               channels_last: bool = True) -> torch.Tensor:
    """Indices [U, n] of each unit's most activating images: highest logit (class), own position (neuron), or
    spatial max (channel: the image holding the strongest instance, as top_patches ranks them)."""
    device = next(spec.model.parameters()).device
    trunc = fast_forward(spec.model, target.layer, Normalize(spec.mean, spec.std).to(device), channels_last)
    scores = []
    with torch.inference_mode():
        for start in range(0, len(data.images), batch_size):
            acts = trunc(data.images[start:start + batch_size].to(device))
            if target.kind == "channel" and acts.dim() == 4:
                scores.append(acts[:, list(target.units)].flatten(2).amax(2).float().cpu())
            else:
                scores.append(read_out(acts, target).float().cpu())
    return torch.cat(scores).topk(min(n, len(data.images)), dim=0).indices.T


def call_method(name: str, spec: ModelSpec, data: DataSpec, target: Target, params: dict[str, Any],
                opts: RunOptions, model: nn.Module | None = None) -> Visualization:
    """Run method `name` on one target; `model` replaces spec.model (e.g. a randomized copy)."""
    fn = method_function(name)
    model = model if model is not None else spec.model
    device = next(model.parameters()).device
    normalize = Normalize(spec.mean, spec.std).to(device)
    if name == "raw_weights":
        return fn(model, target, **params)
    if name == "gradient_ascent":
        return fn(model, target, input_size=spec.input_size, normalize=normalize, seed=opts.seed, amp=opts.amp,
                  channels_last=opts.channels_last, compile=opts.compile, progress=opts.progress, **params)
    if name == "occlusion":  # each unit's most exciting images; every unit is mapped on their union
        per_unit = top_images(spec, data, target, opts.n_images, channels_last=opts.channels_last)
        source = per_unit.flatten().unique()
        vis = fn(model, data.images[source].to(device), target, normalize=normalize, channels_last=opts.channels_last,
                 progress=opts.progress, **params)
        vis.extras.update(source_indices=source, unit_images=per_unit, images_processed=len(source))
        return vis
    return fn(model, data.images, target, normalize=normalize, channels_last=opts.channels_last, progress=opts.progress,
              **params)
