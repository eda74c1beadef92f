"""Occlusion sensitivity (Zeiler & Fergus 2014): how much a target score drops when a patch hides each region.

Map semantics equal captum's Occlusion with sliding_window_shapes=(C, window, window), strides=(C, stride, stride):
windows start at 0, stride, ... along each of H and W up to the first start that reaches the last pixel (the last
window is clipped to the image), and each pixel gets the mean over the windows covering it of (original score -
occluded score). A window hides all C channels of the image (any C; H and W need not be equal).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor, nn
from torchvision.transforms.functional import gaussian_blur

from methods.base import GREY, Target, Visualization, check_units, invalid_choice, read_out
from methods.graph import fast_forward
from methods.occlusion_incremental import Incremental, unsupported
from methods.receptive_field import box, field

FILLS = ("grey", "zero", "mean", "blur")
ENGINES = ("auto", "incremental", "full")
KINDS = ("class", "channel", "neuron")
REDUCES = ("mean", "max")
OUTPUTS = ("logit", "prob")


@dataclass(kw_only=True)
class OcclusionMaps(Visualization):
    """Occlusion maps of N images for every unit; `images` are the heatmaps, unit-major (images_per_unit = N).

    `image_indices` [N]: where each image comes from in the caller's data (default 0..N-1); `unit_sources`
    [U, n]: the data indices of the images each unit is scored on (None: all N for every unit).
    """

    maps: Tensor  # [N, U, H, W] raw score drops
    perturbations: int  # occluded images evaluated
    windows: tuple[Tensor, Tensor]  # row and column starts
    evaluated: Tensor  # [rows, cols] bool: windows evaluated
    image_indices: Tensor | None = None
    unit_sources: Tensor | None = None
    engine: str = "full"  # how the occluded scores were computed: "incremental" or "full" forwards
    approx: float | None = None  # incremental's projective-field threshold (None: exact)

    def compared(self) -> list[Tensor]:
        """Each unit's raw maps [N, H, W]."""
        return [self.maps[:, i] for i in range(len(self.units))]

    def own_maps(self, i: int) -> tuple[list[int], Tensor]:
        """Unit i's own images: their data indices and raw maps [n, H, W]."""
        source = self.sources().tolist()
        own = source if self.unit_sources is None else self.unit_sources[i].tolist()
        return own, self.maps[[source.index(idx) for idx in own], i]

    def sources(self) -> Tensor:
        """Data index of each occluded image [N]."""
        return self.image_indices if self.image_indices is not None else torch.arange(len(self.maps))

    @property
    def values(self) -> dict[str, Tensor]:
        """Mean drop of each unit over all maps."""
        return {"mean_drop": self.maps.mean(dim=(0, 2, 3))}

    @property
    def work(self) -> dict[str, float]:
        """Units, images occluded and perturbations evaluated."""
        return {"units": len(self.units), "images": len(self.maps), "perturbations": self.perturbations}


