"""Dataset exemplars: the k image patches (receptive fields) that activate each unit most, in one streaming pass."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from torch import Tensor, nn

from methods.base import GREY, Target, Visualization, check_units, invalid_choice, nan_last
from methods.graph import fast_forward
from methods.occlusion import check_position
from methods.receptive_field import ReceptiveField, crop, local_field

MODES = ("max", "location")
KINDS = ("channel", "neuron")


@dataclass(kw_only=True)
class TopPatches(Visualization):
    """Each unit's top-k dataset patches: `images` are the receptive-field crops [U*k, 3, s, s], unit-major.

    Boxes are (top, left, bottom, right) in image pixels, bottom and right exclusive.
    """

    indices: Tensor  # [U, k] source image of each patch
    activations: Tensor  # [U, k]
    positions: Tensor  # [U, k, 2] layer-map (row, col)
    boxes: Tensor  # [U, k, 4] clipped to the image
    boxes_unclipped: Tensor  # [U, k, 4] the whole receptive field
    rf: ReceptiveField
    rf_ignores_global: bool  # the field leaves out global branches (e.g. squeeze-excitation)
    rf_method: str  # how the field was found: "graph" (traced) or "gradient" (measured)
    rf_exceeds_image: bool  # the field is larger than the image: crops are the clipped boxes, not the whole field
    context: Tensor  # [U*k, 3, H, W] the source images with each patch's box outlined
    images_processed: int

    @property
    def values(self) -> dict[str, Tensor]:
        """Mean activation of each unit's top-k patches."""
        return {"topk_mean_activation": self.activations.mean(1)}

    @property
    def work(self) -> dict[str, float]:
        """Units and images searched."""
        return {"units": len(self.units), "images": self.images_processed}

Winners = tuple[Tensor, Tensor, Tensor]  # activations, image indices, flat map positions: each [U, m]


def visualize(
    model: nn.Module,
    images: Tensor | Iterable[Tensor],
    target: Target,
    *,
    normalize: nn.Module | None = None,
    k: int = 9,
    per_image: int | None = 1,
    batch_size: int = 64,
    mode: str = "max",
    crop_size: int | None = None,
    minimize: bool = False,
    channels_last: bool = True,
    progress: bool = False,
) -> TopPatches:
    """Top-k (image, position) pairs of every unit of a conv layer, with receptive-field crops and context.

    Args:
        images: [N, 3, H, W] in [0, 1], or an iterable of such batches (streamed; only winners are kept). The
            progress bar's total: a tensor's length, or that of the `dataset` an iterable names (a DataLoader's).
        mode: "max": each image competes with its spatial max; "location": every position competes, at most
            `per_image` per image (None = no limit). Neuron targets compete at their one position.
        batch_size: batch size for a tensor of images (an iterable's own batches are used as they come).
        crop_size: side of the returned crops; None = the receptive field, at most the image side.
        minimize: rank by the negated activation instead: the k least activating patches (each image competes
            with its spatial min in mode "max"); `activations` still hold the raw values.
        channels_last: run the model NHWC, faster with oneDNN and cuDNN (it always runs as methods/graph.py
            builds it: cut at the layer, BatchNorm folded).

    Returns the crops (grey where the field leaves the image), boxes, sources and activations (see
    TopPatches). Fewer than k winners when there are fewer candidates. Winners are ranked in a total order
    (merge_winners): activation descending, NaN last, ties by image index then map position ascending, so the
    result does not depend on batch boundaries, and passes over parts of the data merge exactly (`merge`).
    `indices` count the images as they come (0..N-1); a caller streaming a part of a larger source maps them
    to that source's indices (experiments/adapters/top_patches.py does, for a shard).
    """
    _check(target, k, per_image, batch_size, mode)
    device = next(model.parameters()).device
    net = fast_forward(model, target.layer, normalize, channels_last)
    units = torch.tensor(target.units, device=device)
    kept: dict[int, Tensor] | None = None if isinstance(images, Tensor) else {}
    top, seen, map_hw, image_chw = None, 0, None, None
    with torch.inference_mode():
        for batch in _batches(images, batch_size, progress):
            acts = net(batch.to(device))
            if minimize:
                acts = -acts
            if top is None:
                check_layer(acts, target)
                map_hw, image_chw = tuple(acts.shape[-2:]), tuple(batch.shape[1:])
            cand = _candidates(acts[:, units], target, mode, per_image, seen)
            top = merge_winners([cand] if top is None else [top, cand], k)
            if kept is not None:
                _keep(kept, top[1], batch, seen)
            seen += len(batch)
    if top is None:
        raise ValueError("images is empty: no batches to rank")
    if minimize:
        top = (-top[0], *top[1:])
    return assemble(model, target, images, kept, top, map_hw, image_chw, seen, crop_size)


