"""The speed experiment: each method timed against the bare truncated model and against its peer, in one run.

For every case (a method on a model, target, resolution and amount of work) the contenders run interleaved
(warm-ups first, then round after round: vizbench, bare, peers), so a load change on a shared machine hits
them all alike. Each contender does the same work as vizbench:
- bare: the truncated model alone at vizbench's batch and resolution, in the same precision and layout, as the
  same graph the methods run (methods/graph.py: nothing above the layer, BatchNorm folded into the convs):
  gradient ascent = `steps` forward+backward passes of the whole batch (no parameterization, transforms,
  optimizer); occlusion = the forwards of the originals plus every perturbation vizbench evaluated;
  top patches = one forward of every image (streamed from an image folder: read by a plain DataLoader with the
  same files, workers and batch size; a case with data=image_folder and no data.root writes its shapes PNGs once).
- lucent (gradient ascent): torch-lucent `render_vis`, one unit per call, same model, layer, units, steps,
  resolution, Fourier + decorrelated parameterization, Adam 0.05 and Lucid's standard transforms; always fp32
  and eager (it has no amp or compile option; its rows say amp=off, compile=False).
- captum_occlusion: captum `Occlusion` with the same window, stride, baseline, images and scores, one call
  per unit, at perturbations_per_eval 1 and at vizbench's batch size; the faster one is the peer.
Each method's contenders are built by its adapter (experiments/adapters/<method>.py, `Method.contenders`).
Ratios (experiments.timing.ratio): vs_bare = vizbench time / bare time, vs_peer = vizbench time / best peer time
(lower is better), of medians; vs_bare_min / vs_peer_min use each contender's fastest repeat instead (steadier
on a shared machine).
Throughput counts the work the user asked for, the same for every contender of a case: units (gradient
ascent), images (top patches), perturbations = images x windows of the full map x units (occlusion).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import logging
import math
import sys
from typing import Any, Callable

import pandas as pd
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from experiments.adapters import Method, get_method, registry
from experiments.contenders import Case, Contender, Setup
from experiments.data import build_data
from experiments.data.shapes_folder import shapes_folder
from experiments.devices import autocast, resolve_device, run_context
from experiments.runfolder import RunFolder
from experiments.timing import Timing, measure, ratio, speed_rows
from experiments.zoo import build_model
from methods.base import invalid_choice, one_line

log = logging.getLogger("vizbench")


def parse_cases(raw: Any) -> list[Case]:
    """Cases from the config's list of mappings; an unknown key raises one line naming it and the valid ones."""
    valid = list(Case.__dataclass_fields__)
    cases = []
    for item in OmegaConf.to_container(raw, resolve=True) if OmegaConf.is_config(raw) else raw:
        bad = [k for k in item if k not in valid]
        if bad:
            raise invalid_choice(f"speed case key in {item.get('name', item)}", bad[0], valid)
        cases.append(Case(**item))
    return cases


@functools.lru_cache(maxsize=64)
def composed(overrides: tuple[str, ...]) -> DictConfig:
    """The run config as `python -m experiments.run <overrides>` composes it (inside a Hydra app or not); read only."""
    try:
        if GlobalHydra.instance().is_initialized():
            return compose(config_name="config", overrides=list(overrides))
        with initialize_config_module(config_module="conf", version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))
    except Exception as err:  # noqa: BLE001 - Hydra's missing-option error is many lines
        raise ValueError(f"speed case: cannot compose {' '.join(overrides)}: {one_line(err)}") from None


def case_config(case: Case) -> tuple[DictConfig, Method, dict[str, Any]]:
    """The case's composed config (its method, model and data configs), its method and its params (the method
    config's params with the case's on top)."""
    data = tuple(f"data.{key}={str(v).lower() if isinstance(v, bool) else v}" for key, v in case.data_params.items())
    cfg = composed((f"method={case.method}", f"model={case.model}", f"data={case.data}", f"data.n={case.images}",
                    *data))
    method = get_method(cfg.method.name)
    if method.contenders is None:
        timed = [m.name for m in registry().values() if m.contenders is not None]
        raise invalid_choice(f"method for speed case {case.name!r} (it has no speed contenders)", method.name, timed)
    return cfg, method, {**OmegaConf.to_container(cfg.method.params, resolve=True), **case.params}


