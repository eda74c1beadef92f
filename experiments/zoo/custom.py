"""User models: any callable returning an nn.Module, with an optional local checkpoint."""
from __future__ import annotations

import importlib
import os
from typing import Callable, Sequence

import torch
from torch import nn

from experiments.zoo.spec import ModelSpec


def import_factory(path: str) -> Callable[..., nn.Module]:
    """The callable at `package.module:attr` or `package.module.attr`."""
    module_name, _, attr = path.replace(":", ".").rpartition(".")
    if not module_name:
        raise ValueError(f"model.factory={path!r} is not an import path like 'package.module.make_model'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"model.factory={path!r} cannot be imported: {err}") from None


def load_checkpoint(model: nn.Module, path: str) -> nn.Module:
    """Load a state dict (or a dict holding one under 'state_dict'/'model') with weights_only=True."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    model.load_state_dict(state)
    return model


def build_custom(factory: str | None, checkpoint: str | None = None, name: str | None = None, input_size: int = 224,
                 mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225),
                 num_classes: int | None = None) -> ModelSpec:
    """A user model from `factory` (import path of a callable returning an nn.Module) and an optional `checkpoint`."""
    if not factory:
        raise ValueError("model=custom needs model.factory=<import path of a callable returning an nn.Module>")
    model = import_factory(factory)()
    if checkpoint:
        load_checkpoint(model, checkpoint)
    return ModelSpec(name=name or factory, model=model.eval(), weights=checkpoint, input_size=input_size,
                     mean=tuple(mean), std=tuple(std), num_classes=num_classes)
