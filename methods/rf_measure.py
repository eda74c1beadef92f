"""Receptive fields measured as the support of input gradients: the input pixels with a nonzero gradient of the
neuron (all channels summed) at the centre of the map, over a few random inputs; the next position gives the stride.
For layers the graph cannot decide (methods.rf_graph)."""
from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from methods.base import one_line
from methods.rf_geometry import Box, ReceptiveField, box
from methods.rf_graph import ADAPTIVE_POOLS, eval_mode

MAX_CANVAS = 512  # the largest side empirical_field probes (a 896 px swin_v2_b gradient ran out of 24 GiB)


def empirical_field(net: nn.Module, input_chw: tuple[int, int, int], trials: int = 3, grow: int = 4, seed: int = 0,
                    ignore_global: bool = False) -> ReceptiveField:
    """The measured receptive field of `net`, which maps images [N, C, H, W] to a map [N, C', h, w].

    The support of the input gradient of the map's centre neuron (channels summed), united over `trials` random
    inputs (ReLU and max pooling route gradients to a subset), is its box; the diagonal neighbour's box gives the
    stride; the offset follows; two more positions must fall inside the boxes the field gives them. Exact for conv
    nets without global ops. Where a box touches the border, canvases 2, 4, ... up to `grow` times larger, and at most
    MAX_CANVAS px a side (so memory stays bounded on large models), are probed, so that the size is measured,
    not clipped (a global op costs all of them). A `whole_image` field where
    the model takes no larger input or the support touches the border at every size, and where the field depends
    on the position (Swin's window attention, resampling by 1.5: no one (size, stride, offset) explains the
    supports, so no position's box can be trusted). `ignore_global` cuts the gradient through adaptive pooling
    modules that shrink the map (gates). Runs in eval mode, leaving the modes as they were. On the way back each
    leaf module's output gradient is replaced by random positive numbers on its support: generically the same
    support at the input, without the magnitudes that make long paths through small weights (ConvNeXt's layer
    scale starts at 1e-6) underflow to zero at the field's edge in float32.
    """
    c, h, w = input_chw
    hooks = [m.register_forward_hook(_cut_global) for m in net.modules() if ignore_global and isinstance(m, ADAPTIVE_POOLS)]
    device = next(iter(net.parameters()), torch.zeros(())).device
    gen = torch.Generator(device).manual_seed(seed)
    hooks += [m.register_forward_hook(partial(_keep_support, gen)) for m in net.modules() if not any(m.children())]
    try:
        scale = 1
        while scale <= grow and (scale == 1 or max(h, w) * scale <= MAX_CANVAS):
            chw = (c, h * scale, w * scale)
            try:
                with eval_mode(net):
                    map_hw, where, boxes = _supports(net, chw, trials, seed)
            except _Refused as err:
                if scale == 1:
                    raise ValueError(f"{type(net).__name__} cannot run on a {list(input_chw)} input to measure its receptive field: {err}") from err
                break  # the model takes no larger input
            if None in boxes[:2]:
                raise ValueError(f"a neuron at the map's centre has a zero input gradient for {4 * trials} random inputs: no field to measure")
            if min(map_hw) > 1 and all(_interior(b, *chw[1:]) for b in boxes[:2]):
                try:
                    rf = _fit(boxes[:2], map_hw)
                    _check_fit(rf, boxes[2:], where[2:], chw[1:])
                except _PositionDependent:
                    break  # no one box per position: each position is shown the whole image
                return rf
            scale *= 2
    finally:
        for hook in hooks:
            hook.remove()
    return ReceptiveField(max(h, w), 0, 0, "gradient", whole_image=True)


class _Refused(Exception):
    """The net failed on an input (the one-line reason is the message)."""


class _PositionDependent(ValueError):
    """Measured supports that no one (size, stride, offset) field explains (window attention, fractional resampling)."""


def _supports(net: nn.Module, chw: tuple[int, int, int], trials: int, seed: int, rounds: int = 4
              ) -> tuple[tuple[int, int], list[tuple[int, int]], list[Box | None]]:
    """The map size, and the map positions and bounding boxes of the input-gradient supports of `_gradient`: the
    centre (united over its inputs), its diagonal neighbour (united), and the two checks. Where either has no
    support, or both lie inside the image but differ in size (max pooling routed no gradient to an edge), more
    random inputs are added, up to `rounds` times as many."""
    seen = None
    for extra in range(rounds):
        map_hw, where, nonzero = _gradient(net, chw, trials, seed + extra)
        seen = nonzero if seen is None else seen | nonzero
        boxes = [_bounding(seen[:trials].any(0)), _bounding(seen[trials:2 * trials].any(0))]
        boxes += [_bounding(m) for m in seen[2 * trials:]]
        if None in boxes[:2]:
            continue
        same = len({b[2] - b[0] for b in boxes[:2]}) == 1 and len({b[3] - b[1] for b in boxes[:2]}) == 1
        if same or not all(_interior(b, *chw[1:]) for b in boxes[:2]):
            break
    return map_hw, [where[0], where[trials], *where[2 * trials:]], boxes


