"""The speed experiment: each method timed against the bare truncated model and against its peer, in one run.

For every case (a method on a model, target, resolution and amount of work) the contenders run interleaved
(warm-ups first, then round after round: vizbench, bare, peers), so a load change on a shared machine hits
them all alike. Each contender does the same work as vizbench:
- bare: the truncated model alone at vizbench's batch and resolution, in the same precision and layout, as the
  same graph the methods run (methods/graph.py: nothing above the layer, BatchNorm folded into the convs):
  gradient ascent = `steps` forward+backward passes of the whole batch (no parameterization, transforms,
  optimizer); occlusion = the forwards of the originals plus every perturbation vizbench evaluated;
  top patches = one forward of every image.
- lucent (gradient ascent): torch-lucent `render_vis`, one unit per call, same model, layer, units, steps,
  resolution, Fourier + decorrelated parameterization, Adam 0.05 and Lucid's standard transforms; always fp32
  and eager (it has no amp or compile option; its rows say amp=off, compile=False).
- captum_occlusion: captum `Occlusion` with the same window, stride, baseline, images and scores, one call
  per unit, at perturbations_per_eval 1 and at vizbench's batch size; the faster one is the peer.
Ratios: vs_bare = vizbench time / bare time, vs_peer = vizbench time / best peer time (lower is better), of
medians; vs_bare_min / vs_peer_min use each contender's fastest repeat instead (steadier on a shared machine).
Throughput counts the work the user asked for, the same for every contender of a case: units (gradient
ascent), images (top patches), perturbations = images x windows of the full map x units (occlusion).
"""
from __future__ import annotations

import copy
import importlib
import inspect
import logging
import math
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn
from tqdm.auto import tqdm

from experiments import tables
from experiments.config import DataConf, ModelConf
from experiments.devices import autocast, prepare_input, prepare_model, resolve_device, run_context
from experiments.run import output_dir, overrides_columns, run_id
from experiments.timing import Timing, measure, speed_rows
from methods.base import Normalize, Target
from methods.graph import fast_forward

log = logging.getLogger("vizbench")
CONF = Path(__file__).resolve().parents[1] / "conf"
METHODS = {"gradient_ascent": "methods.gradient_ascent", "occlusion": "methods.occlusion", "top_patches": "methods.top_patches"}
# peer contender -> modules it needs (the library first, then our wrapper)
PEER_MODULES = {"lucent": ("lucent.optvis.render", "experiments.peers.lucent"),
                "captum_occlusion": ("captum.attr", "experiments.peers.captum_occlusion")}
PEERS = {"gradient_ascent": ("lucent",), "occlusion": ("captum_occlusion",), "top_patches": ()}
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # what lucent's preprocessing assumes
# settings lucent's render_vis does as we call it; other gradient-ascent settings make the comparison unfair
LUCENT_SETTINGS = {"param": "fourier", "decorrelate": True, "decay_power": 1.0, "optimizer": "adam", "lr": 0.05,
                   "images_per_unit": 1, "diversity": 0.0, "l1": 0.0, "l2": 0.0, "tv": 0.0, "alpha_weight": 0.0}


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
    images: int = 4  # occlusion: images occluded; top patches: images searched
    params: dict[str, Any] = field(default_factory=dict)  # the method's keyword arguments
    targets: dict[str, float] = field(default_factory=dict)  # e.g. {vs_bare: 1.2, vs_peer: 0.33}
    repeats: int | None = None  # None: speed.repeats

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"speed case {self.name!r}: unknown method {self.method!r}; valid: {', '.join(METHODS)}")
        self.params = dict(self.params)

    def target(self) -> Target:
        """The vizbench Target of this case."""
        units = tuple(range(self.units)) if isinstance(self.units, int) else tuple(int(u) for u in self.units)
        position = tuple(self.position) if self.position is not None else None
        return Target(self.layer, units, self.kind, position)

    def scaled(self, scale: float) -> "Case":
        """This case with its amount of work (steps, images) multiplied by `scale` (at least 1)."""
        if scale <= 0:
            raise ValueError(f"speed.scale={scale} must be > 0")
        out = copy.deepcopy(self)
        if self.method == "gradient_ascent":
            out.params["steps"] = max(1, round(self.params.get("steps", 512) * scale))
        else:
            out.images = max(1, round(self.images * scale))
        return out