def visualize(
    model: nn.Module,
    images: Tensor,
    target: Target,
    *,
    normalize: nn.Module | None = None,
    window: int | str = "auto",
    stride: int | str = "auto",
    fill: str | float = "grey",
    batch_size: int = 64,
    reduce: str = "mean",
    output: str = "logit",
    skip_outside_rf: bool = True,
    channels_last: bool = True,
    engine: str = "auto",
    approx: float | None = None,
    progress: bool = False,
) -> OcclusionMaps:
    """Occlusion maps of `images` [N, C, H, W] in [0, 1] for every unit of `target` (class, channel or neuron).

    Args:
        window, stride: in pixels; "auto" = an eighth of the shorter image side (8 px at 64, 28 at 224) and half
            the window (see `sizes`).
        fill: what hides a window: "grey" (0.5), "zero", "mean" (the image's mean colour), "blur" (the blurred
            image), or a number.
        reduce: channel targets: "mean" (spatial mean) or "max" (feature-map max, Zeiler & Fergus Fig. 7).
        output: class targets: "logit" or "prob" (softmax).
        skip_outside_rf: neuron targets: do not evaluate windows outside the unit's receptive field (their drop
            is exactly zero).
        channels_last: run the model NHWC, faster with oneDNN and cuDNN (it always runs as methods/graph.py
            builds it: cut at the layer, BatchNorm folded).
        engine: "incremental": recompute each occluded image only where its window changes the activations
            (methods/occlusion_incremental.py, Krypton; exact up to float rounding); "full": one forward per window
            (as captum); "auto": where the model traces with torch.fx and there are more than three batches of
            windows, whichever of the two is faster on the first three (see _drops); else full.
        approx: incremental only: Krypton's projective-field threshold in (0, 1]: no changed region grows beyond
            this fraction of its map's side (faster, approximate); None = exact.

    Returns the heatmaps [U*N, 3, H, W] (RGB whatever C, unit-major) and the raw maps [N, U, H, W] (see OcclusionMaps).
    """
    window, stride = sizes(window, stride, images.shape[-2:])
    _check(images, target, window, stride, fill, batch_size, reduce, output)
    check_params(engine=engine, approx=approx)
    device = next(model.parameters()).device
    images = images.to(device)
    n, _, h, w = images.shape
    net = fast_forward(model, target.layer, normalize, channels_last)
    base = baseline(images, fill, window)
    rows, cols = window_starts(h, window, stride, device), window_starts(w, window, stride, device)
    with torch.inference_mode():
        first, *rest = images.split(batch_size)
        acts = net(first)
        _check_units(acts, target)
        orig = torch.cat([score(a, target, reduce, output) for a in [acts, *map(net, rest)]])
        keep = torch.ones(len(rows), len(cols), dtype=torch.bool, device=device)
        if skip_outside_rf and target.kind == "neuron":
            keep = _windows_in_field(model, target, acts.shape[-2:], (h, w), rows, cols, window, images.shape[1])
        used = chosen_engine(net, engine, approx)
        drops, used = _drops(net, images, base, orig, keep, rows, cols, window, target, reduce, output, batch_size,
                             progress, used, approx, race=engine == "auto" and approx is None)
    maps = spread(drops.clone(), window, stride, h, w)  # clone: a normal tensor, not an inference tensor
    return OcclusionMaps(images=heatmaps(images, maps), units=tuple(target.units), layer=target.layer,
                         images_per_unit=n, maps=maps, perturbations=n * int(keep.sum()), windows=(rows, cols),
                         evaluated=keep.clone(), engine=used, approx=approx)


def chosen_engine(net: nn.Module, engine: str, approx: float | None) -> str:
    """The engine that runs: "auto" is incremental where the graph allows it; one line where the asked one cannot."""
    reason = unsupported(net)
    if engine == "full" or (engine == "auto" and reason is not None and approx is None):
        return "full"
    if reason is not None:
        raise ValueError(f"engine={engine}{f' with approx={approx}' if approx is not None else ''} needs the incremental "
                         f"engine, which cannot run here: {reason} (engine=full runs full forwards)")
    return "incremental"


def score(acts: Tensor, target: Target, reduce: str = "mean", output: str = "logit") -> Tensor:
    """Per-image scores [B, U] of the target's units from the truncated model's output."""
    idx = torch.tensor(target.units, device=acts.device)
    if target.kind == "class":  # logits [N, K], or a dense map [N, K, H, W]: the class's mean over the map
        if not (acts.dim() == 2 or acts.dim() == 4 and not target.layer):
            raise ValueError(f"class targets need the model's [N, classes] or dense [N, classes, H, W] output; "
                             f"layer {target.layer!r} gives {tuple(acts.shape)}")
        scores = acts.softmax(1) if output == "prob" else acts
        return (scores if scores.dim() == 2 else scores.flatten(2).mean(2))[:, idx]
    if target.kind == "channel" and reduce == "max":
        return acts[:, idx].flatten(2).amax(2)
    return read_out(acts, target)