def merge(
    model: nn.Module, images: Tensor, target: Target, parts: Sequence[tuple[Tensor, Tensor, Tensor]], *,
    k: int = 9, minimize: bool = False, crop_size: int | None = None, images_processed: int | None = None,
) -> TopPatches:
    """The TopPatches one pass over `images` gives, from the results of passes over disjoint parts of it (shards).

    Args:
        images: the whole source [N, 3, H, W] (or any image set that `images[LongTensor]` reads): only the winners
            are read, for their crops and context.
        parts: each part's (activations [U, m], indices [U, m] into `images`, positions [U, m, 2] map (row, col)),
            as its TopPatches holds them, of the same target with the same settings (k, mode, per_image, minimize).
        images_processed: the images the parts searched together (None: len(images)).

    The winners are the top k of the union in visualize's total order (merge_winners), so they equal one
    pass's exactly: same activations, indices, positions and boxes.
    """
    check_params(k=k, crop_size=crop_size)
    parts = [tuple(t.cpu() for t in part) for part in parts]
    if not parts:
        raise ValueError("parts is empty: nothing to merge")
    cols = 1 + max(int(p[2][..., 1].max()) if p[2].numel() else 0 for p in parts)
    # any width past the last column orders (row, col) as the map's own does, and assemble decodes it back
    top = merge_winners([(a, i, p[..., 0] * cols + p[..., 1]) for a, i, p in parts], k, minimize)
    rows = 1 + max(int(p[2][..., 0].max()) if p[2].numel() else 0 for p in parts)
    return assemble(model, target, images, None, top, (rows, cols), tuple(images.shape[1:]),
                    len(images) if images_processed is None else images_processed, crop_size)


def merge_winners(parts: Sequence[Winners], k: int, minimize: bool = False) -> Winners:
    """The k best of the union of `parts` per unit, best first, in a total order: activation descending (NaN
    last, -0.0 equal to 0.0), ties by image index then flat map position ascending; minimize: by the negated
    activation (values are returned as given). Each (image, position) pair may appear once per unit."""
    pool = tuple(torch.cat(ts, dim=1) for ts in zip(*parts))
    vals, idx, pos = pool
    key = order_key(-vals if minimize else vals)
    rank = idx.long() * (int(pos.max()) + 1 if pos.numel() else 1) + pos.long()
    order = _top(key, rank, k)
    return tuple(t.gather(1, order) for t in pool)


def order_key(values: Tensor) -> Tensor:
    """Integers that order `values` as the winners rank them (larger first): exact for every float dtype, -0.0
    equal to 0.0, NaN below -inf."""
    wide = values.dtype == torch.float64
    v = values.to(torch.float64 if wide else torch.float32) + 0.0  # -0.0 + 0.0 is 0.0
    ints = torch.int64 if wide else torch.int32
    bits = v.view(ints)
    key = torch.where(bits < 0, bits ^ torch.iinfo(ints).max, bits)  # negative floats: reverse their magnitude order
    return key.masked_fill(v.isnan(), torch.iinfo(ints).min)


