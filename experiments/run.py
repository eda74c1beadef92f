"""`python -m experiments.run`: run the configured experiment (by default one method on one model's targets,
scored) and write its results table."""
from __future__ import annotations

import dataclasses
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import hydra
import pandas as pd
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_method as import_function
from omegaconf import DictConfig, OmegaConf

from experiments import pictures, tables
from experiments.adapters import Method, RunOptions
from experiments.config import MetricsConf, register
from experiments.data import build_data
from experiments.data.spec import DataSpec
from experiments.devices import device_label, resolve_device
from experiments.preflight import preflight
from experiments.progress import RunProgress
from experiments.runfolder import FolderRefused, RunFolder, run_id
from experiments.scoring import Scoring, label, score, unit_reasons
from experiments.targets import resolve_targets
from experiments.timing import measure, speed_rows, with_oom_retry
from experiments.validate import check_run
from experiments.zoo import build_model
from experiments.zoo.spec import ModelSpec
from methods.base import Target, Visualization, one_line

log = logging.getLogger("vizbench")
register()


def run(cfg: DictConfig) -> pd.DataFrame:
    """Run the experiment `cfg.runner` names (quality_run unless an experiment config sets another)."""
    return import_function(cfg.runner)(cfg)


def method_params(cfg: DictConfig) -> dict[str, Any]:
    """The method config's params as a plain dict."""
    return OmegaConf.to_container(cfg.method.params, resolve=True)


def context_columns(cfg: DictConfig) -> dict[str, Any]:
    """What the run is, before anything is built (weights and device are added once known)."""
    return {"method": cfg.method.name, "preset": cfg.method.preset, "model": cfg.model.name or cfg.model.source,
            "weights": None, "data": cfg.data.name, "device": None}


def call_with_oom_retry(method: Method, spec: ModelSpec, data: Any, target: Target, params: dict, opts: RunOptions,
                        ) -> tuple[Visualization, int | None]:
    """Run the method; on CUDA out-of-memory halve its batch param (Method.batch) and retry."""
    start = method.batch_start(params, target)
    if start is None:
        return method.call(spec, data, target, params, opts, spec.model), None
    return with_oom_retry(lambda b: method.call(spec, data, target, {**params, method.batch: b}, opts, spec.model), start)


def visualize_target(method: Method, spec: ModelSpec, data: Any, target: Target, params: dict, opts: RunOptions,
                     ) -> tuple[Visualization, list[dict]]:
    """Run the method once on one target; return the result and its own rows (values, time, memory)."""
    device = next(spec.model.parameters()).device
    found: list[tuple[Visualization, int | None]] = []
    timing = measure(lambda: found.append(call_with_oom_retry(method, spec, data, target, params, opts)),
                     device, repeats=1, warmup=0, memory=device.type == "cuda")
    result, batch_used = found[0]
    rows = [{"layer": result.layer, "unit": None, **r} for r in speed_rows(timing, result.work)]
    if batch_used is not None:
        rows.append({"layer": result.layer, "unit": None, "metric": "batch_size_used", "value": float(batch_used)})
    return result, rows + value_rows(result)


def value_rows(result: Visualization) -> list[dict]:
    """The result's own per-unit values (e.g. topk_mean_activation), each with its flag or ok."""
    flags, rows = result.flags, []
    for name, values in result.values.items():
        status = flags.get(name, {})
        rows += [{"layer": result.layer, "unit": u, "metric": name, "value": float(v), "status": status.get(u, "ok")}
                 for u, v in zip(result.units, values.tolist())]
    return rows


def save_pictures(out: Path, method: str, result: Visualization, data: DataSpec | None = None, preset: str = "",
                  ) -> None:
    """The labelled grid per (method, layer), each unit's pictures (experiments.pictures: occlusion maps over the
    run's `data` images where given) and the raw arrays."""
    pictures.save_result_pictures(out, method, result, data, preset)
    plain = (torch.Tensor, int, float, str, tuple, list, dict)
    arrays = {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if isinstance(getattr(result, f.name), plain)}
    tables.save_arrays({**arrays, "values": result.values}, out / "arrays" / f"{tables.safe_name(method, result.layer)}.pt")