def _keep_support(gen: torch.Generator, mod: nn.Module, inputs: tuple, out: Any) -> None:
    """Forward hook (on leaf modules): on the way back, the gradient of each tensor the module outputs becomes random
    numbers in [0.5, 1.5) on its support, 0 elsewhere (not all ones: normalizations map a constant gradient to 0)."""
    for t in out if isinstance(out, (tuple, list)) else [out]:
        if isinstance(t, Tensor) and t.requires_grad:
            t.register_hook(lambda g: torch.rand(g.shape, generator=gen, device=g.device, dtype=g.dtype).add_(0.5).masked_fill_(g == 0, 0))


def _cut_global(mod: nn.Module, inputs: tuple, out: Tensor) -> Tensor:
    """Forward hook: the output of a pooling that shrinks the map, detached from the gradient."""
    return out.detach() if out.shape[-2:] != inputs[0].shape[-2:] else out


def _gradient(net: nn.Module, chw: tuple[int, int, int], trials: int, seed: int, chunk: int = 2
              ) -> tuple[tuple[int, int], list[tuple[int, int]], Tensor]:
    """The map size, the map position each random input's gradient is of, and where each input's gradient is
    nonzero [B, H, W]: of the map's centre neuron (channels summed; `trials` inputs), of its diagonal neighbour
    (`trials` more), and of the positions 2 and 3 before the centre on the diagonal (one input each: checks).
    Runs `chunk` inputs at a time, so that large canvases fit in memory."""
    device = next(iter(net.parameters()), torch.zeros(())).device
    dtype = next((p.dtype for p in net.parameters() if p.is_floating_point()), torch.float32)
    inputs = torch.rand(2 * trials + 2, *chw, generator=torch.Generator().manual_seed(seed)).to(device, dtype)
    where, seen = None, []
    for start in range(0, len(inputs), chunk):
        with torch.inference_mode(False), torch.enable_grad():
            x = inputs[start:start + chunk].clone().requires_grad_(True)
            try:
                out = net(x)
            except Exception as err:  # noqa: BLE001 - any failure of the model on this input
                raise _Refused(one_line(err)) from err
            if not isinstance(out, Tensor) or out.dim() != 4:
                shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ValueError(f"the layer outputs {shape}; a measured receptive field needs an [N, C, H, W] map")
            mh, mw = out.shape[-2:]
            if where is None:
                r, c = mh // 2, mw // 2
                where = [(r, c)] * trials + [(min(r + 1, mh - 1), min(c + 1, mw - 1))] * trials
                where += [(max(r - k, 0), max(c - k, 0)) for k in (2, 3)]
            rows, cols = (torch.tensor(v, device=out.device) for v in zip(*where[start:start + len(x)]))
            picked = out[torch.arange(len(x), device=out.device), :, rows, cols]  # [chunk, C']
            try:
                (grad,) = torch.autograd.grad(picked.sum(), x)
            except Exception as err:  # noqa: BLE001 - e.g. an op without a gradient
                raise _Refused(one_line(err)) from err
        seen.append(grad.ne(0).any(1))
    return (mh, mw), where, torch.cat(seen)


def _check_fit(rf: ReceptiveField, boxes: list[Box | None], where: list[tuple[int, int]], hw: tuple[int, int]) -> None:
    """One line where a checked position's support leaves the box the fitted field gives it (a field that depends
    on the position, as after resampling by a non-integer factor)."""
    for b, (r, c) in zip(boxes, where):
        t, l, bottom, right = box(rf, r, c, hw)[0]
        if b is not None and not (t <= b[0] and l <= b[1] and b[2] <= bottom and b[3] <= right):
            raise _PositionDependent(f"measured receptive field of position ({r}, {c}) {b} (top, left, bottom, right) is outside "
                             f"{(t, l, bottom, right)}, where (size, stride, offset) {rf.along(0)} x {rf.along(1)} put it: "
                             "the field depends on the position")


def _bounding(mask: Tensor) -> Box | None:
    """(top, left, bottom, right) of the True pixels of [H, W], bottom/right exclusive; None where none is."""
    rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
    if len(rows) == 0:
        return None
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _interior(b: Box, h: int, w: int) -> bool:
    """Whether a box keeps off all four image borders."""
    return b[0] > 0 and b[1] > 0 and b[2] < h and b[3] < w


def _fit(boxes: list[Box], map_hw: tuple[int, int]) -> ReceptiveField:
    """(size, stride, offset) per axis from the boxes of the map's centre and its diagonal neighbour, or one line
    where they are not one field shifted by one stride along each axis."""
    (t, l, b, r), (tn, ln, bn, rn) = boxes
    axes = []
    for lo, hi, lo_n, hi_n, centre in ((t, b, tn, bn, map_hw[0] // 2), (l, r, ln, rn, map_hw[1] // 2)):
        size, stride = hi - lo, lo_n - lo
        if hi_n - lo_n != size or stride < 1:
            raise _PositionDependent(f"measured receptive fields {boxes[0]} and {boxes[1]} (top, left, bottom, right) of "
                                     "neighbouring positions are not one field shifted by a stride")
        axes.append((size, stride, lo - centre * stride))
    return ReceptiveField(*axes[0], "gradient", cols=None if axes[1] == axes[0] else axes[1])
