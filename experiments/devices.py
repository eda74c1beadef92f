"""Device choice, mixed precision, model preparation and the run-context columns of the results table."""

from __future__ import annotations

import contextlib
import re
from typing import Any, ContextManager

import torch
from torch import nn

from methods.base import invalid_choice, to_channels_last

DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N")
AMP_MODES = ("off", "bf16", "fp16")
_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """Turn a config string (auto|cpu|cuda|cuda:N) into a torch.device; auto = cuda if available else cpu."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", str(name))
    if match is None:
        raise invalid_choice("device", name, DEVICE_NAMES)
    if not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available here; use device=cpu or device=auto")
    index = int(match.group(1)) if match.group(1) is not None else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        valid = f"cuda:0..cuda:{count - 1}"
        raise ValueError(f"device {name!r} does not exist; this machine has {count} CUDA device(s): {valid}")
    return torch.device("cuda", index)


def device_label(device: torch.device) -> str:
    """The device string for the table: 'cpu' or 'cuda:0 NVIDIA H100 80GB HBM3'."""
    device = torch.device(device)
    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} {torch.cuda.get_device_name(index)}"


def autocast(device: torch.device, amp: str) -> ContextManager[Any]:
    """Mixed-precision context: off -> no-op, bf16/fp16 -> torch.autocast on the device's type.

    fp16 is refused on CPU (a clear error, no silent fallback): CPU fp16 matmuls are emulated on most
    CPUs and slow; use bf16 there.
    """
    check_amp(device, amp)
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=_AMP_DTYPES[amp])


def check_amp(device: torch.device, amp: str) -> None:
    """An amp mode the device can run: one of AMP_MODES, and not fp16 on CPU."""
    if amp not in AMP_MODES:
        raise invalid_choice("amp", amp, AMP_MODES)
    if amp == "fp16" and torch.device(device).type == "cpu":
        raise ValueError("amp='fp16' is not supported on cpu (emulated and slow); use amp=bf16 or amp=off")


def prepare_model(model: nn.Module, device: torch.device, channels_last: bool, compile: bool) -> nn.Module:
    """Move the model to the device, optionally to channels_last memory format, optionally torch.compile it.

    channels_last converts the 4-D weights (NHWC): cuDNN's tensor-core layout on CUDA, and oneDNN's fast one on
    CPU (googlenet's forward to inception4a runs 1.9x faster on this 2-core CPU); feed inputs made by
    `prepare_input` to match.
    torch.compile is lazy: compilation happens on the first call, so time that call apart (`measure`
    keeps it as `warmup_s`). The returned module shares parameters with the original.
    """
    model = model.to(device)
    if channels_last:
        model = to_channels_last(model)
    if compile:
        model = torch.compile(model)
    return model


def prepare_input(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """Move a batch to the device, in channels_last memory format when asked (4-D tensors only)."""
    x = x.to(device)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def run_context(
    device: torch.device, amp: str, channels_last: bool, compile: bool, batch_size: int
) -> dict[str, Any]:
    """The columns that describe how a run executed, added to every row of its table."""
    device = torch.device(device)
    return {
        "device": device_label(device),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda if device.type == "cuda" else None,
        "amp": amp,
        "channels_last": bool(channels_last),
        "compile": bool(compile),
        "threads": torch.get_num_threads(),
        "batch_size": int(batch_size),
    }