def case_data(data: DictConfig, case: Case, size: Any) -> DictConfig:
    """The case's data config; data=image_folder without data.root reads a folder of `case.images` shapes PNGs at
    `size`, written once (experiments.data.shapes_folder)."""
    if data.name != "image_folder" or (not OmegaConf.is_missing(data, "root") and data.root):
        return data
    root = shapes_folder(case.images, size, seed=data.seed)
    return OmegaConf.create({**OmegaConf.to_container(data), "root": str(root)})


def peer_missing(modules: tuple[str, ...]) -> str | None:
    """Why a peer needing `modules` cannot run here (a one-line reason), or None when they import."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as err:
            return f"peer not installed: {one_line(err)}"
    return None


def setup(case: Case, cfg: DictConfig, device: torch.device) -> tuple[Setup, Method, dict[str, Any]]:
    """Build the case's model (seeded) and data; return the setup, its method and its table columns."""
    conf, method, params = case_config(case)
    case = dataclasses.replace(case, params=params)
    torch.manual_seed(cfg.seed)
    spec = build_model(conf.model)
    size = case.input_size or spec.input_size
    model = spec.model.to(device).eval()
    images, data_name, workers = None, None, 0
    if method.inputs == "images":
        data = build_data(case_data(conf.data, case, size), size, spec.in_channels)
        images, data_name, workers = data.images[: case.images], data.name, data.workers
        images = images.to(device) if isinstance(images, torch.Tensor) else images  # streamed: decoded as timed
    compile = bool(cfg.compile) and "compile" in inspect.signature(method.visualize).parameters
    s = Setup(case, model, spec.normalizer(), images, size, tuple(spec.mean), tuple(spec.std), device, cfg.amp,
              cfg.channels_last, compile, cfg.seed, bool(cfg.speed.peers), params={**method.defaults(), **params},
              workers=workers)
    if cfg.compile and not compile:
        s.notes.append(f"compile: {method.name} has no compile option, so every contender ran eager")
    columns = {"case": case.name, "method": method.name, "model": spec.name, "weights": spec.weights, "data": data_name,
               "layer": case.layer, "kind": case.kind, "units": len(case.target().units), "input_size": size}
    return s, method, columns


