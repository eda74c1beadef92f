"""`python -m experiments.run`: run one method on one model's targets, score it, and write the results table."""
from __future__ import annotations

import inspect
import logging
import sys
import traceback
from pathlib import Path
from typing import Any

import hydra
import pandas as pd
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from experiments import tables
from experiments.adapters import RunOptions, call_method, check_params, method_function
from experiments.config import register
from experiments.data import build_data
from experiments.devices import device_label, resolve_device
from experiments.scoring import Scoring
from experiments.scoring import score as score_result
from experiments.targets import resolve_targets
from experiments.timing import measure, speed_rows, with_oom_retry
from experiments.zoo import build_model
from methods.base import Target

log = logging.getLogger("vizbench")
register()


def run_id(out: Path) -> str:
    """The run folder relative to the working directory when it lies below it (e.g. results/sweeps/<date>/<time>/3)."""
    try:
        return str(out.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(out)


def output_dir(cfg: DictConfig) -> Path:
    """The run folder: Hydra's output dir inside an app, else cfg.output_dir (tests)."""
    if "output_dir" in cfg:
        return Path(cfg.output_dir)
    return Path(HydraConfig.get().runtime.output_dir)


def overrides_columns() -> dict[str, str]:
    """One column per Hydra override of this job (e.g. {'model': 'planted', 'seed': '1'})."""
    if not HydraConfig.initialized():
        return {}
    cols = {}
    for item in HydraConfig.get().overrides.task:
        key, _, value = item.lstrip("+~").partition("=")
        if key not in tables.COLUMNS:
            cols[key] = value
    return cols


def run_context(cfg: DictConfig, out: Path, spec_weights: str | None = None, device: torch.device | None = None) -> dict[str, Any]:
    """Columns shared by every row of this run (weights and device stay empty for a run that could not start)."""
    return {
        "run_id": run_id(out), "experiment": cfg.experiment, "method": cfg.method.name, "preset": cfg.method.preset,
        "model": cfg.model.name or cfg.model.source, "weights": spec_weights, "data": cfg.data.name,
        "seed": cfg.seed, "device": device_label(device) if device is not None else None, **overrides_columns(),
    }


def visualize_target(cfg: DictConfig, spec: Any, data: Any, target: Target, opts: RunOptions) -> tuple[Any, list[dict]]:
    """Run the method once on one target; return the visualization and its own rows (values, time, memory)."""
    params = OmegaConf.to_container(cfg.method.params, resolve=True)
    device = next(spec.model.parameters()).device
    result: list[Any] = []
    timing = measure(lambda: result.append(call_with_oom_retry(cfg.method.name, spec, data, target, params, opts)),
                     device, repeats=1, warmup=0, memory=device.type == "cuda")
    vis, batch_used = result[0]
    layer = vis.extras.get("layer", target.layer)
    work = {"units": len(vis.units)}
    if "images_processed" in vis.extras:
        work["images"] = int(vis.extras["images_processed"])
    if "perturbations" in vis.extras:
        work["perturbations"] = int(vis.extras["perturbations"])
    rows = [{"layer": layer, "unit": None, **r} for r in speed_rows(timing, work)]
    if batch_used is not None:
        rows.append({"layer": layer, "unit": None, "metric": "batch_size_used", "value": float(batch_used)})
    for name, values in vis.values.items():
        for unit, value in zip(vis.units, values.tolist()):
            rows.append({"layer": layer, "unit": unit, "metric": name, "value": float(value)})
    return vis, rows


def batch_knob(name: str, params: dict, target: Target) -> tuple[str, int] | None:
    """The method's batch knob and its first value: batch_size, or gradient ascent's units_per_batch (all units)."""
    sig = inspect.signature(method_function(name)).parameters
    if "batch_size" in sig:
        return "batch_size", params.get("batch_size", sig["batch_size"].default)
    if name == "gradient_ascent":
        return "units_per_batch", params.get("units_per_batch") or len(target.units)
    return None


def call_with_oom_retry(name: str, spec: Any, data: Any, target: Target, params: dict, opts: RunOptions) -> tuple[Any, int | None]:
    """Run the method; on CUDA out-of-memory halve its batch knob (see batch_knob) and retry."""
    knob = batch_knob(name, params, target)
    if knob is None:
        return call_method(name, spec, data, target, params, opts), None
    key, start = knob
    return with_oom_retry(lambda b: call_method(name, spec, data, target, {**params, key: b}, opts), start)


def save_pictures(out: Path, method: str, layer: str, vis: Any) -> None:
    """One grid per (method, layer), one picture per unit, and the raw arrays."""
    per_unit = max(1, len(vis.images) // max(1, len(vis.units)))
    tables.save_grid(vis.images, out / "grids" / f"{tables.safe_name(method, layer)}.png", nrow=per_unit if per_unit > 1 else 8)
    for i, unit in enumerate(vis.units):
        imgs = vis.images[i * per_unit:(i + 1) * per_unit]
        tables.save_grid(imgs, out / "units" / f"{tables.safe_name(method, layer, unit)}.png", nrow=min(per_unit, 9))
    arrays = {"images": vis.images, "units": vis.units, "values": vis.values,
              "extras": {k: v for k, v in vis.extras.items() if isinstance(v, (torch.Tensor, int, float, str, tuple, list))}}
    tables.save_arrays(arrays, out / "arrays" / f"{tables.safe_name(method, layer)}.pt")


def score(cfg: DictConfig, spec: Any, data: Any, target: Target, vis: Any, opts: RunOptions) -> list[dict]:
    """Quality metric rows for one target, as the `metrics` config asks."""
    m = cfg.metrics
    if not m.enabled:
        return []
    scoring = Scoring(method=cfg.method.name, spec=spec, data=data, target=target,
                      params=OmegaConf.to_container(cfg.method.params, resolve=True), opts=opts,
                      enabled=set(m.enabled), randomization=m.randomization_mode if m.randomization else None,
                      mis_tasks=m.mis_tasks, auc_steps=m.auc_steps)
    return score_result(scoring, vis)


def run(cfg: DictConfig) -> pd.DataFrame:
    """Run the configured method over the model's targets; write metrics.csv, pictures and arrays; return the table."""
    out = output_dir(cfg)
    if cfg.resume and (out / "DONE").exists():
        log.info("resume: %s already complete, skipped", out)
        return pd.read_csv(out / "metrics.csv")
    if cfg.experiment == "speed":
        from experiments.speed import run_speed
        return run_speed(cfg)
    check_params(cfg.method.name, OmegaConf.to_container(cfg.method.params, resolve=True))
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    spec = build_model(cfg.model)
    spec.model.to(device).eval()
    data = build_data(cfg.data, spec.input_size)
    targets = resolve_targets(cfg.target, spec)
    if cfg.method.name == "raw_weights" and not cfg.target.layer:
        from methods.raw_weights import first_conv_name
        first = first_conv_name(spec.model)
        targets = [t for t in targets if t.layer == first] or [Target(layer=first, units=tuple(range(8)))]
    opts = RunOptions(seed=cfg.seed, amp=cfg.amp, channels_last=cfg.channels_last, compile=cfg.compile,
                      progress=cfg.progress, n_images=cfg.method.n_images)
    context = run_context(cfg, out, spec.weights, device)
    rows: list[dict] = []
    (out / "DONE").unlink(missing_ok=True)
    bar = tqdm(targets, desc=f"{cfg.method.name}/{cfg.method.preset} on {context['model']}", disable=not cfg.progress, file=sys.stderr)
    for target in bar:
        bar.set_postfix_str(target.layer)
        try:
            vis, own = visualize_target(cfg, spec, data, target, opts)
            rows += own
            save_pictures(out, cfg.method.name, vis.extras.get("layer", target.layer), vis)
            rows += [{"layer": vis.extras.get("layer", target.layer), **r} for r in score(cfg, spec, data, target, vis, opts)]
        except Exception as err:  # a failed target is recorded, never kills a sweep
            reason = f"{type(err).__name__}: {err}".splitlines()[0]
            log.debug(traceback.format_exc())
            rows.append({"layer": target.layer, "unit": None, "metric": "error", "value": float("nan"),
                         "status": f"failed: {reason}"})
        tables.write_csv_atomic(tables.to_frame(rows, context), out / "metrics.csv")
    df = tables.to_frame(rows, context)
    tables.write_csv_atomic(df, out / "metrics.csv")
    (out / "DONE").touch()
    print(tables.summary_markdown(df))
    print(f"run folder: {out}")
    return df


def fail_run(cfg: DictConfig, err: Exception) -> None:
    """Record a run that could not start (bad input) as one failed row, and say why in one line."""
    reason = f"{type(err).__name__}: {err}".splitlines()[0]
    out = output_dir(cfg)
    row = {"metric": "error", "value": float("nan"), "status": f"failed: {reason}"}
    tables.write_csv_atomic(tables.to_frame([row], run_context(cfg, out)), out / "metrics.csv")
    print(f"error: {reason}", file=sys.stderr)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    """Hydra entry point: bad input ends a single run with one line; in a sweep the job is recorded as failed."""
    try:
        run(cfg)
    except (ValueError, FileNotFoundError, KeyError, ImportError) as err:
        fail_run(cfg, err)
        if HydraConfig.get().mode.name != "MULTIRUN":
            sys.exit(1)


if __name__ == "__main__":
    main()