def save_and_score(out: Path, scoring: Scoring, result: Visualization, rows: list[dict], preset: str = "",
                   deferred: str | None = None, on_scoring: Callable[[], Any] | None = None) -> list[dict]:
    """Save one target's pictures and arrays, then score it with the run's metrics: its rows (the method's own
    `rows` labelled, the metric rows, metrics_time_s). `deferred`: no metrics, one quality_metrics row saying
    why (a shard's: they need the whole data). `on_scoring` is called between the two."""
    save_pictures(out, scoring.method.name, result, scoring.data, preset)
    if on_scoring is not None:
        on_scoring()
    if deferred is not None:
        return [*rows, {"layer": result.layer, "unit": None, "metric": "quality_metrics", "value": float("nan"),
                        "status": f"deferred: {deferred}"}]
    start = time.perf_counter()
    scored = [{"layer": result.layer, **r} for r in score(scoring, result)]
    rows = (label(rows, unit_reasons(scoring, result)) if scored else rows) + scored
    return [*rows, {"layer": result.layer, "unit": None, "metric": "metrics_time_s",
                    "value": time.perf_counter() - start}]


def deferred_metrics(cfg: DictConfig, out: Path) -> str | None:
    """Why a shard run computes no quality metrics, and where they come from (None: not a shard)."""
    if cfg.data.get("num_shards", 1) <= 1:
        return None
    return (f"quality metrics need the whole data; `python -m experiments.merge {run_id(out.parent)}` merges the "
            f"shards and scores them (this is data.shard={cfg.data.shard} of data.num_shards={cfg.data.num_shards})")


def metric_settings(cfg: DictConfig) -> MetricsConf:
    """The run's metric settings as one typed object."""
    return MetricsConf(**OmegaConf.to_container(cfg.metrics, resolve=True))


def targets_for(cfg: DictConfig, method: Method, spec: ModelSpec) -> list[Target]:
    """The configured target, or the model's defaults as the method takes them."""
    targets = resolve_targets(cfg.target, spec)
    if not cfg.target.layer and method.default_targets is not None:
        targets = method.default_targets(spec.model, targets, method_params(cfg))
    return targets


def build_run(cfg: DictConfig, method: Method) -> tuple[ModelSpec, DataSpec, dict[str, Any], list[Target]]:
    """The run's model (seeded, on its device, in eval mode), data, params (sized to the images) and targets,
    each target checked before any work."""
    params = method_params(cfg)
    torch.manual_seed(cfg.seed)
    spec = build_model(cfg.model)
    spec.model.to(resolve_device(cfg.device)).eval()
    data = build_data(cfg.data, spec.hw, spec.in_channels)
    log.info("data %s: %d images at %s px%s", data.name, len(data.images), "x".join(map(str, data.images.shape[-2:])),
             "" if isinstance(data.images, torch.Tensor) else f", streamed by {data.workers} loader worker(s)")
    if method.sized is not None:
        params = method.sized(params, tuple(data.images.shape[-2:]))
    targets = targets_for(cfg, method, spec)
    for target in targets if method.check_target else ():
        method.check_target(spec, data, target, params)
    return spec, data, params, targets


def run_options(cfg: DictConfig, bars: bool) -> RunOptions:
    """The run-wide options every method honours; `bars`: the methods show their own progress bars."""
    return RunOptions(seed=cfg.seed, amp=cfg.amp, channels_last=cfg.channels_last, compile=cfg.compile,
                      progress=bars, n_images=cfg.method.n_images,
                      images=tuple(cfg.method.images) if cfg.method.images is not None else None)


