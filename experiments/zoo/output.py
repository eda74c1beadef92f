"""`model.output`: one tensor out of a forward that returns a tuple, list or dict (detection heads, dense
predictors, Hugging Face style outputs), with the model's module names unchanged."""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn


class OutputOf(nn.Module):
    """`model` whose forward returns `model(x)[key]`; its modules, parameters and names are the model's own."""

    def __init__(self, model: nn.Module, key: int | str) -> None:
        super().__init__()
        object.__setattr__(self, "wrapped", model)  # not a child: named_modules() stay conv1..., not wrapped.conv1...
        self._parameters, self._buffers, self._modules = model._parameters, model._buffers, model._modules
        self.key = key

    def forward(self, x: Tensor) -> Tensor:
        return self.wrapped.forward(x)[self.key]

    def train(self, mode: bool = True) -> OutputOf:
        """Set train/eval mode here, on the wrapped model (whose forward may read self.training) and its modules."""
        self.wrapped.training = mode
        return super().train(mode)


def describe(value: Any) -> str:
    """A few words for an output: 'Tensor [1, 21, 16, 16]' or its type name."""
    return f"Tensor {list(value.shape)}" if isinstance(value, Tensor) else type(value).__name__


def choices(out: Any) -> dict[Any, Any]:
    """The model.output values an output offers: a tuple's or list's indices, a dict's keys."""
    if isinstance(out, dict):
        return dict(out)
    if isinstance(out, (tuple, list)):
        return dict(enumerate(out))
    return {}


def listing(out: Any) -> str:
    """The choices of `out` with what each holds: '0 (Tensor [1, 5]), 1 (tuple)'."""
    return ", ".join(f"{key} ({describe(value)})" for key, value in choices(out).items())


def select(out: Any, key: int | str | None, name: str) -> tuple[int | str | None, Tensor]:
    """The model.output key (as the output spells it) and the tensor it picks out of the output `out` of model
    `name`; one line naming the valid keys when `key` is unset or picks no tensor."""
    if key is None:
        if isinstance(out, Tensor):
            return None, out
        offered = listing(out)
        fix = f": set model.output to one of {offered}" if offered else ""
        raise ValueError(f"model {name!r} returns a {type(out).__name__}, not one tensor{fix}")
    if isinstance(out, Tensor):
        raise ValueError(f"model.output={key!r} is set but model {name!r} returns one tensor {list(out.shape)}: "
                         "unset it (model.output=null)")
    found = next((k for k in choices(out) if k == key or str(k) == str(key)), None)
    if found is None:
        raise ValueError(f"unknown model.output {key!r}: model {name!r} returns a {type(out).__name__}; "
                         f"valid: {listing(out) or 'none'}")
    picked = choices(out)[found]
    if not isinstance(picked, Tensor):
        raise ValueError(f"model.output={key!r} picks a {type(picked).__name__}, not a tensor; valid: {listing(out)}")
    return found, picked