def _top(key: Tensor, rank: Tensor, k: int) -> Tensor:
    """Column indices [R, min(k, P)] of each row's k best entries of key [R, P] (larger first), ties by the smaller
    rank (distinct within a row), in that order; torch.topk alone breaks ties arbitrarily."""
    k = min(k, key.shape[1])
    kth = key.topk(k, dim=1).values[:, -1:]
    wide = torch.int64 if int(rank.max()) >= torch.iinfo(torch.int32).max else torch.int32
    big, small = torch.iinfo(wide).max, torch.iinfo(wide).min
    # every entry above the k-th is taken (fewer than k); the k-th's ties fill the rest by rank
    pick = torch.where(key > kth, big, torch.where(key == kth, -rank.to(wide), small))
    chosen = pick.topk(k, dim=1).indices
    chosen = chosen.gather(1, rank.gather(1, chosen).argsort(dim=1))
    return chosen.gather(1, key.gather(1, chosen).argsort(dim=1, descending=True, stable=True))


def _batches(images: Tensor | Iterable[Tensor], batch_size: int, progress: bool) -> Iterable[Tensor]:
    """Batches [B, 3, H, W]: slices of a tensor, or an iterable's items (the first element of tuples)."""
    if isinstance(images, Tensor):
        if images.dim() != 4:
            raise ValueError(f"images must be [N, C, H, W]; got shape {tuple(images.shape)}")
        batches: Iterable[Tensor] = images.split(batch_size)
    else:
        batches = (b[0] if isinstance(b, (tuple, list)) else b for b in images)
    return _counted(batches, _image_count(images)) if progress else batches


def _image_count(images: Tensor | Iterable[Tensor]) -> int | None:
    """How many images `images` holds where it says: a tensor's length, or the length of the `dataset` an iterable
    names (a DataLoader's); None for other iterables (a list's length counts batches, not images)."""
    sized = images if isinstance(images, Tensor) else getattr(images, "dataset", None)
    try:
        return len(sized)
    except TypeError:
        return None


def _counted(batches: Iterable[Tensor], total: int | None) -> Iterable[Tensor]:
    """The batches, with a progress bar counting images (and images/s) as each batch is ranked."""
    from tqdm.auto import tqdm

    with tqdm(total=total, desc="top patches", unit="img", leave=False) as bar:
        for batch in batches:
            yield batch
            bar.update(len(batch))


def _candidates(acts: Tensor, target: Target, mode: str, per_image: int | None, offset: int) -> Winners:
    """Each image's candidates per unit from acts [B, U, h, w]: ([U, B*m] values, image indices, positions);
    an image's ties go to the first position (row-major), whatever the batch."""
    b, u, h, w = acts.shape
    flat = acts.flatten(2).transpose(0, 1)  # [U, B, h*w]
    m = 1 if mode == "max" else min(per_image or h * w, h * w)
    if target.kind == "neuron":
        r, c = target.position_in(h, w)
        pos = torch.full((u, b, 1), r * w + c, device=acts.device)
    elif m == 1:
        pos = nan_last(flat).argmax(dim=2, keepdim=True)  # the first maximal position
    elif m == h * w:
        pos = torch.arange(h * w, device=acts.device).expand(u, b, h * w)
    else:
        spots = torch.arange(h * w, device=acts.device).expand(u * b, h * w)
        pos = _top(order_key(flat.reshape(u * b, h * w)), spots, m).view(u, b, m)
    vals = flat.gather(2, pos)
    idx = (torch.arange(b, device=acts.device) + offset).view(1, b, 1).expand_as(vals)
    return vals.reshape(u, -1), idx.reshape(u, -1), pos.reshape(u, -1)


def _keep(kept: dict[int, Tensor], winners: Tensor, batch: Tensor, offset: int) -> None:
    """Keep (streamed input) only the images that are winners now, adding new ones from `batch`."""
    wanted = set(winners.unique().tolist())
    for i in wanted - kept.keys():
        kept[i] = batch[i - offset].clone()
    for i in kept.keys() - wanted:
        del kept[i]