@dataclass
class Contender:
    """A timed function doing the case's work one way; `variant` tells settings of one contender apart."""

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
    images: Tensor | None
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    device: torch.device
    amp: str
    channels_last: bool
    compile: bool  # vizbench and bare compile (only where the method has a compile option)
    seed: int
    peers: bool
    notes: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)  # vizbench's last result facts the bare work needs


def parse_cases(raw: Any) -> list[Case]:
    """Cases from the config's list of mappings; an unknown key raises one line naming it and the valid ones."""
    valid = list(Case.__dataclass_fields__)
    cases = []
    for item in OmegaConf.to_container(raw, resolve=True) if OmegaConf.is_config(raw) else raw:
        bad = [k for k in item if k not in valid]
        if bad:
            raise ValueError(f"unknown speed case key {bad[0]!r} in {item.get('name', item)}; valid: {', '.join(valid)}")
        cases.append(Case(**item))
    return cases


def model_conf(name: str) -> DictConfig:
    """The model config conf/model/<name>.yaml over the schema defaults."""
    path = CONF / "model" / f"{name}.yaml"
    if not path.is_file():
        valid = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
        raise ValueError(f"unknown model {name!r} in a speed case; valid: {', '.join(valid)}")
    return OmegaConf.merge(OmegaConf.structured(ModelConf), OmegaConf.load(path))


def method_defaults(method: str) -> dict[str, Any]:
    """Keyword defaults of a method's `visualize` (what it does when a case leaves a param out)."""
    if method == "gradient_ascent":  # its knobs arrive as **knobs and default to Settings' fields
        from methods.gradient_ascent.optimize import Settings
        return {f.name: getattr(Settings(), f.name) for f in fields(Settings)}
    sig = inspect.signature(importlib.import_module(METHODS[method]).visualize)
    return {k: p.default for k, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY and p.default is not p.empty}


def peer_missing(name: str) -> str | None:
    """Why peer `name` cannot run here (a one-line reason), or None when it is importable."""
    for module in PEER_MODULES[name]:
        try:
            importlib.import_module(module)
        except ImportError as err:
            return f"peer not installed: {type(err).__name__}: {err}".splitlines()[0]
    return None


def setup(case: Case, cfg: DictConfig, device: torch.device) -> tuple[Setup, dict[str, Any]]:
    """Build the case's model (seeded) and data; return the setup and its table columns."""
    from experiments.data import build_data
    from experiments.zoo import build_model

    torch.manual_seed(cfg.seed)
    spec = build_model(model_conf(case.model))
    size = case.input_size or spec.input_size
    model = spec.model.to(device).eval()
    images, data_name = None, None
    if case.method != "gradient_ascent":
        data = build_data(OmegaConf.structured(DataConf(name=case.data, n=case.images)), size)
        images, data_name = data.images[: case.images].to(device), data.name
    compile = bool(cfg.compile) and "compile" in inspect.signature(importlib.import_module(METHODS[case.method]).visualize).parameters
    s = Setup(case, model, Normalize(spec.mean, spec.std).to(device), images, size, tuple(spec.mean), tuple(spec.std),
              device, cfg.amp, cfg.channels_last, compile, cfg.seed, bool(cfg.speed.peers))
    if cfg.compile and not compile:
        s.notes.append(f"compile: {case.method} has no compile option, so every contender ran eager")
    columns = {"case": case.name, "method": case.method, "model": spec.name, "weights": spec.weights, "data": data_name,
               "layer": case.layer, "kind": case.kind, "units": len(case.target().units), "input_size": size}
    return s, columns


def formatted(s: Setup) -> nn.Module:
    """A copy of the model in the run's memory format (contenders never change the shared model)."""
    return prepare_model(copy.deepcopy(s.model), s.device, s.channels_last, compile=False)


def bare_module(s: Setup) -> nn.Module:
    """The bare limit's model: the graph the methods run (fx, BatchNorm folded, the run's layout), compiled when
    vizbench compiles too."""
    net = fast_forward(s.model, s.case.layer, s.normalize, s.channels_last)
    return torch.compile(net) if s.compile else net