def baseline(images: Tensor, fill: str | float, window: int) -> Tensor | float:
    """What replaces an occluded window: a number or a tensor shaped like `images`."""
    if not isinstance(fill, str):
        return float(fill)
    if fill == "grey":
        return GREY
    if fill == "zero":
        return 0.0
    if fill == "mean":
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images).contiguous()
    sigma = window / 2
    kernel = min(2 * math.ceil(3 * sigma) + 1, 2 * min(images.shape[-2:]) - 1)
    return gaussian_blur(images, [kernel, kernel], [sigma, sigma])


def sizes(window: int | str, stride: int | str, hw: Sequence[int]) -> tuple[int, int]:
    """The window and stride in pixels for images of side (h, w): "auto" window = an eighth of the shorter side
    (at least 1), "auto" stride = half the window (at least 1)."""
    check_params(window=window, stride=stride)
    window = max(1, round(min(hw) / 8)) if window == "auto" else window
    return window, max(1, window // 2) if stride == "auto" else stride


def window_starts(size: int, window: int, stride: int, device: torch.device | None = None) -> Tensor:
    """Window start coordinates along one axis, as captum places them (the last one may stick out)."""
    count = math.ceil((size - window) / stride) + 1
    return torch.arange(count, device=device) * stride


def spread(drops: Tensor, window: int, stride: int, h: int, w: int) -> Tensor:
    """Per-pixel mean of the drops [N, U, rows, cols] of the windows covering each pixel: [N, U, H, W]."""
    rows = _coverage(drops.shape[-2], window, stride, h, drops)  # [rows, H]: window i covers pixel row y
    cols = _coverage(drops.shape[-1], window, stride, w, drops)
    total = rows.T @ drops @ cols  # sum over windows of drop * box, separably
    return total / (rows.sum(0)[:, None] * cols.sum(0)[None, :])


def _coverage(count: int, window: int, stride: int, size: int, like: Tensor) -> Tensor:
    """[count, size] float: 1 where window i (starting at i * stride) covers the pixel."""
    starts = torch.arange(count, device=like.device)[:, None] * stride
    pixels = torch.arange(size, device=like.device)[None, :]
    return ((pixels >= starts) & (pixels < starts + window)).to(like.dtype)


def occlude(images: Tensor, base: Tensor | float, which: Tensor, top: Tensor, left: Tensor, window: int) -> Tensor:
    """Copies of images[which] with the window at (top, left) replaced by the baseline: [B, C, H, W]."""
    out = images[which]
    for k, (n, t, l) in enumerate(zip(which.tolist(), top.tolist(), left.tolist())):
        out[k, :, t:t + window, l:l + window] = base[n, :, t:t + window, l:l + window] if isinstance(base, Tensor) else base
    return out


def heatmaps(images: Tensor, maps: Tensor) -> Tensor:
    """Display maps [U*N, 3, H, W] (unit-major): red where hiding lowers the score, blue where it raises it,
    blended over the grey photo (its channel mean, any C) with opacity proportional to |map| / max |map|."""
    v = maps / maps.abs().amax(dim=(2, 3), keepdim=True).clamp_min(1e-12)  # [N, U, H, W] in [-1, 1]
    red = torch.tensor([1.0, 0.0, 0.0], device=maps.device).view(1, 1, 3, 1, 1)
    blue = torch.tensor([0.0, 0.0, 1.0], device=maps.device).view(1, 1, 3, 1, 1)
    colour = torch.where(v[:, :, None] >= 0, red, blue)
    alpha = 0.8 * v.abs()[:, :, None]
    photo = images.mean(1, keepdim=True)[:, None]  # [N, 1, 1, H, W]
    out = (1 - alpha) * photo + alpha * colour
    return out.transpose(0, 1).reshape(-1, 3, *maps.shape[-2:]).clamp(0, 1)


def _drops(
    net: nn.Module, images: Tensor, base: Tensor | float, orig: Tensor, keep: Tensor, rows: Tensor, cols: Tensor,
    window: int, target: Target, reduce: str, output: str, batch_size: int, progress: bool, engine: str,
    approx: float | None, race: bool,
) -> tuple[Tensor, str]:
    """Score drops [N, U, rows, cols] of every kept window of every image, in batches (0 where not kept), and the
    engine that computed them.

    With `race` and more than RACE batches, the incremental engine computes the first two (the first pays for
    first-use setup), the full engine the third, and the rest go to the faster of the timed two (the full
    engine's first batch here may carry some setup too, which favours incremental); with fewer batches the full
    engine computes them all:
    incremental's advantage depends on the model, the image and the window, and on small maps its bookkeeping
    per op can cost more than it saves. Every batch counts, whichever engine computed it.
    """
    n = images.shape[0]
    kept = keep.nonzero()  # [K, 2] window grid indices
    which = torch.arange(n, device=images.device).repeat_interleave(len(kept))
    grid = kept.repeat(n, 1)
    drops = orig.new_zeros(n, orig.shape[1], len(rows), len(cols))
    chunks = range(0, len(which), batch_size)
    scorers = {"full": _full_scorer(net, images, base, rows, cols, window)}
    if engine == "incremental":
        scorers["incremental"] = _incremental_scorer(Incremental(net, approx), images, base, rows, cols, window)
    racing = race and engine == "incremental" and len(chunks) > RACE
    if race and not racing:
        engine = "full"  # too few batches to time both: the engine without bookkeeping
    took = {name: math.inf for name in scorers}
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="occlusion", unit="batch", leave=False)
    for step, start in enumerate(chunks):
        if racing and step == RACE:
            engine = min(took, key=took.get)
        name = ("incremental", "incremental", "full")[step] if racing and step < RACE else engine
        b, (i, j) = which[start:start + batch_size], grid[start:start + batch_size].T
        begin = _now(images.device)
        scores = score(scorers[name](b, i, j), target, reduce, output)
        if step >= 1:
            took[name] = min(took[name], _now(images.device) - begin)
        drops[b, :, i, j] = orig[b] - scores
    return drops, engine


