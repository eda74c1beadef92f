"""Validate a run's config before any work: every check that needs no model, for a run or each job of a sweep."""
from __future__ import annotations

import importlib
from typing import Any

from omegaconf import DictConfig, OmegaConf

from experiments.adapters import Method, get_method, registry
from experiments.builders import check_builder, takes
from experiments.config import VizbenchConf
from experiments.data.shard import check_shard
from experiments.devices import check_amp, resolve_device
from experiments.metrics import mis
from experiments.metrics.sanity import MODES as RANDOMIZATION_MODES
from experiments.scoring import metric_names
from methods.base import invalid_choice, one_line

OPEN = ("method.params", "model.targets", "speed.cases")  # dicts whose keys the method or the model defines
BUILT = {"model": ("source", ("_target_", "source", "name", "targets", "default_targets", "output")),
         "data": ("name", ("_target_", "name", "shard", "num_shards"))}
# group: (the field naming its option, the fields every run reads whatever the builder)


def unknown_keys(cfg: DictConfig, schema: Any = None, prefix: str = "") -> None:
    """A key the schema does not know (e.g. `+metrics.randomisation=false`) fails naming it and the valid ones."""
    schema = OmegaConf.structured(VizbenchConf) if schema is None else schema
    for key in cfg.keys():
        path = f"{prefix}{key}"
        if path == "hydra" or path in OPEN:
            continue
        if key not in schema:
            raise unknown_key(path)
        if OmegaConf.is_dict(cfg[key]) and OmegaConf.is_dict(schema[key]):
            unknown_keys(cfg[key], schema[key], f"{path}.")


def unknown_key(path: str) -> ValueError:
    """The error for a config key the schema lacks: its close matches and the valid keys beside it."""
    node: Any = OmegaConf.structured(VizbenchConf)
    parent, _, _ = path.rpartition(".")
    for part in parent.split(".") if parent else ():
        if not OmegaConf.is_dict(node) or part not in node:
            return invalid_choice("config key", path, [str(k) for k in OmegaConf.structured(VizbenchConf).keys()])
        node = node[part]
    prefix = f"{parent}." if parent else ""
    return invalid_choice("config key", path, [f"{prefix}{k}" for k in node.keys()])


def check_metrics(metrics: DictConfig) -> None:
    """metrics.enabled names declared metrics (or all); randomization_mode, mis_tasks, mis_references and auc_steps
    are in range; mis_embedding imports and mis_temperature is set where the embedding has no calibrated one."""
    known = ["all", *metric_names()]
    for name in metrics.enabled:
        if name not in known:
            raise invalid_choice("metrics.enabled entry", name, known)
    if metrics.randomization_mode not in RANDOMIZATION_MODES:
        raise invalid_choice("metrics.randomization_mode", metrics.randomization_mode, RANDOMIZATION_MODES)
    if metrics.mis_tasks < 1:
        raise ValueError(f"metrics.mis_tasks={metrics.mis_tasks} must be >= 1")
    if metrics.mis_references < 1:
        raise ValueError(f"metrics.mis_references={metrics.mis_references} must be >= 1")
    mis.embedding(metrics.mis_embedding)
    mis.temperature_for(metrics.mis_embedding, metrics.mis_temperature)
    if metrics.auc_steps < 2:
        raise ValueError(f"metrics.auc_steps={metrics.auc_steps} must be >= 2")


def check_speed(speed: DictConfig) -> None:
    """The speed experiment's counts and scales are in range."""
    bounds = {"repeats": (speed.repeats, 1), "warmup": (speed.warmup, 0), "threads": (speed.threads or 1, 1)}
    for key, (value, low) in bounds.items():
        if value < low:
            raise ValueError(f"speed.{key}={value} must be >= {low}")
    for key in ("budget_s", "scale"):
        if not speed[key] > 0:
            raise ValueError(f"speed.{key}={speed[key]} must be > 0")


def check_runner(runner: str) -> None:
    """The runner names an importable function."""
    module, _, name = runner.rpartition(".")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"runner={runner!r} does not import ({one_line(err)}); the default is "
                         f"{VizbenchConf.runner}") from None
    if not callable(fn):
        raise ValueError(f"runner={runner!r} is a {type(fn).__name__}, not a function")


def unused_overrides(cfg: DictConfig, overrides: list[str]) -> None:
    """A model.* or data.* override the builder does not take would change nothing: refused, naming what it takes
    (e.g. model.input_size for torchvision models, which bring their own)."""
    for override in overrides:
        group, _, field = override.lstrip("+~").partition("=")[0].partition(".")
        if group not in BUILT or not field or "." in field:
            continue
        option, generic = BUILT[group]
        used = takes(group, cfg[group], option)
        if field not in used and field not in generic:
            raise ValueError(f"{group}.{field} is not used by {group}={cfg[group][option]} (its builder takes "
                             f"{', '.join(f'{group}.{u}' for u in used) or 'no fields'}): the override would change nothing")


def check_mergeable(method: Method, num_shards: int) -> None:
    """Shards (data.num_shards > 1) only for a method whose shard results experiments.merge combines."""
    if num_shards > 1 and method.merge is None:
        mergeable = [m.name for m in registry().values() if m.merge is not None]
        raise ValueError(f"method={method.name} cannot run on shards (data.num_shards={num_shards}): only "
                         f"method={'|'.join(mergeable) or '(none)'} can (experiments.merge combines those shards into "
                         "one result); set data.num_shards=1")


def check_run(cfg: DictConfig) -> Method:
    """Every check that needs no model or data; return the run's method."""
    unknown_keys(cfg)
    check_runner(cfg.runner)
    method = get_method(cfg.method.name)
    method.check_params(OmegaConf.to_container(cfg.method.params, resolve=True))
    if cfg.method.n_images < 1:
        raise ValueError(f"method.n_images={cfg.method.n_images} must be >= 1")
    check_amp(resolve_device(cfg.device), cfg.amp)
    check_builder("model", cfg.model, "source")
    check_builder("data", cfg.data, "name")
    check_mergeable(method, cfg.data.get("num_shards", 1))
    check_shard(cfg.data.get("shard"), cfg.data.get("num_shards", 1))
    check_metrics(cfg.metrics)
    check_speed(cfg.speed)
    return method
