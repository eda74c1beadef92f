"""timm models by name (timm is optional): random init, a local state dict file, or pretrained weights from the
local Hugging Face / timm cache only (never downloaded)."""
from __future__ import annotations

import difflib
import importlib.util
import os
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from experiments.zoo.checkpoint import load_error, load_into, read_state_dict
from experiments.zoo.spec import ModelSpec
from experiments.zoo.torchvision_models import IMAGENET_MEAN, IMAGENET_STD
from methods.base import invalid_choice, one_line

HUB_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm reads from a Hugging Face repo, in its order
NO_WEIGHTS = (None, "null", "None", "none")


def timm_module() -> ModuleType:
    """The timm package; one line saying how to install it where it is missing."""
    try:
        import timm
    except ImportError:
        raise ValueError('model=timm needs timm, which is not installed: pip install -e ".[timm]"') from None
    return timm


def check_name(name: str | None) -> None:
    """Raise one line with the closest timm names when `name` is not a timm model (or pretrained tag)."""
    timm = timm_module()
    names = timm.list_models()
    if name in names or name in timm.list_pretrained():
        return
    arch, _, tag = str(name).partition(".")
    if tag and arch in names:
        tags = timm.list_pretrained(f"{arch}.*")
        raise invalid_choice("timm model", name, tags or [arch],
                             f" (model.name; {arch} without a tag: its default weights)")
    close = difflib.get_close_matches(str(name), names + timm.list_pretrained(), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ValueError(f"unknown timm model {name!r} (model.name); {hint}see timm.list_models() for all {len(names)}")


def check_weights(weights: str | None) -> None:
    """Raise one line unless `weights` is null, pretrained or an existing file."""
    if weights in NO_WEIGHTS or weights == "pretrained" or os.path.isfile(str(weights)):
        return
    raise invalid_choice("model.weights", weights, ["null", "pretrained"],
                         " or the path of a state dict file (no such file)")


def check_build_timm(name: str | None, weights: str | None = None) -> None:
    """The name and weights, checked without building anything (experiments.builders.check_builder)."""
    check_name(name)
    check_weights(weights)


def hub_cache() -> str:
    """The Hugging Face hub cache folder (HF_HUB_CACHE, else huggingface_hub's default)."""
    from huggingface_hub import constants
    return os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE


def has_safetensors() -> bool:
    """Whether safetensors files can be read here."""
    return importlib.util.find_spec("safetensors") is not None


def cached_weights(cfg: dict[str, Any]) -> tuple[str | None, bool, list[str]]:
    """The cached weights file of a timm pretrained cfg (None if absent), whether it is the cfg's `url` file (timm's
    old cache) rather than a hub file, and each place looked in."""
    from huggingface_hub import try_to_load_from_cache
    looked, unreadable = [], []
    if cfg.get("hf_hub_id"):
        repo, _, revision = cfg["hf_hub_id"].partition("@")
        files = [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else list(HUB_FILES)
        for filename in files:
            found = try_to_load_from_cache(repo, filename, cache_dir=hub_cache(), revision=revision or None)
            if isinstance(found, str) and (has_safetensors() or not found.endswith(".safetensors")):
                return found, False, looked
            if isinstance(found, str):
                unreadable.append(found)
        folder = os.path.join(hub_cache(), f"models--{repo.replace('/', '--')}", "snapshots")
        looked.append(f"{' or '.join(files)} of {repo} in {folder}")
    if cfg.get("url"):
        path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(cfg["url"]).path))
        if os.path.isfile(path):
            return path, True, looked
        looked.append(path)
    looked += [f"{path} (found, but reading it needs `pip install safetensors`)" for path in unreadable]
    return None, False, looked


def load_pretrained(timm: ModuleType, name: str) -> nn.Module:
    """`name` with its pretrained weights from the local cache; one line naming the files and folders when absent."""
    cfg = timm.models.get_pretrained_cfg(name).to_dict()
    label = f"{cfg.get('architecture', name)}.{cfg['tag']}" if cfg.get("tag") else name
    path, from_url, looked = cached_weights(cfg)
    fix = (f"download them on a machine with internet (timm.create_model({label!r}, pretrained=True)) and copy "
           "the folders named here, or use model.weights=<path to a state dict file> or model.weights=null")
    if not looked and path is None:
        raise ValueError(f"timm has no pretrained weights for {name} (model.weights=pretrained): "
                         "use model.weights=null")
    if path is None:
        raise FileNotFoundError(f"timm weights {label} (model.weights=pretrained) are not available offline: looked "
                                f"for {'; '.join(looked)}; {fix}")
    what = f"model.weights=pretrained: the weights file {path}"
    if not path.endswith(".safetensors"):
        read_state_dict(path, what, f"; delete it, {fix}")  # weights_only=True, one-line errors for damaged files
    custom = cfg.get("custom_load") if from_url or cfg.get("custom_load") == "hf" else False  # npz / hub loaders
    try:
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": path, "custom_load": custom})
    except Exception as err:  # timm's loaders raise many types for a file that is not this model's
        reason = load_error(err) if isinstance(err, RuntimeError) else one_line(err)
        raise ValueError(f"{what} does not fit {name}: {reason}; delete it, {fix}") from None


def build_timm(name: str | None, weights: str | None = None, strict: bool = True) -> ModelSpec:
    """A timm model: random init (weights null), its pretrained weights from the local cache (pretrained), or a
    state dict file (a path, loaded with model.strict); input size, mean, std and classes from its pretrained cfg."""
    check_build_timm(name, weights)
    timm = timm_module()
    if weights in NO_WEIGHTS:
        model, label = timm.create_model(name, pretrained=False), None
    elif weights == "pretrained":
        model = load_pretrained(timm, name)
        label = f"pretrained {model.pretrained_cfg.get('architecture')}.{model.pretrained_cfg.get('tag')}"
    else:
        model, label = timm.create_model(name, pretrained=False), str(weights)
        what = f"model.weights {label!r}"
        load_into(model, read_state_dict(label, what), what, strict=strict)
    cfg = model.pretrained_cfg
    channels, h, w = cfg.get("input_size", (3, 224, 224))
    return ModelSpec(name=name, model=model.eval(), weights=label, input_size=h if h == w else (h, w),
                     mean=tuple(cfg.get("mean", IMAGENET_MEAN)), std=tuple(cfg.get("std", IMAGENET_STD)),
                     num_classes=getattr(model, "num_classes", None) or cfg.get("num_classes"), in_channels=channels)
