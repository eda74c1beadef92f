"""What the registry knows about a method: how to call it from a run, its params schema and its speed contenders."""
from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from torch import Tensor, nn

from experiments.data.spec import DataSpec
from experiments.zoo.spec import ModelSpec
from methods.base import Target, Visualization, invalid_choice

# arguments the runner supplies itself; everything else comes from the method config's `params`
SUPPLIED = ("model", "target", "images", "input_size", "normalize", "seed", "amp", "channels_last", "compile", "progress")
INPUTS = ("weights", "images", "optimized")  # first-layer weights, data images, inputs the method optimizes


@dataclass
class RunOptions:
    """Run-wide options every method honours where it applies."""

    seed: int = 0
    amp: str = "off"
    channels_last: bool = True
    compile: bool = False
    progress: bool = False
    n_images: int = 4
    images: tuple[int, ...] | None = None  # occlusion: these data images for every unit, not each unit's top ones


Call = Callable[[ModelSpec, DataSpec, Target, dict[str, Any], RunOptions, nn.Module], Visualization]
Merge = Callable[[ModelSpec, DataSpec, Target, dict[str, Any], RunOptions, list[dict[str, Any]]], Visualization]
# (spec, the whole data, target, params, opts, each shard's saved arrays: experiments.run.save_pictures) -> result


@dataclass(frozen=True)
class Method:
    """One registered method: everything the runner, scoring, saving and the speed experiment need to know."""

    name: str
    visualize: Callable[..., Visualization]  # the plain-PyTorch method in methods/
    call: Call  # (spec, data, target, params, opts, model) -> result: visualize fed from a run's model and data
    inputs: str  # one of INPUTS
    check: Callable[..., None]  # range checks of the params (keyword arguments), before any model is built
    schema: dict[str, tuple[Any, Any]]  # param name -> (type hint, default)
    batch: str | None = None  # the param halved after an out-of-memory error (None: all units at once)
    stochastic: bool = False  # results depend on the seed (scored for seed stability)
    default_targets: Callable[[nn.Module, list[Target], dict[str, Any]], list[Target]] | None = None  # (model, the
    # model's default targets, params) -> the targets when no layer is configured
    check_target: Callable[[ModelSpec, DataSpec, Target, dict[str, Any]], Any] | None = None  # refuses, before any
    # work, a target, model or data the method cannot run on with these params (one line)
    contenders: Callable[..., Any] | None = None  # (Setup, peers) -> (contenders, work): see experiments.contenders
    peers: dict[str, tuple[str, ...]] = field(default_factory=dict)  # peer contender -> modules it needs
    scaled: str = "images"  # what speed.scale multiplies: "images" (a case's images) or a param name (e.g. steps)
    smoke: Callable[[int], list[str]] | None = None  # input side -> Hydra overrides of a cheap run of this method
    # (experiments.coverage runs every method that has one on every model)
    sized: Callable[[dict[str, Any], tuple[int, int]], dict[str, Any]] | None = None  # (params, the data images'
    # (h, w)) -> params with sizes given relative to the images resolved to pixels (occlusion's window=auto)
    order: int = 99  # where the gallery lists it: the four families as the mission names them (weights 0,
    # gradient ascent 1, occlusion 2, top patches 3), others after
    merge: Merge | None = None  # the result of one pass over the whole data from its shards' (experiments.merge);
    # None: the method does not run on shards (data.num_shards > 1)

    def __post_init__(self) -> None:
        if self.inputs not in INPUTS:
            raise invalid_choice(f"inputs of method {self.name}", self.inputs, INPUTS)

    def defaults(self) -> dict[str, Any]:
        """Each param's default."""
        return {k: default for k, (_, default) in self.schema.items()}

    def check_params(self, params: dict[str, Any]) -> None:
        """Unknown key, wrong type or out-of-range value: one line naming the key, the value and the valid ones."""
        schema = self.schema
        for key, value in params.items():
            if key in SUPPLIED:
                raise ValueError(f"method.params.{key} is set by the run itself; set it at the top level ({key}=...)")
            if key not in schema:
                raise ValueError(f"method.params: {invalid_choice(f'{self.name} setting', key, schema)}")
            hint = schema[key][0]
            if not fits(value, hint):
                raise ValueError(f"method.params.{key}={value!r} should be {type_name(hint)}")
        try:
            self.check(**params)
        except (TypeError, ValueError) as err:
            key = str(err).partition("=")[0]
            raise ValueError(f"method.params.{err}" if key in schema else f"method.params: {err}") from None

    def batch_start(self, params: dict[str, Any], target: Target) -> int | None:
        """The first value of the batch param: as configured, else its default, else all units."""
        if self.batch is None:
            return None
        return params.get(self.batch) or self.defaults().get(self.batch) or len(target.units)


def signature_schema(fn: Callable[..., Any]) -> dict[str, tuple[Any, Any]]:
    """A params schema from `fn`'s keyword-only parameters that the runner does not supply."""
    hints = typing.get_type_hints(fn)
    params = inspect.signature(fn).parameters.values()
    return {p.name: (hints.get(p.name, Any), p.default) for p in params
            if p.kind is p.KEYWORD_ONLY and p.name not in SUPPLIED}


def dataclass_schema(cls: type) -> dict[str, tuple[Any, Any]]:
    """A params schema from a settings dataclass's fields (e.g. gradient ascent's Settings)."""
    hints = typing.get_type_hints(cls)
    return {f.name: (hints[f.name], f.default if f.default is not dataclasses.MISSING else f.default_factory())
            for f in dataclasses.fields(cls)}


def fits(value: Any, hint: Any) -> bool:
    """Whether a config value fits a type hint (int counts as float; lists as sequences and tuples)."""
    if hint is Any or value is None and _optional(hint):
        return True
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(fits(value, h) for h in typing.get_args(hint))
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (str, bool):
        return isinstance(value, hint)
    if origin in (list, tuple, collections.abc.Sequence):
        return isinstance(value, (list, tuple))
    if hint is Tensor or isinstance(hint, type):
        return isinstance(value, hint)
    return True  # hints a config value cannot be checked against (callables, objectives)


def _optional(hint: Any) -> bool:
    """Whether None is allowed by `hint`."""
    return hint is type(None) or type(None) in typing.get_args(hint)


def type_name(hint: Any) -> str:
    """A readable name of a type hint."""
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
