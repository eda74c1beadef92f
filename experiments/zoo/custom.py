"""User models: any callable returning an nn.Module, with an optional local checkpoint."""
from __future__ import annotations

import importlib
from typing import Any, Callable, Sequence

from torch import nn

from experiments.zoo.checkpoint import load_into, read_state_dict
from experiments.zoo.spec import ModelSpec, check_channels, check_input
from methods.base import one_line


def import_factory(path: str) -> Callable[..., nn.Module]:
    """The callable at `package.module:attr` or `package.module.attr`."""
    module_name, _, attr = path.replace(":", ".").rpartition(".")
    if not module_name:
        raise ValueError(f"model.factory {path!r} is not an import path like 'package.module.make_model'")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except Exception as err:  # a user module can fail to import in any way (SyntaxError, its own imports...)
        raise ValueError(f"model.factory {path!r} cannot be imported: {one_line(err)}") from None
    if not callable(fn):
        raise ValueError(f"model.factory {path!r} is a {type(fn).__name__}, not a callable returning an nn.Module")
    return fn


def make_model(path: str) -> nn.Module:
    """The nn.Module the factory at `path` returns; one line naming the factory when it raises or returns another type."""
    factory = import_factory(path)
    try:
        model = factory()
    except Exception as err:  # user code: whatever it raises is reported as the factory's error
        raise ValueError(f"model.factory {path!r} raised {one_line(err)}") from None
    if not isinstance(model, nn.Module):
        raise ValueError(f"model.factory {path!r} returned a {type(model).__name__}, not an nn.Module")
    if next(model.parameters(), None) is None:
        raise ValueError(f"model.factory {path!r} returned a {type(model).__name__} without parameters")
    return model


def load_checkpoint(model: nn.Module, path: str, strict: bool = True) -> nn.Module:
    """Load a state dict (or a dict holding one under 'state_dict'/'model') with weights_only=True; DataParallel
    and torch.compile key prefixes are dropped; `strict` off loads what fits."""
    what = f"model.checkpoint {path!r}"
    return load_into(model, read_state_dict(path, what), what, strict=strict)


def build_custom(factory: str | None, checkpoint: str | None = None, name: str | None = None, input_size: Any = 224,
                 mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225),
                 num_classes: int | None = None, in_channels: int | None = None, strict: bool = True) -> ModelSpec:
    """A user model from `factory` (import path of a callable returning an nn.Module) and an optional `checkpoint`;
    `in_channels` unset: its first Conv2d's."""
    if not factory:
        raise ValueError("model=custom needs model.factory=<import path of a callable returning an nn.Module>")
    check_input(input_size, mean, std, num_classes, in_channels)
    model = make_model(factory)
    if checkpoint:
        load_checkpoint(model, checkpoint, strict)
    spec = ModelSpec(name=name or factory, model=model.eval(), weights=checkpoint, input_size=input_size,
                     mean=tuple(mean), std=tuple(std), num_classes=num_classes, in_channels=in_channels)
    check_channels(mean, std, spec.in_channels)
    return spec
