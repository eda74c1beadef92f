"""torchvision classification models by name, random init or weights from the local torch hub cache."""
from __future__ import annotations

import os

import torch
import torchvision
from torchvision.models import get_model, get_model_weights, list_models

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
        raise invalid_choice("torchvision model", name, names)


def resolve_weights(name: str, weights: str | None) -> torchvision.models.WeightsEnum | None:
    """The weights enum member for `weights` (DEFAULT, an enum member name, or None for random init)."""
    if weights in (None, "null", "None", "none"):
        return None
    enum = get_model_weights(name)
    key = weights.split(".")[-1]
    if key == "DEFAULT":
        return enum.DEFAULT
    if key not in enum.__members__:
        raise invalid_choice(f"weights for {name}", weights, ["DEFAULT", *enum.__members__, "null"])
    return enum[key]


def checkpoint_path(weights: torchvision.models.WeightsEnum) -> str:
    """Where torch hub keeps the weights file of `weights`."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))


def build_torchvision(name: str, weights: str | None = None) -> ModelSpec:
    """A torchvision model; pretrained weights load only from the local cache (never downloaded)."""
    check_name(name)
    member = resolve_weights(name, weights)
    kwargs = dict(NO_AUX.get(name, {})) if member is None else {}
    if member is not None:
        path = checkpoint_path(member)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"weights {member} are not available offline: put {os.path.basename(path)} in "
                f"{os.path.dirname(path)} (TORCH_HOME/hub/checkpoints) or use model.weights=null"
            )
    model = get_model(name, weights=member, **kwargs).eval()
    meta = member.transforms() if member is not None else None
    size = int(meta.crop_size[0]) if meta is not None else 224
    mean = tuple(meta.mean) if meta is not None else IMAGENET_MEAN
    std = tuple(meta.std) if meta is not None else IMAGENET_STD
    num_classes = len(member.meta["categories"]) if member is not None else 1000
    return ModelSpec(name=name, model=model, weights=str(member) if member else None, input_size=size,
                     mean=mean, std=std, num_classes=num_classes)