def ga_contenders(s: Setup, peers: bool) -> list[Contender]:
    """vizbench gradient ascent (all units in one batch), the bare forward+backward steps, lucent per unit."""
    from experiments.peers.lucent import bare_step
    from methods.gradient_ascent import visualize

    case, target = s.case, s.case.target()
    params = {**method_defaults("gradient_ascent"), **case.params}
    batch = len(target.units) * params["images_per_unit"]

    def vizbench() -> Any:
        return visualize(s.model, target, input_size=s.size, normalize=s.normalize, seed=s.seed, amp=s.amp,
                         channels_last=s.channels_last, compile=s.compile, progress=False, **case.params)

    trunc = bare_module(s)
    grey = torch.Generator().manual_seed(s.seed)  # near-grey images like vizbench's starts (speed depends a little on content)
    x = prepare_input((0.5 + 0.05 * torch.randn(batch, 3, s.size, s.size, generator=grey)).clamp(0, 1), s.device, s.channels_last)

    def bare() -> None:
        with autocast(s.device, s.amp):
            for _ in range(params["steps"]):
                bare_step(trunc, x)

    out = [Contender("vizbench", vizbench, batch_size=batch), Contender("bare", bare, batch_size=batch)]
    if peers:
        try:
            fn = lucent_fn(s, params)
        except ValueError as err:  # lucent cannot do this case's work: its row says why, the others still run
            fn = failing(err)
        out.append(Contender("lucent", fn, batch_size=1, eager_fp32=True))
    return out


def failing(err: Exception) -> Callable[[], Any]:
    """A contender function that raises `err` when timed, so the contender is recorded as failed."""
    def fail() -> Any:
        raise err
    return fail


def lucent_fn(s: Setup, params: dict[str, Any]) -> Callable[[], Any]:
    """lucent's render_vis once per unit, as people call it (fails at once when it cannot do the same work)."""
    from experiments.peers.lucent import lucent_render

    differ = {k: params.get(k) for k, v in LUCENT_SETTINGS.items() if params.get(k) != v}
    if differ:
        raise ValueError(f"not comparable: lucent's render_vis as called here does {LUCENT_SETTINGS}; this case sets {differ}")
    model = lucent_model(formatted(s), s.mean, s.std)
    target = s.case.target()
    if target.kind != "channel":
        raise ValueError(f"the lucent peer times channel targets only, not {target.kind!r}")

    def run() -> list[Tensor]:  # no autocast: lucent's render_vis fails on bf16 images
        return [lucent_render(model, target.layer, u, s.size, params["steps"], params["transforms"], s.seed)
                for u in target.units]

    return run