RACE = 3  # batches the auto engine runs before choosing: incremental twice (the second timed), full once


def _full_scorer(net: nn.Module, images: Tensor, base: Tensor | float, rows: Tensor, cols: Tensor, window: int,
                 ) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """The truncated model's outputs for windows (rows[i], cols[j]) of images `b`: one forward per window."""
    return lambda b, i, j: net(occlude(images, base, b, rows[i], cols[j], window))


def _incremental_scorer(engine: Incremental, images: Tensor, base: Tensor | float, rows: Tensor, cols: Tensor,
                        window: int) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """As _full_scorer, computed incrementally from each image's cached activations (images in order)."""
    prepared: list[int] = []

    def run(b: Tensor, i: Tensor, j: Tensor) -> Tensor:
        outs = []
        for k in b.unique_consecutive().tolist():
            if prepared != [k]:
                engine.prepare(images[k:k + 1])
                prepared[:] = [k]
            mine = b == k
            fill = base if not isinstance(base, Tensor) else base[k]
            outs.append(engine.occluded(*occluded_boxes(images[k], fill, rows[i[mine]], cols[j[mine]], window)))
        return torch.cat(outs)

    return run


def _now(device: torch.device) -> float:
    """Seconds on a clock that waits for the device's queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def occluded_boxes(image: Tensor, base: Tensor | float, top: Tensor, left: Tensor, window: int,
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """The pixels each window changes in `image` [C, H, W]: the window's box moved inside the image where it sticks
    out, with the window filled from `base`: values [B, C, wh, ww] and the boxes' corners [B]."""
    _, h, w = image.shape
    wh, ww = min(window, h), min(window, w)
    box_top, box_left = top.clamp(max=h - wh), left.clamp(max=w - ww)
    values = torch.stack([image[:, t:t + wh, l:l + ww] for t, l in zip(box_top.tolist(), box_left.tolist())])
    for k, (t, l, bt, bl) in enumerate(zip(top.tolist(), left.tolist(), box_top.tolist(), box_left.tolist())):
        fill = base[:, t:t + window, l:l + window] if isinstance(base, Tensor) else base
        values[k, :, t - bt:t - bt + window, l - bl:l - bl + window] = fill
    return values, box_top, box_left


