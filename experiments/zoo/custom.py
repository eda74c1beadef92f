"""User models: any callable returning an nn.Module, with an optional local checkpoint."""
from __future__ import annotations

import importlib
import os
from typing import Callable

import torch
from torch import nn


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