def time_interleaved(contenders: list[Contender], device: torch.device, repeats: int, warmup: int,
                     budget_s: float, memory: bool = True) -> dict[int, Timing | str]:
    """Warm each contender up, then time them round-robin; index -> Timing, or a failure reason (one line).

    Each contender gets as many timed repeats (1..repeats) as fit in `budget_s` at its warm-up speed, so slow
    peer variants cost what they must, not `repeats` times that. Peak memory is sampled in each contender's
    last repeat (on CPU that is one extra untimed call, see experiments.timing.measure).
    """
    result: dict[int, Timing | str] = {}
    warm: dict[int, list[float]] = {i: [] for i in range(len(contenders))}
    times: dict[int, list[float]] = {i: [] for i in range(len(contenders))}
    memory_of: dict[int, tuple[float | None, float | None]] = {}

    def call(i: int, memory_too: bool) -> Timing | None:
        try:
            return measure(contenders[i].fn, device, repeats=1, warmup=0, memory=memory_too)
        except Exception as err:  # one contender failing never stops the others
            log.debug("contender %s failed", contenders[i].name, exc_info=True)
            result[i] = f"failed: {one_line(err)}"
            return None

    for i in range(len(contenders)):
        for _ in range(warmup):
            if i not in result and (t := call(i, False)):
                warm[i].append(t.times[0])
    planned = {i: max(1, min(repeats, int(budget_s // w[-1]))) if w else repeats for i, w in warm.items()}
    for r in range(repeats):
        for i in range(len(contenders)):
            if i in result or r >= planned[i]:
                continue
            if t := call(i, memory and r == planned[i] - 1):
                times[i] += t.times
                memory_of[i] = (t.peak_mem_mb, t.base_mem_mb)
    for i in range(len(contenders)):
        if i not in result:
            peak, base = memory_of.get(i, (None, None))
            result[i] = Timing(times[i], warm[i][0] if warm[i] else None, peak, base, str(device))
    return result


def case_rows(s: Setup, method: Method, contenders: list[Contender], work: dict[str, float],
              timings: dict[int, Timing | str], skipped: dict[str, str]) -> list[dict]:
    """Speed rows of every contender, then vizbench's vs_bare and vs_peer (against the fastest peer variant)."""
    rows = []
    for i, c in enumerate(contenders):
        amp, compile = ("off", False) if c.eager_fp32 else (s.amp, s.compile)
        base = {"contender": c.name, "variant": c.variant, **run_context(s.device, amp, s.channels_last, compile, c.batch_size)}
        t = timings[i]
        rows += [{**base, "metric": "time_s", "value": math.nan, "status": t}] if isinstance(t, str) else \
            [{**base, **r} for r in speed_rows(t, work)] + [{**base, "metric": "repeats", "value": float(len(t.times))}]
    rows += [{"contender": p, "metric": "time_s", "value": math.nan, "status": f"skipped: {why}"} for p, why in skipped.items()]
    ok = {i: t for i, t in timings.items() if isinstance(t, Timing)}
    viz = [t for i, t in ok.items() if contenders[i].name == "vizbench"]
    bare = [t for i, t in ok.items() if contenders[i].name == "bare"]
    ctx = {"contender": "vizbench", **run_context(s.device, s.amp, s.channels_last, s.compile, contenders[0].batch_size)}
    rows += [{**ctx, **r} for r in ratio_rows("vs_bare", viz, bare, "failed: bare failed")]
    peers = [t for i, t in ok.items() if contenders[i].name in method.peers]
    if method.peers:
        why = (f"skipped: {next(iter(skipped.values()))}" if skipped else "skipped: peers off (speed.peers=false)"
               if not s.peers else "failed: every peer variant failed")
        rows += [{**ctx, **r} for r in ratio_rows("vs_peer", viz, peers, why)]
    named = {c.name: timings[i] for i, c in enumerate(contenders)}
    if "vizbench_full" in named:
        full = [named["vizbench_full"]] if isinstance(named["vizbench_full"], Timing) else []
        rows += [{**ctx, **r} for r in ratio_rows("vs_full", viz, full, "failed: vizbench_full failed")]
    if "vizbench_approx" in named:
        approx = [named["vizbench_approx"]] if isinstance(named["vizbench_approx"], Timing) else []
        actx = {**ctx, "contender": "vizbench_approx"}
        rows += [{**actx, **r} for r in ratio_rows("vs_peer", approx, peers, "failed: no peer timing")]
    return rows + [{**ctx, **check_row(name, fn)} for name, fn in s.checks.items()]


def check_row(name: str, fn: Callable[[], float]) -> dict[str, Any]:
    """One of Setup.checks as a row: its value, or NaN and why it failed."""
    try:
        return {"metric": name, "value": float(fn())}
    except Exception as err:  # a failed check is recorded, never kills the case
        return {"metric": name, "value": math.nan, "status": f"failed: {one_line(err)}"}


def ratio_rows(metric: str, mine: list[Timing], others: list[Timing], status_missing: str) -> list[dict[str, Any]]:
    """`metric`: vizbench's median over the fastest other's median (the largest ratio); `<metric>_min`: the same with each one's
    fastest repeat (steadier on a shared machine, where other load only ever adds time). Without a side, the rows
    get `status_missing` (failed: or skipped: and why)."""
    status = "failed: vizbench failed" if not mine else status_missing if not others else ""
    if status:
        return [{"metric": m, "value": math.nan, "status": status} for m in (metric, f"{metric}_min")]
    return [{"metric": metric, "value": max(ratio(mine[0], t) for t in others)},
            {"metric": f"{metric}_min", "value": max(ratio(mine[0], t, "min") for t in others)}]


def run_case(case: Case, cfg: DictConfig, device: torch.device) -> list[dict]:
    """Build, time and tabulate one case; a case that cannot be built gives one failed row."""
    try:
        s, method, columns = setup(case, cfg, device)
        skipped = {p: why for p, modules in method.peers.items() if s.peers and (why := peer_missing(modules))}
        contenders, work = method.contenders(s, s.peers and not skipped)
    except Exception as err:  # a broken case is recorded, never kills the run
        log.debug("case %s failed", case.name, exc_info=True)
        return [{"case": case.name, "method": case.method, "model": case.model, "layer": case.layer,
                 "contender": "vizbench", "metric": "time_s", "value": math.nan, "status": f"failed: {one_line(err)}"}]
    warmup = cfg.speed.warmup if case.warmup is None else case.warmup
    timings = time_interleaved(contenders, device, case.repeats or cfg.speed.repeats, warmup,
                               cfg.speed.budget_s, cfg.speed.memory)
    return [{**columns, "note": "; ".join(s.notes), **r} for r in case_rows(s, method, contenders, work, timings, skipped)]


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per case: median seconds of vizbench, bare and the fastest peer variant, and vizbench's ratios."""
    ok = df[df["status"] == "ok"]
    times = ok[ok["metric"] == "time_s"].pivot_table(index="case", columns="contender", values="value", aggfunc="min")
    table = pd.DataFrame(index=pd.Index(df["case"].dropna().unique(), name="case"))
    for name, column in (("vizbench_s", "vizbench"), ("bare_s", "bare")):
        table[name] = times.get(column)
    peers = [p for m in registry().values() for p in m.peers]
    table["peer_s"] = times.reindex(columns=peers).min(axis=1)
    viz = ok[ok["contender"] == "vizbench"]
    ratios = viz[viz["metric"].str.startswith("vs_")].pivot_table(index="case", columns="metric", values="value")
    for metric in ("vs_bare", "vs_bare_min", "vs_peer", "vs_peer_min", "vs_full"):
        if metric in ratios or metric.startswith(("vs_bare", "vs_peer")):
            table[metric] = ratios.get(metric)
    approx = ok[(ok["contender"] == "vizbench_approx") & (ok["metric"] == "vs_peer")].set_index("case")["value"]
    error = viz[viz["metric"] == "approx_max_abs_error"].set_index("case")["value"]
    if len(approx) or len(error):
        table["approx_vs_peer"], table["approx_max_abs_error"] = approx, error
    return table.reset_index()


def with_targets(table: pd.DataFrame, cases: list[Case]) -> pd.DataFrame:
    """The summary with each case's targets and whether they were met."""
    by_name = {c.name: c.targets for c in cases}
    for metric in ("vs_bare", "vs_peer"):
        bound = table["case"].map(lambda n: by_name.get(n, {}).get(metric, math.nan))
        table[f"{metric}_target"] = bound
        table[f"{metric}_met"] = [("yes" if v <= b else "NO") if b == b and v == v else "" for v, b in zip(table[metric], bound)]
    return table


def scaled_cases(sp: DictConfig) -> list[Case]:
    """The configured cases (speed.only of them, if set), their work times speed.scale."""
    cases = [c for c in parse_cases(sp.cases) if not sp.only or c.name in sp.only]
    if sp.only and len(cases) != len(set(sp.only)):
        valid = [c.name for c in parse_cases(sp.cases)]
        raise ValueError(f"speed.only={list(sp.only)} names a case not in speed.cases ({', '.join(valid)})")
    out = []
    for case in cases:
        method = case_config(case)[1]
        out.append(case.scaled(sp.scale, method.scaled, method.defaults().get(method.scaled, 1)))
    return out


def run_speed(cfg: DictConfig) -> pd.DataFrame:
    """Time every configured case at speed.threads; write metrics.csv after each case and DONE at the end; print a summary."""
    threads = torch.get_num_threads()
    if cfg.speed.threads:
        torch.set_num_threads(cfg.speed.threads)
    try:
        folder = RunFolder(cfg, {"preset": "default"})
        if (previous := folder.resumed(cfg.resume)) is not None:
            log.info("resume: %s already complete, skipped", folder.path)
            return previous
        device = resolve_device(cfg.device)
        autocast(device, cfg.amp)  # refuses a bad amp before any work
        cases = scaled_cases(cfg.speed)
        folder.start()
        for case in tqdm(cases, desc="speed", disable=not cfg.progress, file=sys.stderr):
            folder.add(run_case(case, cfg, device))
        return folder.finish(lambda df: with_targets(summary(df), cases).to_markdown(index=False, floatfmt=".3g"))
    finally:
        torch.set_num_threads(threads)
