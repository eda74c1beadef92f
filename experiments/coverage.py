"""`python -m experiments.coverage`: every method at tiny settings on the default targets of many models, one row per
(model, method) saying ok or the first failure, so "runs on any model" is a table, not a claim.

    python -m experiments.coverage                      # every torchvision classifier (random init)
    python -m experiments.coverage --models resnet18,vit_b_16 --source timm --out results/coverage.csv

Each model is built once and every method runs through the run's own path (default targets, the method's target
check, `experiments.run.visualize_target`), with no quality metrics. Exits non-zero when any row failed.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Sequence

import pandas as pd
import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from experiments.adapters import RunOptions, get_method, registry
from experiments.data import build_data
from experiments.run import method_params, targets_for, visualize_target
from experiments.zoo import build_model
from experiments.zoo.spec import ModelSpec
from methods.base import one_line



def smoke_methods() -> list[str]:
    """The registered methods with a smoke run (Method.smoke), in registry order."""
    return [name for name, method in registry().items() if method.smoke is not None]


def compose(*overrides: str) -> DictConfig:
    """The run config as `python -m experiments.run` composes it, with `overrides`."""
    from hydra import compose as hydra_compose, initialize_config_module

    from experiments.config import register

    register()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        return hydra_compose(config_name="config", overrides=["hydra.mode=RUN", *overrides])


def check_method(spec: ModelSpec, data: Any, cfg: DictConfig) -> dict[str, Any]:
    """One method on the configured target (default: the model's default targets): status, layers and seconds."""
    method = get_method(cfg.method.name)
    params = method_params(cfg)
    opts = RunOptions(seed=0, channels_last=True, n_images=cfg.method.n_images,
                      images=tuple(cfg.method.images) if cfg.method.images is not None else None)
    start = time.perf_counter()
    layers: list[str] = []
    try:
        for target in targets_for(cfg, method, spec):
            layers.append(target.layer or "output")
            if method.check_target:
                method.check_target(spec, data, target, params)
            visualize_target(method, spec, data, target, params, opts)
        status = "ok"
    except Exception as err:  # every failure is a row: the table is the point
        status = f"failed: {one_line(err)}"
    return {"method": method.name, "status": status, "layers": ",".join(layers),
            "seconds": round(time.perf_counter() - start, 2)}


def check_model(overrides: Sequence[str], methods: Sequence[str] | None = None, name: str | None = None
                ) -> list[dict[str, Any]]:
    """Rows for every method on the model `overrides` configure (e.g. model=torchvision model.name=vgg11 data=skimage),
    built once; a model or data source that cannot be built fails every method."""
    torch.manual_seed(0)
    methods = smoke_methods() if methods is None else methods
    base = ["data=skimage", "data.n=7", "progress=false", *overrides]  # few images: 80 models stay fast
    try:
        cfg = compose(*base)
        name = name or cfg.model.name or cfg.model.source
        spec = build_model(cfg.model)
        data = build_data(cfg.data, spec.hw, spec.in_channels)
    except Exception as err:  # noqa: BLE001 - reported per method below
        return [{"model": name, "method": m, "status": f"failed: {one_line(err)}", "layers": "", "seconds": 0.0}
                for m in methods]
    return [{"model": name, **check_method(spec, data, compose(*base, *get_method(m).smoke(min(spec.hw))))}
            for m in methods]


def model_names(source: str, models: str | None) -> list[str]:
    """The models to check: the comma-separated `models`, or every classifier the source lists."""
    if models:
        return [m for m in models.split(",") if m]
    if source == "torchvision":
        from experiments.zoo.torchvision_models import classification_models

        return classification_models()
    raise ValueError(f"--source {source} needs --models (a comma-separated list of model names)")


def table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Models x methods: 'ok' or the failure."""
    df = pd.DataFrame(rows)
    return df.pivot(index="model", columns="method", values="status").reindex(columns=list(dict.fromkeys(df.method)))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check, print the table and the counts; 1 if anything failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="torchvision", help="model source (conf/model option): torchvision, timm")
    parser.add_argument("--models", default=None, help="comma-separated model names (default: every torchvision classifier)")
    parser.add_argument("--methods", default=None, help="comma-separated methods (default: every one with a smoke run)")
    parser.add_argument("--out", default=None, help="write the rows as CSV here")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    names = model_names(args.source, args.models)
    methods = args.methods.split(",") if args.methods else smoke_methods()
    for name in tqdm(names, desc="models", file=sys.stderr, disable=not sys.stderr.isatty()):
        rows += check_model([f"model={args.source}", f"model.name={name}"], methods, name)
        print(f"{name}: " + ", ".join(f"{r['method']} {r['status'][:60]} ({r['seconds']} s)" for r in rows[-len(methods):]),
              file=sys.stderr, flush=True)
        if args.out:  # after every model, so a run killed on the next one (out of memory) keeps what it measured
            pd.DataFrame(rows).to_csv(args.out, index=False)
    df = pd.DataFrame(rows)
    print(table(rows).to_markdown())
    ok = df.status.eq("ok").groupby(df.method).agg(["sum", "size"])
    print("\n" + ", ".join(f"{m}: {int(r['sum'])}/{int(r['size'])}" for m, r in ok.iterrows()))
    return 0 if df.status.eq("ok").all() else 1


if __name__ == "__main__":
    sys.exit(main())