def assemble(
    model: nn.Module, target: Target, images: Tensor | Iterable[Tensor], kept: dict[int, Tensor] | None, top: Winners,
    map_hw: tuple[int, int], image_chw: tuple[int, int, int], seen: int, crop_size: int | None,
) -> TopPatches:
    """Boxes, crops and context pictures of the winners."""
    vals, idx, pos = (t.clone() for t in top)  # clone: normal tensors, not inference tensors
    u, k = vals.shape
    channels, h, w = image_chw
    rf, ignored = local_field(model, target.layer, (h, w), channels)
    exceeds = rf.exceeds_image((h, w))
    rows, cols = pos // map_hw[1], pos % map_hw[1]
    (size_h, stride_h, offset_h), (size_w, stride_w, offset_w) = rf.along(0), rf.along(1)
    full = torch.stack([offset_h + rows * stride_h, offset_w + cols * stride_w], -1)
    full = torch.cat([full, full + torch.tensor([size_h, size_w], device=full.device)], -1)  # [U, k, 4] top, left, bottom, right (exclusive)
    clipped = torch.stack([full[..., 0].clamp(min=0), full[..., 1].clamp(min=0), full[..., 2].clamp(max=h), full[..., 3].clamp(max=w)], -1)
    flat_idx = idx.flatten().cpu()
    sources = images[flat_idx] if kept is None else torch.stack([kept[i] for i in flat_idx.tolist()])
    dev = sources.device
    side = crop_size or min(max(rf.sizes), max(h, w))
    where = torch.stack([rows, cols], -1).reshape(-1, 2).tolist()
    crops = torch.stack([crop(img, rf, r, c, side, clip=exceeds) for img, (r, c) in zip(sources, where)])
    return TopPatches(
        images=crops, units=tuple(target.units), layer=target.layer, images_per_unit=k,
        indices=idx.to(dev), activations=vals.to(dev), positions=torch.stack([rows, cols], -1).to(dev),
        boxes=clipped.to(dev), boxes_unclipped=full.to(dev), rf=rf, rf_ignores_global=ignored, rf_method=rf.method,
        rf_exceeds_image=exceeds, context=_context(sources, clipped.reshape(-1, 4).cpu()), images_processed=seen,
    )


def _context(sources: Tensor, boxes: Tensor) -> Tensor:
    """The source images [K, 3, H, W] with each winner's (clipped) receptive-field box outlined in grey."""
    out = sources.clone()
    th = max(1, round(max(sources.shape[-2:]) / 100))
    for img, (t, l, b, r) in zip(out, boxes.tolist()):
        img[:, t:t + th, l:r] = GREY
        img[:, b - th:b, l:r] = GREY
        img[:, t:b, l:l + th] = GREY
        img[:, t:b, r - th:r] = GREY
    return out


def check_layer(acts: Tensor, target: Target) -> None:
    """One line if the layer has no spatial map or a unit is out of range."""
    if acts.dim() != 4:
        raise ValueError(f"top patches need a conv layer with [N, C, H, W] output; {target.layer or '<logits>'!r} gives {tuple(acts.shape)}")
    check_units(target.units, acts.shape[1], target.layer)
    check_position(target, acts)


def _check(target: Target, k: int, per_image: int | None, batch_size: int, mode: str) -> None:
    """One-line ValueErrors for bad arguments."""
    if target.kind not in KINDS:
        raise ValueError(f"top_patches supports target.kind channel, neuron; got {target.kind!r}")
    if not target.units:
        raise ValueError("target.units is empty; name at least one channel")
    check_params(k, per_image, batch_size, mode)


def check_params(k: int = 9, per_image: int | None = 1, batch_size: int = 64, mode: str = "max",
                 crop_size: int | None = None, minimize: bool = False) -> None:
    """One-line ValueErrors for settings that are wrong whatever the model and images."""
    if mode not in MODES:
        raise invalid_choice("mode", mode, MODES)
    for key, value in (("k", k), ("batch_size", batch_size), ("crop_size", crop_size or 1)):
        if value < 1:
            raise ValueError(f"{key}={value} must be >= 1")
    if per_image is not None and per_image < 1:
        raise ValueError(f"per_image={per_image} must be >= 1 (or None for no limit)")
    if mode == "max" and per_image != 1:
        raise ValueError(f"per_image={per_image} needs mode='location'; mode='max' takes one winner (the max) per image")
