"""Calling the builder function a `model` or `data` config names in `_target_` (see conf/model/, conf/data/)."""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any, Callable

from omegaconf import OmegaConf

from methods.base import invalid_choice, one_line

CONF = Path(__file__).resolve().parents[1] / "conf"
NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def options(group: str) -> list[str]:
    """Option names of a config group: the stems of conf/<group>/*.yaml."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def option_target(group: str, option: str) -> str:
    """The `_target_` of conf/<group>/<option>.yaml."""
    return OmegaConf.load(CONF / group / f"{option}.yaml")._target_


def valid_targets(group: str) -> list[str]:
    """The builders the options of a config group name, each once."""
    return sorted({option_target(group, option) for option in options(group)})


def target_path(group: str, cfg: Any, fallback: str) -> str:
    """`cfg._target_`, or where unset the `_target_` of the option that `cfg[fallback]` names."""
    if cfg.get("_target_"):
        return cfg["_target_"]
    option = cfg.get(fallback)
    if option not in options(group):
        raise invalid_choice(f"{group}.{fallback}", option, options(group))
    return option_target(group, option)


def locate(group: str, path: str) -> Callable[..., Any]:
    """The function at the import path `package.module.function`; one line naming it and the valid ones if absent."""
    module, _, name = path.rpartition(".")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise invalid_choice(f"{group}._target_", path, valid_targets(group), f" ({one_line(err)})") from None
    if not callable(fn):
        raise invalid_choice(f"{group}._target_", path, valid_targets(group), f" (not callable: {type(fn).__name__})")
    return fn


def plain(value: Any) -> Any:
    """A config value as plain Python (lists and dicts instead of ListConfig and DictConfig)."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def call_builder(group: str, cfg: Any, fallback: str, **extra: Any) -> Any:
    """Call the config's `_target_` with the config fields its parameters name, plus `extra` (e.g. size)."""
    path = target_path(group, cfg, fallback)
    fn = locate(group, path)
    return fn(**arguments(group, path, fn, cfg, extra))


def check_builder(group: str, cfg: Any, fallback: str) -> None:
    """Run the cheap config check of the config's builder, where its module defines one (`check_<builder name>`,
    taking config fields by name like the builder): bad names and tags stop before any job builds anything."""
    path = target_path(group, cfg, fallback)
    fn = locate(group, path)
    check = getattr(inspect.getmodule(fn), f"check_{fn.__name__}", None)
    if check is not None:
        check(**arguments(group, path, check, cfg, {}))


def takes(group: str, cfg: Any, fallback: str) -> list[str]:
    """The config fields the config's builder takes (not what the run supplies, e.g. a data source's size)."""
    fn = locate(group, target_path(group, cfg, fallback))
    return [name for name, p in inspect.signature(fn).parameters.items() if p.kind in NAMED and name in cfg.keys()]


def arguments(group: str, path: str, fn: Callable[..., Any], cfg: Any, extra: dict[str, Any]) -> dict[str, Any]:
    """The config fields `fn`'s parameters name, plus `extra`; one line naming the missing required ones."""
    params = inspect.signature(fn).parameters
    missing_values = [name for name in params if name in cfg.keys() and OmegaConf.is_missing(cfg, name)]
    kwargs = {name: plain(cfg[name]) for name in params if name in cfg.keys() and name not in extra
              and name not in missing_values}
    kwargs.update(extra)
    missing = [name for name, p in params.items() if p.kind in NAMED and p.default is p.empty and name not in kwargs]
    if missing:
        raise ValueError(f"{group}._target_={path!r} needs {', '.join(f'{group}.{m}' for m in missing)}")
    return kwargs
