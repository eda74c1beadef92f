"""What the speed experiment times: a case, the setup its contenders share, and the contenders themselves.

Each method's adapter (experiments/adapters/<method>.py) builds its contenders from a Setup: vizbench, the
bare truncated model doing the same passes (the limit), and its peers.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor, nn

from experiments.data.stream import LazyImages
from experiments.devices import prepare_model
from methods.base import Target, copy_module
from methods.graph import fast_forward


@dataclass
class Case:
    """One timed comparison: a method on a model's layer and units, at one resolution and amount of work."""

    name: str
    method: str
    model: str  # a conf/model/<name>.yaml
    layer: str = ""
    units: Any = 1  # n = the first n units, or a list of indices
    kind: str = "channel"
    position: Any = None
    input_size: int | None = None  # None: the model's
    data: str = "shapes"
    data_params: dict[str, Any] = field(default_factory=dict)  # data.* overrides, e.g. {stream: true, workers: 4};
    # data=image_folder without data.root: a folder of `images` shapes PNGs (experiments.data.shapes_folder)
    images: int = 4  # occlusion: images occluded; top patches: images searched
    params: dict[str, Any] = field(default_factory=dict)  # the method's keyword arguments
    targets: dict[str, float] = field(default_factory=dict)  # e.g. {vs_bare: 1.2, vs_peer: 0.33}
    repeats: int | None = None  # None: speed.repeats
    warmup: int | None = None  # None: speed.warmup (0 for cases whose contenders take minutes)
    approx: float | None = None  # occlusion: also time the approximate incremental engine at this threshold

    def __post_init__(self) -> None:
        self.params = dict(self.params)
        self.data_params = dict(self.data_params)

    def target(self) -> Target:
        """The vizbench Target of this case."""
        units = tuple(range(self.units)) if isinstance(self.units, int) else tuple(int(u) for u in self.units)
        position = tuple(self.position) if self.position is not None else None
        return Target(self.layer, units, self.kind, position)

    def scaled(self, scale: float, what: str, default: int) -> "Case":
        """This case with `what` (its images, or a param whose default is `default`) times `scale`, at least 1."""
        if scale <= 0:
            raise ValueError(f"speed.scale={scale} must be > 0")
        out = copy.deepcopy(self)
        if what == "images":
            out.images = max(1, round(self.images * scale))
        else:
            out.params[what] = max(1, round(self.params.get(what, default) * scale))
        return out


@dataclass
class Contender:
    """A timed function doing the case's work one way; `variant` tells settings of one contender apart.

    Names: vizbench (what a user gets), vizbench_full (vizbench's full-forward path where vizbench computes
    incrementally), vizbench_approx (its approximate mode), bare (the limit), and the method's peers."""

    name: str
    fn: Callable[[], Any]
    variant: str = ""
    batch_size: int | None = None
    eager_fp32: bool = False  # a peer with no amp or compile option: it runs as it is, whatever the run asks


@dataclass
class Setup:
    """What a case's contenders share: model, input, run options."""

    case: Case
    model: nn.Module
    normalize: nn.Module
    images: Tensor | LazyImages | None  # lazy: a streamed source, batched by experiments.data.stream.batches
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    device: torch.device
    amp: str
    channels_last: bool
    compile: bool  # vizbench and bare compile (only where the method has a compile option)
    seed: int
    peers: bool
    params: dict[str, Any] = field(default_factory=dict)  # the case's params over the method's defaults
    notes: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)  # vizbench's last result facts the bare work needs
    checks: dict[str, Callable[[], float]] = field(default_factory=dict)  # numbers vizbench's rows get after timing
    workers: int = 0  # DataLoader workers decoding streamed images (the data's data.workers)


def formatted(s: Setup) -> nn.Module:
    """A copy of the model in the run's memory format (contenders never change the shared model)."""
    return prepare_model(copy_module(s.model), s.device, s.channels_last, compile=False)


def bare_module(s: Setup) -> nn.Module:
    """The bare limit's model: the graph the methods run (fx, BatchNorm folded, the run's layout), compiled when
    vizbench compiles too."""
    net = fast_forward(s.model, s.case.layer, s.normalize, s.channels_last)
    return torch.compile(net) if s.compile else net


def failing(err: Exception) -> Callable[[], Any]:
    """A contender function that raises `err` when timed, so the contender is recorded as failed."""
    def fail() -> Any:
        raise err
    return fail
