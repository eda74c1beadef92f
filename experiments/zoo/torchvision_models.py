"""torchvision classification models by name, random init or weights from the local torch hub cache."""
from __future__ import annotations

import os

import torch
import torchvision
from torch import nn
from torchvision.models import get_model, get_model_weights, list_models

from experiments.zoo.checkpoint import load_error, read_state_dict
from experiments.zoo.spec import ModelSpec
from methods.base import invalid_choice

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NO_AUX = {"googlenet": {"aux_logits": False, "init_weights": False}, "inception_v3": {"aux_logits": False, "init_weights": False}}


def classification_models() -> list[str]:
    """Names of torchvision's classification models."""
    return list_models(module=torchvision.models)


def check_name(name: str) -> None:
    """Raise one line naming the closest valid models when `name` is not a torchvision classifier."""
    names = classification_models()
    if name not in names:
        raise invalid_choice("torchvision model", name, names, " (model.name)")


def resolve_weights(name: str, weights: str | None) -> torchvision.models.WeightsEnum | None:
    """The weights enum member for `weights` (DEFAULT, an enum member name, or None for random init)."""
    if weights in (None, "null", "None", "none"):
        return None
    enum = get_model_weights(name)
    key = str(weights).split(".")[-1]
    if key == "DEFAULT":
        return enum.DEFAULT
    if key not in enum.__members__:
        members = [m.name for m in enum]  # iterating an enum skips its aliases, DEFAULT among them
        raise invalid_choice("model.weights", weights, ["DEFAULT", *members, "null"], f" (weights for {name})")
    return enum[key]


def checkpoint_path(weights: torchvision.models.WeightsEnum) -> str:
    """Where torch hub keeps the weights file of `weights`."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))


def load_pretrained(name: str, member: torchvision.models.WeightsEnum, weights: str) -> nn.Module:
    """The model with `member`'s weights from the hub cache; one line naming the file when absent, corrupt or unfit."""
    path = checkpoint_path(member)
    fix = (f"download {member.url} on a machine with internet and put it at {path} (TORCH_HOME/hub/checkpoints), "
           f"or use model.weights=null")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights {member} (model.weights={weights}) are not available offline: {fix}")
    what = f"model.weights={weights}: the weights file {path}"
    read_state_dict(path, what, f"; delete it, {fix}")  # weights_only=True, where torchvision would unpickle anything
    try:
        return get_model(name, weights=member)
    except RuntimeError as err:  # the file is a state dict, but not this model's
        raise ValueError(f"{what} does not fit {name}: {load_error(err)}; delete it, {fix}") from None


def check_build_torchvision(name: str, weights: str | None = None) -> None:
    """The name and weights tag, checked without building anything (experiments.builders.check_builder)."""
    check_name(name)
    resolve_weights(name, weights)


def build_torchvision(name: str, weights: str | None = None) -> ModelSpec:
    """A torchvision model; pretrained weights load only from the local cache (never downloaded)."""
    check_name(name)
    member = resolve_weights(name, weights)
    if member is None:
        model = get_model(name, weights=None, **NO_AUX.get(name, {})).eval()
    else:
        model = load_pretrained(name, member, str(weights)).eval()
    meta = member.transforms() if member is not None else None
    size = int(meta.crop_size[0]) if meta is not None else 224
    mean = tuple(meta.mean) if meta is not None else IMAGENET_MEAN
    std = tuple(meta.std) if meta is not None else IMAGENET_STD
    num_classes = len(member.meta["categories"]) if member is not None else 1000
    return ModelSpec(name=name, model=model, weights=str(member) if member else None, input_size=size,
                     mean=mean, std=std, num_classes=num_classes)