def lucent_model(model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> nn.Module:
    """The model as lucent must see it: lucent normalizes with ImageNet statistics; map that to the model's own."""
    if (tuple(mean), tuple(std)) == IMAGENET:
        return model
    m_in, s_in = (torch.tensor(v).view(1, 3, 1, 1) for v in IMAGENET)
    m_out, s_out = (torch.tensor(v).view(1, 3, 1, 1) for v in (mean, std))
    scale, shift = s_in / s_out, (m_in - m_out) / s_out
    dev = next(model.parameters()).device
    scale, shift = scale.to(dev), shift.to(dev)
    model.register_forward_pre_hook(lambda _m, args: (args[0] * scale + shift, *args[1:]))
    return model


def occlusion_contenders(s: Setup, peers: bool) -> list[Contender]:
    """vizbench occlusion, the bare forwards of every image it evaluated, captum at ppe 1 and at the batch size."""
    from methods.occlusion import visualize

    case, target = s.case, s.case.target()
    params = {**method_defaults("occlusion"), **case.params}
    model = formatted(s)
    images = prepare_input(s.images, s.device, s.channels_last)
    bs = params["batch_size"]

    def vizbench() -> Any:
        with autocast(s.device, s.amp):
            vis = visualize(model, images, target, normalize=s.normalize, channels_last=s.channels_last, **case.params)
        s.state["forwards"] = len(images) + int(vis.extras["perturbations"])
        return vis

    net = bare_module(s)
    x = prepare_input(images[torch.arange(bs) % len(images)], s.device, s.channels_last)  # real images: speed depends a little on content

    def bare() -> None:
        if "forwards" not in s.state:
            raise RuntimeError("vizbench did not run, so the bare work (its forward count) is unknown")
        with torch.inference_mode(), autocast(s.device, s.amp):
            for start in range(0, s.state["forwards"], bs):
                net(x[: min(bs, s.state["forwards"] - start)])

    out = [Contender("vizbench", vizbench, batch_size=bs), Contender("bare", bare, batch_size=bs)]
    if peers:
        out += [Contender("captum_occlusion", captum_fn(s, model, images, params, ppe), f"ppe={ppe}", ppe)
                for ppe in dict.fromkeys((1, bs))]
    return out


def captum_fn(s: Setup, model: nn.Module, images: Tensor, params: dict[str, Any], ppe: int) -> Callable[[], Tensor]:
    """captum's Occlusion with vizbench's window, stride, baseline and scores, at perturbations_per_eval=ppe."""
    from experiments.peers.captum_occlusion import captum_occlusion

    def run() -> Tensor:
        with autocast(s.device, s.amp):
            return captum_occlusion(model, images, s.case.target(), params["window"], params["stride"], params["fill"],
                                    ppe, normalize=s.normalize, reduce=params["reduce"], output=params["output"])

    return run


def top_patches_contenders(s: Setup, peers: bool) -> list[Contender]:
    """vizbench top patches over the images, and the bare forward of every image at the same batch size."""
    from methods.top_patches import visualize

    case, target = s.case, s.case.target()
    bs = {**method_defaults("top_patches"), **case.params}.get("batch_size", 64)
    model = formatted(s)
    images = prepare_input(s.images, s.device, s.channels_last)
    net = bare_module(s)

    def vizbench() -> Any:
        with autocast(s.device, s.amp):
            return visualize(model, images, target, normalize=s.normalize, channels_last=s.channels_last, **case.params)

    def bare() -> None:
        with torch.inference_mode(), autocast(s.device, s.amp):
            for batch in images.split(bs):
                net(batch)

    return [Contender("vizbench", vizbench, batch_size=bs), Contender("bare", bare, batch_size=bs)]


BUILDERS = {"gradient_ascent": ga_contenders, "occlusion": occlusion_contenders, "top_patches": top_patches_contenders}


def work(s: Setup) -> dict[str, float]:
    """The work one call does, the same for every contender: units, images, or full-map perturbations."""
    case, target = s.case, s.case.target()
    if case.method == "gradient_ascent":
        return {"units": len(target.units)}
    if case.method == "top_patches":
        return {"images": len(s.images)}
    from methods.occlusion import window_starts

    p = {**method_defaults("occlusion"), **case.params}
    windows = len(window_starts(s.size, p["window"], p["stride"])) ** 2
    return {"perturbations": len(s.images) * windows * len(target.units)}


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
            result[i] = f"failed: {type(err).__name__}: {err}".splitlines()[0]
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


def case_rows(s: Setup, contenders: list[Contender], timings: dict[int, Timing | str], skipped: dict[str, str]) -> list[dict]:
    """Speed rows of every contender, then vizbench's vs_bare and vs_peer (against the fastest peer variant)."""
    rows, amount = [], work(s)
    for i, c in enumerate(contenders):
        amp, compile = ("off", False) if c.eager_fp32 else (s.amp, s.compile)
        base = {"contender": c.name, "variant": c.variant, **run_context(s.device, amp, s.channels_last, compile, c.batch_size)}
        t = timings[i]
        rows += [{**base, "metric": "time_s", "value": math.nan, "status": t}] if isinstance(t, str) else \
            [{**base, **r} for r in speed_rows(t, amount)] + [{**base, "metric": "repeats", "value": float(len(t.times))}]
    rows += [{"contender": p, "metric": "time_s", "value": math.nan, "status": f"failed: {why}"} for p, why in skipped.items()]
    ok = {i: t for i, t in timings.items() if isinstance(t, Timing)}
    viz = [t for i, t in ok.items() if contenders[i].name == "vizbench"]
    bare = [t for i, t in ok.items() if contenders[i].name == "bare"]
    ctx = {"contender": "vizbench", **run_context(s.device, s.amp, s.channels_last, s.compile, contenders[0].batch_size)}
    rows += [{**ctx, **r} for r in ratio_rows("vs_bare", viz, bare, "bare failed")]
    if PEERS[s.case.method]:
        peers = [t for i, t in ok.items() if contenders[i].name in PEERS[s.case.method]]
        why = next(iter(skipped.values()), "peers off (speed.peers=false)" if not s.peers else "every peer variant failed")
        rows += [{**ctx, **r} for r in ratio_rows("vs_peer", viz, peers, why)]
    return rows


def ratio_rows(metric: str, mine: list[Timing], others: list[Timing], why_missing: str) -> list[dict[str, Any]]:
    """`metric`: vizbench's median over the fastest other's median; `<metric>_min`: the same with each one's
    fastest repeat (steadier on a shared machine, where other load only ever adds time). Failed rows say what is missing."""
    reason = "vizbench failed" if not mine else why_missing if not others else ""
    if reason:
        return [{"metric": m, "value": math.nan, "status": f"failed: {reason}"} for m in (metric, f"{metric}_min")]
    return [{"metric": metric, "value": mine[0].median / min(t.median for t in others)},
            {"metric": f"{metric}_min", "value": mine[0].min / min(t.min for t in others)}]


def run_case(case: Case, cfg: DictConfig, device: torch.device) -> list[dict]:
    """Build, time and tabulate one case; a case that cannot be built gives one failed row."""
    try:
        s, columns = setup(case, cfg, device)
        skipped = {p: why for p in PEERS[case.method] if s.peers and (why := peer_missing(p))}
        contenders = BUILDERS[case.method](s, s.peers and not skipped)
    except Exception as err:  # a broken case is recorded, never kills the run
        log.debug("case %s failed", case.name, exc_info=True)
        reason = f"{type(err).__name__}: {err}".splitlines()[0]
        return [{"case": case.name, "method": case.method, "model": case.model, "layer": case.layer,
                 "contender": "vizbench", "metric": "time_s", "value": math.nan, "status": f"failed: {reason}"}]
    timings = time_interleaved(contenders, device, case.repeats or cfg.speed.repeats, cfg.speed.warmup,
                               cfg.speed.budget_s, cfg.speed.memory)
    return [{**columns, "note": "; ".join(s.notes), **r} for r in case_rows(s, contenders, timings, skipped)]


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per case: median seconds of vizbench, bare and the fastest peer variant, and vizbench's ratios."""
    ok = df[df["status"] == "ok"]
    times = ok[ok["metric"] == "time_s"].pivot_table(index="case", columns="contender", values="value", aggfunc="min")
    ratios = ok[ok["metric"].str.startswith("vs_")].pivot_table(index="case", columns="metric", values="value")
    table = pd.DataFrame(index=pd.Index(df["case"].dropna().unique(), name="case"))
    for name, column in (("vizbench_s", "vizbench"), ("bare_s", "bare")):
        table[name] = times.get(column)
    table["peer_s"] = times.reindex(columns=list(PEER_MODULES)).min(axis=1)
    for metric in ("vs_bare", "vs_bare_min", "vs_peer", "vs_peer_min"):
        table[metric] = ratios.get(metric)
    return table.reset_index()


def with_targets(table: pd.DataFrame, cases: list[Case]) -> pd.DataFrame:
    """The summary with each case's targets and whether they were met."""
    by_name = {c.name: c.targets for c in cases}
    for metric in ("vs_bare", "vs_peer"):
        bound = table["case"].map(lambda n: by_name.get(n, {}).get(metric, math.nan))
        table[f"{metric}_target"] = bound
        table[f"{metric}_met"] = [("yes" if v <= b else "NO") if b == b and v == v else "" for v, b in zip(table[metric], bound)]
    return table


def run_speed(cfg: DictConfig) -> pd.DataFrame:
    """Time every configured case; write metrics.csv after each case and DONE at the end; print a summary."""
    threads = torch.get_num_threads()
    if cfg.speed.threads:
        torch.set_num_threads(cfg.speed.threads)
    try:
        return _run_speed(cfg)
    finally:
        torch.set_num_threads(threads)


def _run_speed(cfg: DictConfig) -> pd.DataFrame:
    """run_speed at the configured thread count."""
    out = output_dir(cfg)
    sp = cfg.speed
    device = resolve_device(cfg.device)
    autocast(device, cfg.amp)  # refuses a bad amp before any work
    cases = [c.scaled(sp.scale) for c in parse_cases(sp.cases) if not sp.only or c.name in sp.only]
    if sp.only and len(cases) != len(set(sp.only)):
        raise ValueError(f"speed.only={list(sp.only)} names a case not in speed.cases ({', '.join(c.name for c in parse_cases(sp.cases))})")
    context = {"run_id": run_id(out), "experiment": cfg.experiment, "preset": "default", "seed": cfg.seed, **overrides_columns()}
    (out / "DONE").unlink(missing_ok=True)
    rows: list[dict] = []
    for case in tqdm(cases, desc="speed", disable=not cfg.progress, file=sys.stderr):
        rows += run_case(case, cfg, device)
        tables.write_csv_atomic(tables.to_frame(rows, context), out / "metrics.csv")
    df = tables.to_frame(rows, context)
    tables.write_csv_atomic(df, out / "metrics.csv")
    (out / "DONE").touch()
    print(with_targets(summary(df), cases).to_markdown(index=False, floatfmt=".3g"))
    print(f"run folder: {out}")
    return df