def quality_run(cfg: DictConfig) -> pd.DataFrame:
    """Run the configured method over the model's targets; write metrics.csv, pictures and arrays; return the table."""
    folder = RunFolder(cfg, context_columns(cfg))
    if (previous := folder.resumed(cfg.resume)) is not None:
        log.info("resume: %s already complete, skipped", folder.path)
        return previous
    method = check_run(cfg)
    spec, data, params, targets = build_run(cfg, method)
    progress = RunProgress(f"{method.name}/{cfg.method.preset} on {cfg.model.name or cfg.model.source}", len(targets),
                           cfg.progress)
    opts = run_options(cfg, progress.bars)
    settings = metric_settings(cfg)
    folder.context.update(weights=spec.weights, device=device_label(resolve_device(cfg.device)))
    folder.start()
    if data.skipped:
        log.warning("data %s: skipped %d unreadable image(s), listed above", data.name, len(data.skipped))
        folder.add([{"metric": "images_skipped", "value": float(len(data.skipped))}])
    if (deferred := deferred_metrics(cfg, folder.path)) is not None:
        log.info("no quality metrics in this run: %s", deferred)
    for target in targets:
        start = time.perf_counter()
        method_s = 0.0

        def scoring_starts() -> None:
            nonlocal method_s
            method_s = time.perf_counter() - start
            progress.stage(target.layer, "metrics")

        try:
            progress.stage(target.layer, "method")
            result, rows = visualize_target(method, spec, data, target, params, opts)
            rows = save_and_score(folder.path, Scoring(method, spec, data, target, params, opts, settings), result,
                                  rows, cfg.method.preset, deferred, scoring_starts)
        except Exception as err:  # a failed target is recorded and fails the run, but the other targets still run
            rows = failed_target(target, err)
        folder.add(rows)
        progress.finished(target.layer, method_s, time.perf_counter() - start - method_s)
    progress.close()
    return folder.finish(tables.summary_markdown)


def failed_target(target: Target, err: Exception) -> list[dict]:
    """A target that failed: its traceback into the run's log, and its one failed row."""
    log_traceback(err)
    return [{"layer": target.layer, "unit": None, "metric": "error", "value": float("nan"),
             "status": f"failed: {one_line(err)}"}]


def log_traceback(err: BaseException) -> list[str]:
    """Write the full traceback to the run's log files (Hydra's <run>/<job>.log), not the terminal; their paths."""
    text = "".join(traceback.format_exception(err)).rstrip()
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, text, None, None)
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    for handler in files:
        handler.handle(record)
    return [h.baseFilename for h in files]


def say_error(message: str, logs: list[str]) -> None:
    """The one terminal line of a failed run: what went wrong and where the traceback is."""
    where = f" (traceback: {run_id(Path(logs[0]))})" if logs else ""
    print(f"error: {message}{where}", file=sys.stderr)


def fail_run(cfg: DictConfig, err: Exception) -> None:
    """A run that could not start: one failed row in its folder (unless the folder is refused) and one line."""
    logs = log_traceback(err)
    if not isinstance(err, FolderRefused):
        try:
            folder = RunFolder(cfg, context_columns(cfg))
            folder.start()
            folder.add([{"metric": "error", "value": float("nan"), "status": f"failed: {one_line(err)}"}])
        except Exception as write_err:  # noqa: BLE001 - the original error is the one to report
            log_traceback(write_err)
    say_error(one_line(err), logs)


def failure_line(df: pd.DataFrame) -> str | None:
    """One line for a finished run whose table has failed rows (None: nothing failed)."""
    failed = tables.failed(df)
    if not len(failed):
        return None
    first = failed.iloc[0]
    layer = first["layer"] if isinstance(first["layer"], str) and first["layer"] else None
    where = f"{first['metric']} on layer {layer}" if layer else first["metric"]
    return f"{len(failed)} of {len(df)} rows failed in {first['run_id']}/metrics.csv; first: {where}: {first['status']}"


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    """Hydra entry point: any error ends a run with one line and a non-zero exit; in a sweep the job is recorded as
    failed and the sweep goes on (experiments.callbacks exits non-zero at the end)."""
    multirun = HydraConfig.get().mode.name == "MULTIRUN"
    try:
        df = run(cfg)
    except Exception as err:  # every error type: one line here, the traceback in the run's log file
        fail_run(cfg, err)
        if not multirun:
            sys.exit(1)
        return
    if (line := failure_line(df)) is not None:
        say_error(line, [])
        if not multirun:
            sys.exit(1)


def cli() -> None:
    """`python -m experiments.run`: check every job's config first (one line on bad input), then run Hydra's app."""
    preflight(sys.argv[1:])
    main()


if __name__ == "__main__":
    cli()
