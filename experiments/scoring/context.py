"""Everything a metric may need about one (method, target) result, built lazily and shared by all metrics."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Callable, Iterable

import torch
from torch import Tensor, nn

from experiments.adapters import Method, RunOptions, get_method
from experiments.config import MetricsConf
from experiments.data.spec import DataSpec
from experiments.data.stream import batches
from experiments.zoo.spec import ModelSpec
from methods.base import Normalize, Target, Visualization, read_out
from methods.graph import fast_forward

Row = dict[str, Any]


@dataclass
class Scoring:
    """One result's scoring context: the method, model, data, target, run options and metric settings."""

    method: Method
    spec: ModelSpec
    data: DataSpec
    target: Target
    params: dict[str, Any]
    opts: RunOptions
    settings: MetricsConf = field(default_factory=MetricsConf)
    _cuts: dict[tuple[str, bool], nn.Module] = field(default_factory=dict, init=False, repr=False)
    _memo: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def for_method(cls, name: str, spec: ModelSpec, data: DataSpec, target: Target, params: dict[str, Any] | None = None,
                   opts: RunOptions | None = None, **settings: Any) -> "Scoring":
        """A scoring context for registered method `name`; `settings` are MetricsConf fields (e.g. enabled=[...])."""
        return cls(get_method(name), spec, data, target, params or {}, opts or RunOptions(), MetricsConf(**settings))

    def wants(self, metric: str) -> bool:
        """Whether the run asked for `metric`."""
        return "all" in self.settings.enabled or metric in self.settings.enabled

    def meets(self, need: str, result: Visualization) -> bool:
        """Whether this run offers what a metric needs (see scoring.registry.NEEDS)."""
        return {
            "ground_truth": lambda: self.spec.ground_truth is not None,
            "masks": lambda: self.data.masks is not None,
            "labels": lambda: bool((self.data.labels >= 0).any()),
            "randomization": lambda: bool(self.settings.randomization),
            "randomization_curve": lambda: bool(self.settings.randomization_curve),
            "stochastic": lambda: self.method.stochastic,
            "layer": lambda: bool(self.target.layer),
            "several_images": lambda: result.images_per_unit > 1,
            "rerun": lambda: bool(self.settings.reruns),
            "approximate": lambda: getattr(result, "approx", None) is not None,
        }[need]()

    def memo(self, key: str, make: Callable[..., Any], *args: Any) -> Any:
        """`make(*args)` once per scoring context (e.g. a re-run of the method that several metrics compare with)."""
        if key not in self._memo:
            self._memo[key] = make(*args)
        return self._memo[key]

    def rerun(self, model: nn.Module | None = None, seed: int | None = None) -> Visualization:
        """The method again on this target, on another model or with another seed."""
        opts = self.opts if seed is None else replace(self.opts, seed=seed)
        return self.method.call(self.spec, self.data, self.target, self.params, opts,
                                self.spec.model if model is None else model)

    @cached_property
    def device(self) -> torch.device:
        return next(self.spec.model.parameters()).device

    @cached_property
    def normalize(self) -> Normalize:
        return self.spec.normalizer()

    def cut(self, layer: str, normalized: bool = True) -> nn.Module:
        """The model cut at `layer`, as the methods run it (methods.graph.fast_forward, the run's layout), built
        once per layer for all the metrics and units of this result; `normalized`: it takes [0, 1] images."""
        key = (layer, normalized)
        if key not in self._cuts:
            self._cuts[key] = fast_forward(self.spec.model, layer, self.normalize if normalized else None,
                                           self.opts.channels_last)
        return self._cuts[key]

    def scorer(self, layer: str | None = None, unit_index: int | None = None) -> Callable[[Tensor], Tensor]:
        """images [B, 3, H, W] in [0, 1] -> [B] score of one target unit (or [B, U] for all units)."""
        trunc = self.cut(self.target.layer if layer is None else layer)

        def score(x: Tensor) -> Tensor:
            with torch.inference_mode():
                out = read_out(trunc(x.to(self.device)), self.target).float().cpu()
            return out if unit_index is None else out[:, unit_index]

        return score

    @cached_property
    def natural(self) -> Tensor:
        """[N, U] target scores of every data image."""
        score = self.scorer()
        return torch.cat([score(batch) for batch in batches(self.data.images, 128, self.data.workers)])


def rows_for(result: Visualization, metric: str, values: Iterable[float]) -> list[Row]:
    """One row per unit."""
    return [{"unit": u, "metric": metric, "value": float(v)} for u, v in zip(result.units, values)]