def _windows_in_field(
    model: nn.Module, target: Target, map_hw: tuple[int, int], image_hw: tuple[int, int], rows: Tensor, cols: Tensor,
    window: int, in_channels: int,
) -> Tensor:
    """Bool [rows, cols]: windows that overlap the neuron's receptive field (traced, else measured; one line where
    neither works)."""
    try:
        rf = field(model, target.layer, image_hw, in_channels)
    except ValueError as err:
        raise ValueError(f"skip_outside_rf: {err} (skip_outside_rf=False evaluates every window)") from err
    r, c = target.position_in(*map_hw)
    (top, left, bottom, right), _ = box(rf, r, c, image_hw)
    in_rows = (rows < bottom) & (rows + window > top)
    in_cols = (cols < right) & (cols + window > left)
    return in_rows[:, None] & in_cols[None, :]


def _check_units(acts: Tensor, target: Target) -> None:
    """Raise one line if a unit is outside the layer's channels (or the model's classes)."""
    check_units(target.units, acts.shape[1], target.layer or "<logits>")
    if target.kind in ("channel", "neuron") and acts.dim() != 4:
        raise ValueError(f"{target.kind} targets need a [N, C, H, W] layer; {target.layer!r} gives {tuple(acts.shape)}")
    check_position(target, acts)


def check_position(target: Target, acts: Tensor) -> None:
    """Raise one line if a neuron target's position lies outside the layer's map."""
    if target.kind == "neuron" and target.position is not None:
        (r, c), (h, w) = target.position, acts.shape[-2:]
        if not (0 <= r < h and 0 <= c < w):
            raise ValueError(f"target.position={tuple(target.position)} is outside layer {target.layer!r}'s {h}x{w} map")


def _check(
    images: Tensor, target: Target, window: int, stride: int, fill: str | float, batch_size: int, reduce: str, output: str
) -> None:
    """One-line ValueErrors for bad arguments."""
    if images.dim() != 4:
        raise ValueError(f"images must be [N, C, H, W]; got shape {tuple(images.shape)}")
    if target.kind not in KINDS:
        raise ValueError(f"occlusion supports target.kind {', '.join(KINDS)}; got {target.kind!r}")
    if not target.units:
        raise ValueError("target.units is empty; name at least one unit (class index or channel)")
    check_params(window, stride, fill, batch_size, reduce, output)
    if window > min(images.shape[-2:]):
        raise ValueError(f"window={window} must be in 1..{min(images.shape[-2:])} (the image side)")
    if output == "prob" and target.kind != "class":
        raise ValueError(f"output='prob' needs a class target; got kind {target.kind!r}")


def check_params(window: int | str = "auto", stride: int | str = "auto", fill: str | float = "grey",
                 batch_size: int = 64, reduce: str = "mean", output: str = "logit", skip_outside_rf: bool = True,
                 channels_last: bool = True, engine: str = "auto", approx: float | None = None) -> None:
    """One-line ValueErrors for settings that are wrong whatever the model and images."""
    if engine not in ENGINES:
        raise invalid_choice("engine", engine, ENGINES)
    if approx is not None and not 0 < approx <= 1:
        raise ValueError(f"approx={approx} must be in (0, 1] (the largest changed region, as a fraction of each map's "
                         f"side) or None (exact)")
    if approx is not None and engine == "full":
        raise ValueError(f"approx={approx} needs engine=incremental or auto (engine=full is exact by construction)")
    for name, value in (("window", window), ("stride", stride)):
        if isinstance(value, str) and value != "auto":
            raise ValueError(f"{name}={value!r} must be a number of pixels or 'auto'")
        if not isinstance(value, str) and value < 1:
            raise ValueError(f"{name}={value} must be >= 1")
    if not isinstance(window, str) and not isinstance(stride, str) and stride > window:
        raise ValueError(f"stride={stride} must be in 1..window={window}, so every pixel is covered")
    if isinstance(fill, str) and fill not in FILLS:
        raise invalid_choice("fill", fill, FILLS, " (or a number)")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    if reduce not in REDUCES:
        raise invalid_choice("reduce", reduce, REDUCES)
    if output not in OUTPUTS:
        raise invalid_choice("output", output, OUTPUTS)
