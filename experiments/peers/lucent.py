"""Peers for gradient ascent: torch-lucent's render_vis, one unit per call as people use it, and the bare limit.

lucent's quirks, handled here:
- layer names join module names with '_' instead of '.', e.g. 'layer3_1_conv2';
- thresholds=(steps,): render_vis runs max(thresholds) steps and returns the image at each threshold;
- it appends ImageNet normalization (preprocess=True) and, below 224 px, upsamples to 224 unless given
  fixed_image_size: we pass input_size so the model sees the same resolution as vizbench's;
- its objective hooks every module and never removes the hooks: we remove them after each call (otherwise each
  call leaves a full set of hooks, holding activations, that slows the next call);
- it backpropagates into the model's weights too and leaves their .grad set: we clear what it set;
- it uses numpy's and torch's global RNGs and a module-level device (cuda:0 when CUDA exists): we seed inside a
  forked RNG and refuse a model on another device.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch
from torch import Tensor, nn

from methods.base import invalid_choice


def lucent_layer(layer: str) -> str:
    """lucent's name for a module path: '.' -> '_'."""
    return layer.replace(".", "_")


@contextlib.contextmanager
def _tidy(model: nn.Module, seed: int) -> Iterator[None]:
    """Seed numpy and torch inside forked RNG state; remove the hooks and weight gradients lucent leaves behind."""
    hooks = {m: set(m._forward_hooks) for m in model.modules()}
    had_grad = {p: p.grad is not None for p in model.parameters()}
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        np.random.seed(seed)
        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            for m, before in hooks.items():
                for key in set(m._forward_hooks) - before:
                    del m._forward_hooks[key]
            for p, had in had_grad.items():
                if not had:
                    p.grad = None


def lucent_render(model: nn.Module, layer: str, unit: int, input_size: int, steps: int, transforms: str = "standard",
                  seed: int = 0) -> Tensor:
    """One channel visualization with lucent's render_vis (Fourier, decorrelated, Adam 0.05): image [3, S, S] in [0, 1]."""
    from lucent.optvis import objectives, param, render, transform

    lucent_device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    device = next(model.parameters()).device
    if device != lucent_device:
        raise ValueError(f"lucent puts its images on {lucent_device}; move the model there (it is on {device})")
    if transforms not in ("standard", "none"):
        raise invalid_choice("transforms for lucent", transforms, ("standard", "none"))
    chosen = transform.standard_transforms if transforms == "standard" else []
    with _tidy(model, seed):
        images = render.render_vis(
            model, objectives.channel(lucent_layer(layer), unit),
            param_f=lambda: param.image(input_size, fft=True, decorrelate=True), transforms=chosen,
            thresholds=(steps,), progress=False, show_image=False, fixed_image_size=input_size)
    return torch.from_numpy(images[-1][0]).permute(2, 0, 1)


def bare_step(trunc: nn.Module, batch: Tensor) -> Tensor:
    """The limit: one forward and backward of the truncated model on `batch`, no transforms; returns d(mean)/d(batch)."""
    x = batch.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(trunc(x).float().mean(), x)
    return grad
