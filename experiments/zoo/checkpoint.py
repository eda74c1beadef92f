"""Reading state dict files (weights_only=True) and loading them into models, with one-line errors naming the file."""
from __future__ import annotations

import importlib.util
import logging
import os
import re
import zipfile
from typing import Any

import torch
from torch import Tensor, nn

from methods.base import one_line

WRAPPERS = ("state_dict", "model")  # training checkpoints often keep the weights under one of these keys
PREFIXES = ("module.", "_orig_mod.")  # key prefixes of (Distributed)DataParallel and torch.compile models
SAVE_HINT = "save one with torch.save(model.state_dict(), path)"
SHOWN = 3  # keys named per kind of mismatch
log = logging.getLogger("vizbench")


def _load(path: str) -> Any:
    """torch.load with weights_only=True (zip-format files memory-mapped: nothing read until used); .safetensors
    files with safetensors."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        return load_file(path, device="cpu")
    return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))


def load_problem(path: str, err: BaseException) -> str:
    """What a failed torch.load of `path` says about the file, as the end of a sentence that starts with the file."""
    text = str(err)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found:
        return (f"holds pickled Python objects ({found.group(1)}), and only state dicts are loaded "
                f"(torch.load weights_only=True): {SAVE_HINT}")
    size = os.path.getsize(path)
    if size == 0:
        return "is empty (0 bytes)"
    with open(path, "rb") as f:
        zipped = f.read(4) == b"PK\x03\x04"
    if zipped and not zipfile.is_zipfile(path):
        return f"is truncated or corrupt: a zip archive as torch.save writes, but its end is missing ({size} bytes)"
    operand = re.search(r"Unsupported operand \d+", text)
    if operand:
        return f"is corrupt or not a torch.save file (the weights-only unpickler stops at: {operand.group(0)})"
    return f"is corrupt or truncated ({_first_sentence(one_line(err))})"


def _first_sentence(text: str, limit: int = 160) -> str:
    """The first sentence of `text`, cut to `limit` characters."""
    return _short(text.split(". ")[0].rstrip("."), limit)


def _short(text: str, limit: int = 160) -> str:
    """`text` cut to `limit` characters."""
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def read_state_dict(path: str, what: str, hint: str = "") -> dict[str, Tensor]:
    """The state dict in the file at `path` (or under its 'state_dict'/'model' key); one line starting with `what`.

    `what` names the file and its config key (e.g. "model.checkpoint '/x/a.pt'"); `hint` ends every error.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found (no such file){hint}")
    if path.endswith(".safetensors") and importlib.util.find_spec("safetensors") is None:
        raise ValueError(f"{what} is a .safetensors file, and reading one needs `pip install safetensors`{hint}")
    try:
        state = _load(path)
    except Exception as err:  # torch.load on a damaged file raises almost any type, each meaning "unreadable"
        raise ValueError(f"{what} {load_problem(path, err)}{hint}") from None
    for key in WRAPPERS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{what} holds a {type(state).__name__}, not a state dict: {SAVE_HINT}{hint}")
    odd = [f"{k}: {type(v).__name__}" for k, v in state.items() if not isinstance(v, Tensor)]
    if odd:
        raise ValueError(f"{what} is not a state dict: non-tensor entries {_names(odd)}; {SAVE_HINT} "
                         f"(or keep the weights under {' or '.join(map(repr, WRAPPERS))}){hint}")
    return state


def _names(items: list[str]) -> str:
    """The first SHOWN items, comma-separated, with how many more there are."""
    more = f" (+{len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def describe(shapes: list[str], missing: list[str], unexpected: list[str]) -> str | None:
    """One line naming a few shape mismatches, missing and unexpected keys; None when there are none."""
    parts = [_names(shapes)] if shapes else []
    parts += [f"{kind} keys {_names(keys)}" for kind, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
    return "; ".join(parts) or None


def shape_mismatches(model: nn.Module, state: dict[str, Tensor]) -> list[str]:
    """Each key whose tensor in `state` has another shape than in `model`, with both shapes."""
    own = model.state_dict()
    return [f"{k} is {list(state[k].shape)} in the file but {list(v.shape)} in the model"
            for k, v in own.items() if k in state and state[k].shape != v.shape]


def unwrap(state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """`state` without the key prefixes DataParallel, DistributedDataParallel and torch.compile add ('module.',
    '_orig_mod.', nested in any order), where every key has one and the model's own keys do not."""
    own = model.state_dict().keys()
    while state:
        prefix = next((p for p in PREFIXES if all(k.startswith(p) for k in state)
                       and not any(k.startswith(p) for k in own)), None)
        if prefix is None:
            break
        state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def load_into(model: nn.Module, state: dict[str, Tensor], what: str, hint: str = "", strict: bool = True) -> nn.Module:
    """`model` with `state` loaded; one line starting with `what` naming the keys or shapes that don't fit. With
    `strict` off, the tensors that fit are loaded and the others listed in one log line."""
    state = unwrap(state, model)
    shapes = shape_mismatches(model, state)
    if not strict:
        return load_fitting(model, state, what, hint, shapes)
    try:  # strict=False: torch says which keys are missing or unexpected (honouring modules' own loading rules)
        missing, unexpected = ([], []) if shapes else model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # what the shape check does not foresee
        raise ValueError(f"{what} does not fit {type(model).__name__}: {load_error(err)}{hint}") from None
    problem = describe(shapes, missing, unexpected)
    if problem:
        raise ValueError(f"{what} does not fit {type(model).__name__}: {problem}{hint}")
    return model


def load_fitting(model: nn.Module, state: dict[str, Tensor], what: str, hint: str, shapes: list[str]) -> nn.Module:
    """`model` with the tensors of `state` that fit it loaded, the rest listed in one log line; one line if none fit."""
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fitting:
        raise ValueError(f"{what} has no tensor that fits {type(model).__name__} (model.strict=false loads what "
                         f"fits, and nothing does){hint}")
    try:
        missing = model.load_state_dict(fitting, strict=False).missing_keys
    except RuntimeError as err:
        raise ValueError(f"{what} does not fit {type(model).__name__}: {load_error(err)}{hint}") from None
    unexpected = [k for k in state if k not in own]
    skipped = "; ".join(part for part in (f"missing keys {', '.join(missing)}" if missing else "",
                                          f"unexpected keys {', '.join(unexpected)}" if unexpected else "",
                                          ", ".join(shapes)) if part)
    log.warning(f"{what}: loaded {len(fitting)} of the model's {len(own)} tensors (model.strict=false)"
                f"{'; not loaded: ' + skipped if skipped else ''}")
    return model


def load_error(err: RuntimeError) -> str:
    """torch's multi-line load_state_dict error as one line in `describe`'s words."""
    keys: dict[str, list[str]] = {"missing": [], "unexpected": [], "shapes": []}
    for line in str(err).splitlines()[1:]:
        listed = re.match(r"\s*(Missing|Unexpected) key\(s\) in state_dict: (.*)", line)
        size = re.match(r"\s*size mismatch for (\S+): copying a param with shape torch.Size\((.*?)\) from checkpoint, "
                        r"the shape in current model is torch.Size\((.*?)\)", line)
        if listed:
            keys[listed.group(1).lower()] += re.findall(r'"([^"]+)"', listed.group(2))
        elif size:
            keys["shapes"].append(f"{size.group(1)} is {size.group(2)} in the file but {size.group(3)} in the model")
    return describe(keys["shapes"], keys["missing"], keys["unexpected"]) or _short(one_line(err))
