"""Gradient-ascent feature visualization: many units in one batch, one forward/backward per step for the batch."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from methods.base import GREY, Target, Visualization, check_units, invalid_choice, one_line, pair
from methods.graph import fast_forward

from . import regularizers as reg
from .objectives import Objective, diversity, from_target
from .parameterizations import PARAMS, SQUASHES, make_param
from .transforms import TransformSpec, draw, resolve, warp

OPTIMIZERS = {"adam": torch.optim.Adam, "nadam": torch.optim.NAdam, "sgd": torch.optim.SGD}
FUSED = ("adam", "sgd")  # one kernel per step instead of one per elementwise op (CPU and CUDA)
AMP = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Settings:
    """Preset knobs, passed to `visualize` as keyword arguments (defaults = Olah et al. 2017)."""

    param: str = "fourier"  # pixel | fourier | maco
    decorrelate: bool = True  # Lucid's colour decorrelation (fourier; pixel with squash=sigmoid); 3-channel inputs only
    decay_power: float = 1.0  # fourier: coefficients scaled by 1 / freq^decay_power
    squash: str = "sigmoid"  # pixel: sigmoid of free logits, or clamp raw pixels to [0, 1]
    init_sd: float | None = None  # std of the random start (None: 0.01; maco phase: 1.0)
    maco_images: Tensor | None = None  # maco: natural images [N, C, H, W] for the magnitude (None: skimage photos, C 1 or 3)
    optimizer: str = "adam"  # adam | nadam | sgd
    lr: float = 0.05
    momentum: float = 0.0  # sgd only
    steps: int = 512
    transforms: Any = "standard"  # standard | none | mapping of TransformSpec fields
    l1: float = 0.0  # weights of penalties on the image (mean over pixels, around grey)
    l2: float = 0.0
    tv: float = 0.0
    tv_beta: float = 2.0
    alpha: float = 6.0  # alpha-norm exponent
    alpha_weight: float = 0.0
    norm_bound: float | None = None  # Mahendran's B: alpha-norm divided by B^alpha, TV by (B / 6.5)^beta
    decay: float = 0.0  # steps on raw pixels (param=pixel): x <- grey + (1 - decay)(x - grey)
    blur_every: int = 0
    blur_sigma: float = 1.0
    clip_norm_pct: float = 0.0
    clip_contrib_pct: float = 0.0
    l2_bound: float | None = None  # project onto ||x - grey||_2 <= l2_bound * sqrt(C H W) (RMS radius)
    diversity: float = 0.0  # weight of the diversity objective (needs images_per_unit > 1)
    cossim_pow: float = 0.0  # direction objective: cosine-similarity power
    objective: Objective | None = None  # replaces the target's objective
    minimize: bool = False  # descend the objective instead (the unit's least activating image); activation stays raw
    images_per_unit: int = 1
    units_per_batch: int | None = None  # None: all units in one batch
    snapshots: Sequence[int] = ()  # steps (1-based) after which to keep the images
    progress_every: int = 0  # progress bar update period in steps (0: steps // 20)

    def __post_init__(self) -> None:
        self.snapshots = tuple(int(s) for s in self.snapshots)
        for key, value, valid in (("param", self.param, PARAMS), ("squash", self.squash, SQUASHES),
                                  ("optimizer", self.optimizer, OPTIMIZERS)):
            if value not in valid:
                raise invalid_choice(key, value, valid)
        resolve(self.transforms)
        for key in ("steps", "images_per_unit", "units_per_batch"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)} must be >= 1")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr} must be > 0")
        for key in ("l1", "l2", "tv", "alpha_weight", "diversity", "momentum", "blur_every", "clip_norm_pct",
                    "clip_contrib_pct", "cossim_pow"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}={getattr(self, key)} must be >= 0")
        if not 0 <= self.decay < 1:
            raise ValueError(f"decay={self.decay} must be in [0, 1)")
        pixel_ops = {"decay": self.decay, "blur_every": self.blur_every, "clip_norm_pct": self.clip_norm_pct,
                     "clip_contrib_pct": self.clip_contrib_pct, "l2_bound": self.l2_bound}
        used = [k for k, v in pixel_ops.items() if v]
        if used and self.param != "pixel":
            raise ValueError(f"{used[0]} acts on raw pixels and needs param='pixel', not {self.param!r}")
        bad = [s for s in self.snapshots if not 1 <= s <= self.steps]
        if bad:
            raise ValueError(f"snapshot step {bad[0]} is outside 1..{self.steps}")


@dataclass(kw_only=True)
class Ascent(Visualization):
    """Optimized images, `images_per_unit` per unit (unit-major), with their final activation, snapshots and trace.

    trace[s - 1] is the objective (the sign `activation` has, mean over the unit's images) of the images after
    step s. Rows 0..steps-2 are read off the forward pass that step s + 1 runs anyway, so they see that step's
    transforms (jitter, scale, rotate, noise) and amp; the last row is the final, untransformed evaluation,
    equal to `activation`. With transforms='none' and amp='off', every row is the objective of the images as
    a snapshot after that step holds them. None (or zero rows) where no optimization ran. `start` (before step 1)
    and `grey` are measured as `activation` is; `flags` marks a unit whose activation ended worse than both.
    """

    activation: Tensor  # [U] objective of each unit's images, averaged over them
    snapshots: dict[int, Tensor]  # step -> images [U * images_per_unit, C, H, W] after that step
    steps: int
    trace: Tensor | None = None  # [steps, U] objective after each step (see the class docstring)
    start: Tensor | None = None  # [U] objective of the random start images, measured as `activation` is
    grey: Tensor | None = None  # [U] objective of a plain grey (GREY) image, measured the same way
    minimize: bool = False  # the images were optimized to lower the objective

    @property
    def values(self) -> dict[str, Tensor]:
        """Final activation of each unit, and the objective of its start and of a grey image where measured."""
        refs = {"objective_start": self.start, "objective_grey": self.grey}
        return {"activation": self.activation, **{k: v for k, v in refs.items() if v is not None}}

    @property
    def flags(self) -> dict[str, dict[int, str]]:
        """'flagged: ...' on the activation of each unit whose optimization ended worse than its start or grey."""
        if self.start is None or self.grey is None:
            return {}
        found = shortfalls(self.activation, self.start, self.grey, self.minimize)
        return {"activation": {u: why for u, why in zip(self.units, found) if why}}


def shortfalls(final: Tensor, start: Tensor, grey: Tensor, minimize: bool = False) -> list[str | None]:
    """Per unit, why the final objective is worse than the better of its start and a grey image (None: it is not)."""
    side, sign, better = ("above", ">", min) if minimize else ("below", "<", max)
    out: list[str | None] = []
    for f, s, g in zip(final.tolist(), start.tolist(), grey.tolist()):
        ref = better(s, g)
        where = "its start" if ref == s else "a grey image"
        worse = f > ref if minimize else f < ref
        out.append(f"flagged: objective ended {side} {where} ({f:.4g} {sign} {ref:.4g})" if worse else None)
    return out


def settings(knobs: dict[str, Any]) -> Settings:
    """Settings from keyword knobs; an unknown knob raises one line listing the valid ones."""
    valid = [f.name for f in fields(Settings)]
    bad = [k for k in knobs if k not in valid]
    if bad:
        raise invalid_choice("gradient_ascent setting", bad[0], valid)
    return Settings(**knobs)


def image_seed(seed: int, unit: int, index: int) -> int:
    """The seed of one image's random start: depends only on (seed, unit, image index)."""
    return int(np.random.SeedSequence([seed, unit, index]).generate_state(1)[0])


def penalty(images: Tensor, cfg: Settings) -> Tensor:
    """Weighted sum of the differentiable regularizers per image: [B]."""
    total = images.new_zeros(images.shape[0])
    b = cfg.norm_bound or 1.0
    v = b / 6.5 if cfg.norm_bound else 1.0
    if cfg.l1:
        total = total + cfg.l1 * reg.l1(images)
    if cfg.l2:
        total = total + cfg.l2 * reg.l2(images)
    if cfg.tv:
        total = total + cfg.tv * reg.tv(images, cfg.tv_beta) / v**cfg.tv_beta
    if cfg.alpha_weight:
        total = total + cfg.alpha_weight * reg.alpha_norm(images, cfg.alpha) / b**cfg.alpha
    return total


def pixel_steps(param: nn.Module, cfg: Settings, step: int) -> None:
    """The in-place regularizer steps on raw pixels (Yosinski 2015, Erhan 2009), then the range projection."""
    if cfg.param == "pixel":
        raw, c = param.raw, param.centre
        if cfg.decay:
            reg.decay_(raw, cfg.decay, c)
        if cfg.blur_every and step % cfg.blur_every == 0:
            reg.blur_(raw, cfg.blur_sigma)
        if cfg.clip_norm_pct:
            reg.clip_small_norm_(raw, cfg.clip_norm_pct, c)
        if cfg.clip_contrib_pct:
            reg.clip_small_contrib_(raw, raw.grad, cfg.clip_contrib_pct, c)
        if cfg.l2_bound:
            reg.project_l2_(raw, cfg.l2_bound, c)
    param.project()


@dataclass
class Run:
    """What one batch of units needs besides the settings."""

    forward: nn.Module
    objective: Objective
    size: tuple[int, int]  # (h, w)
    channels: int
    seed: int
    device: torch.device
    amp: torch.dtype | None
    spec: TransformSpec | None
    traced: Objective | None = None  # what the trace records when it is not `objective` itself (diversity on)
    sign: float = 1.0  # with traced None, the trace is sign * objective (-1: minimize optimizes the negated target)


def optimize_batch(run: Run, cfg: Settings, units: Sequence[int], bar: tqdm,
                   ) -> tuple[nn.Module, dict[int, Tensor], Tensor, Tensor]:
    """Optimize images_per_unit images for each unit in ONE batch; returns the parameterization, snapshots,
    the trace [steps - 1, B]: row s - 1 = the traced objective of each image after step s (s < steps), read
    off step s + 1's forward (no extra pass; it stays on the device until the caller moves it), and the start
    images [B, C, H, W] (before step 1)."""
    k, size, dev = cfg.images_per_unit, run.size, run.device
    seeds = [image_seed(run.seed, u, i) for u in units for i in range(k)]
    param = make_param(cfg.param, seeds, size, channels=run.channels, decorrelate=cfg.decorrelate,
                       decay_power=cfg.decay_power, squash=cfg.squash, init_sd=cfg.init_sd,
                       maco_images=cfg.maco_images).to(dev)
    unit_idx = torch.tensor([u for u in units for _ in range(k)], device=dev)
    opt_kw: dict[str, Any] = {"momentum": cfg.momentum} if cfg.optimizer == "sgd" else {}
    if cfg.optimizer in FUSED:
        opt_kw["fused"] = True
    opt = OPTIMIZERS[cfg.optimizer](param.parameters(), lr=cfg.lr, **opt_kw)
    spec = run.spec
    thetas = draw(spec, cfg.steps, size, torch.Generator().manual_seed(run.seed)).to(dev) if spec else None
    noise_gen = torch.Generator(device=dev).manual_seed(run.seed) if spec and spec.noise else None
    every = cfg.progress_every or max(1, cfg.steps // 20)
    snaps: dict[int, Tensor] = {}
    trace = torch.empty(cfg.steps - 1, len(seeds), device=dev)
    with torch.no_grad():  # clones: a clamped pixel image is its parameter, which the steps change in place
        start = param().detach().clone()
    for step in range(1, cfg.steps + 1):
        opt.zero_grad(set_to_none=True)
        images = param()
        x = warp(images, thetas[step - 1], size, spec.pad_value) if spec else images
        if noise_gen is not None:  # one noise field per step for the whole batch, like the geometric draws
            x = x + spec.noise * torch.randn((1, *x.shape[1:]), generator=noise_gen, device=dev)
        with torch.autocast(dev.type, dtype=run.amp or torch.float32, enabled=run.amp is not None):
            acts = run.forward(x)
        acts = acts.float()
        score = run.objective(acts, unit_idx)
        if step > 1:  # this forward sees the images after step - 1: that step's row of the trace
            with torch.no_grad():
                trace[step - 2] = run.traced(acts, unit_idx) if run.traced is not None else score
        loss = (penalty(images, cfg) - score).sum()
        loss.backward(inputs=list(param.parameters()))  # image gradients only: no weight gradients
        opt.step()
        pixel_steps(param, cfg, step)
        if step in cfg.snapshots:
            with torch.no_grad():
                snaps[step] = param().detach().clone()
        if step % every == 0:
            bar.update(every)
    bar.update(cfg.steps % every)
    if run.sign != 1.0:
        trace.mul_(run.sign)
    return param, snaps, trace, start


def visualize(model: nn.Module, target: Target, *, input_size: int | tuple[int, int], in_channels: int = 3,
              normalize: nn.Module | None = None, seed: int = 0, amp: str = "off", channels_last: bool = True,
              compile: bool = False, progress: bool = False, **knobs: Any) -> Ascent:
    """Feature visualization by gradient ascent on the input, all target units in one batch (see Settings for knobs).

    Images are [U * images_per_unit, in_channels, h, w] (input_size: a side, or (h, w)), unit-major:
    images[u * images_per_unit + i] is image i of target.units[u]. Colour decorrelation applies where
    in_channels = 3 only; other channel counts are optimized channel by channel. The steps run the
    model as `methods.graph.fast_forward` builds it (cut at the layer, BatchNorm folded, NHWC with
    channels_last). fp16 autocast works on CPU too (PyTorch >= 2.1) but is slow there; bf16 is the CPU choice.
    """
    cfg = settings(knobs)
    if amp not in AMP:
        raise invalid_choice("amp", amp, AMP)
    size = pair(input_size)
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels={in_channels!r} must be a positive number of channels")
    device = next(model.parameters()).device
    units = tuple(int(u) for u in target.units)
    net = fast_forward(model, target.layer, normalize, channels_last)  # the truncated model as a faster graph
    grey_acts = probe(net, (in_channels, *size), device)
    if target.kind in ("channel", "neuron", "class") and cfg.objective is None:
        check_units(units, grey_acts.shape[1], target.layer or "output")
    base = cfg.objective or from_target(target, cfg.cossim_pow, device)
    objective = -base if cfg.minimize else base
    if cfg.diversity:
        objective = objective + cfg.diversity * diversity(cfg.images_per_unit)
    run = Run(torch.compile(net) if compile else net, objective, size, in_channels, seed, device, AMP[amp],
              resolve(cfg.transforms), traced=base if cfg.diversity else None,
              sign=-1.0 if cfg.minimize and not cfg.diversity else 1.0)
    per = cfg.units_per_batch or len(units)
    batches = [units[i : i + per] for i in range(0, len(units), per)]
    images, snaps, traces, starts = [], {s: [] for s in cfg.snapshots}, [], []
    with tqdm(total=cfg.steps * len(batches), disable=not progress, leave=False) as bar:
        for chunk in batches:
            param, chunk_snaps, chunk_trace, chunk_start = optimize_batch(run, cfg, chunk, bar)
            with torch.no_grad():
                images.append(param().detach())
                starts.append(measure(net, base, chunk_start, chunk, cfg.images_per_unit))
            for s, x in chunk_snaps.items():
                snaps[s].append(x)
            traces.append(chunk_trace.view(cfg.steps - 1, len(chunk), cfg.images_per_unit).mean(2))
    final = torch.cat(images).float()
    with torch.no_grad():
        act = measure(net, base, final, units, cfg.images_per_unit)
        grey = base(grey_acts.expand(len(units), *grey_acts.shape[1:]), torch.tensor(units, device=device))
    trace = torch.cat([torch.cat(traces, 1), act[None]]).cpu()  # the last row: the final activation itself
    return Ascent(images=final.cpu(), units=units, layer=target.layer, images_per_unit=cfg.images_per_unit,
                  activation=act.cpu(), snapshots={s: torch.cat(x).cpu() for s, x in snaps.items()}, steps=cfg.steps,
                  trace=trace, start=torch.cat(starts).cpu(), grey=grey.cpu(), minimize=cfg.minimize)


def measure(net: nn.Module, objective: Objective, images: Tensor, units: Sequence[int], k: int) -> Tensor:
    """The objective [U] of images [U * k, C, H, W] (k per unit, unit-major), untransformed in fp32, mean per unit."""
    idx = torch.tensor(units, device=images.device).repeat_interleave(k)
    return objective(net(images.float()).float(), idx).view(len(units), k).mean(1)


def probe(net: nn.Module, shape: tuple[int, int, int], device: torch.device) -> Tensor:
    """The truncated model's output [1, ...] (fp32) for one grey [C, H, W] image; a model that fails on it raises one
    line."""
    with torch.inference_mode():
        try:
            return net(torch.full((1, *shape), GREY, device=device)).float()
        except torch.OutOfMemoryError:
            raise
        except RuntimeError as err:
            raise ValueError(f"the model fails on a {[1, *shape]} input (in_channels={shape[0]}, input_size="
                             f"{list(shape[1:])}): {one_line(err)}") from None


def check_params(**knobs: Any) -> None:
    """One-line ValueErrors for unknown or out-of-range settings, before any model is built."""
    settings(knobs)
