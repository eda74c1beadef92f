"""The method registry: one `METHOD` entry per adapter module in this package, found by name.

Adding a method: its plain-PyTorch module in methods/, one module here defining `METHOD = Method(...)`, and
one config in conf/method/. Nothing else in experiments/ knows a method by its name.
"""
from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import Any

from torch import nn

from experiments.adapters.base import Method, RunOptions
from experiments.data.spec import DataSpec
from experiments.zoo.spec import ModelSpec
from methods.base import Target, Visualization, invalid_choice

__all__ = ["Method", "RunOptions", "call_method", "get_method", "registry"]


@cache
def registry() -> dict[str, Method]:
    """Every registered method by name, from the modules of this package that define METHOD."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if isinstance(getattr(module, "METHOD", None), Method):
            found[module.METHOD.name] = module.METHOD
    return found


def get_method(name: str) -> Method:
    """The registered method `name`; an unknown name raises one line with the valid ones."""
    methods = registry()
    if name not in methods:
        raise invalid_choice("method", name, methods)
    return methods[name]


def call_method(name: str, spec: ModelSpec, data: DataSpec, target: Target, params: dict[str, Any], opts: RunOptions,
                model: nn.Module | None = None) -> Visualization:
    """Run method `name` on one target as a run would; `model` replaces spec.model (e.g. a randomized copy)."""
    return get_method(name).call(spec, data, target, params, opts, spec.model if model is None else model)
