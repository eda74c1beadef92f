"""The model zoo: torchvision and timm by name, user models with checkpoints, the built-in planted and shapes_cnn."""
from __future__ import annotations

from typing import Any

from experiments.builders import call_builder, plain
from experiments.zoo.defaults import auto_targets
from experiments.zoo.output import OutputOf, select
from experiments.zoo.probe import trace
from experiments.zoo.spec import ModelSpec

__all__ = ["ModelSpec", "auto_targets", "build_model", "config_targets"]


def build_model(cfg: Any) -> ModelSpec:
    """Build the model a `model` config describes: its `_target_` (or conf/model/<source>.yaml's), the one output
    tensor `model.output` picks, then its targets (model.targets, else the option's, the builder's or auto_targets)."""
    spec = call_builder("model", cfg, "source")
    probe = trace(spec.model, spec.hw, spec.in_channels, spec.name)
    key, out = select(probe.output, plain(cfg.get("output")), spec.name)
    if key is not None:
        spec.model = OutputOf(spec.model, key).eval()
    if spec.num_classes is None and out.dim() in (2, 4):  # logits [N, K] or a dense map [N, K, H, W]
        spec.num_classes = int(out.shape[1])
    chosen = config_targets(cfg.get("targets"), "model.targets") or config_targets(cfg.get("default_targets"),
                                                                                 "model.default_targets")
    spec.default_targets = chosen or spec.default_targets or auto_targets(spec.model, spec.hw, spec.in_channels,
                                                                          probe=probe)
    return spec


def config_targets(value: Any, key: str) -> dict[str, list[int]]:
    """{layer: units} from a config's targets: nested keys joined with dots (`model.targets.layer2.1.conv2=[0]`
    arrives as {layer2: {1: {conv2: [0]}}}), a count n meaning the first n units; one line on anything else."""
    found: dict[str, list[int]] = {}
    for layer, units in (plain(value) or {}).items():
        name = f"{key}.{layer}"
        if isinstance(units, dict):
            found.update({f"{layer}.{sub}": u for sub, u in config_targets(units, name).items()})
        elif isinstance(units, int) and not isinstance(units, bool) and units >= 1:
            found[str(layer)] = list(range(units))
        elif isinstance(units, list) and units and all(isinstance(u, int) and not isinstance(u, bool) for u in units):
            found[str(layer)] = units
        else:
            raise ValueError(f"{name}={units!r} must be a list of unit indices or a count n (the first n units)")
    return found
