"""Receptive fields: theoretical from the module graph (Araujo et al. 2019, "Computing receptive fields of CNNs"),
else measured as the support of input gradients.

`field` is the entry point: it reads the field off the torch.fx graph and, where the graph cannot decide (fx cannot
trace the model, an op it does not know, or one that mixes positions such as attention), measures it.

Graph: each node carries, per spatial axis, (size, stride, start) and which of its tensor's dims are the rows and
the columns: output position i of that node sees input pixels [start + i * stride, start + i * stride + size).
Convolutions and pools grow the field, pointwise ops keep it, permutes and reshapes that keep the rows and columns
as dims move them, and ops with several spatial inputs (residual add, concatenation) take the union.

Measured (`empirical_field`): the input pixels with a nonzero gradient of the neuron (all channels summed) at the
centre of the map, over a few random inputs; the next position gives the stride.
"""
from __future__ import annotations

import math
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from typing import Any, Iterator, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.node import map_aggregate

from methods.base import GREY, get_module, one_line, truncate
from methods.graph import cut_graph

Axis = tuple[int, int, int]  # (size, stride, start) along one spatial axis


class Spatial(NamedTuple):
    """A node's field along the image rows and columns, and which dims of its tensor they are."""

    rows: Axis
    cols: Axis
    dims: tuple[int, int]


class Global(str):
    """Why a node depends on the whole map (ignore_global=True leaves such branches out instead)."""


class Unknown(str):
    """Why the graph cannot decide a node's field (its field is measured instead)."""


State = Spatial | Global | Unknown | None  # None: no spatial data (shapes, parameters, left-out global branches)


class Undecided(ValueError):
    """The traced graph cannot decide the field: torch.fx fails, or an op is unknown or mixes positions."""


class GlobalField(ValueError):
    """The layer depends on the whole image through a global op (pooling, normalization over the map, a gate)."""


_GEOMETRIC = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.LPPool2d)
_ADAPTIVE = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_UPSAMPLE = nn.Upsample  # UpsamplingNearest2d and UpsamplingBilinear2d are subclasses
_PER_POSITION = (  # leaf modules that act on each map position alone (BatchNorm in its eval-mode form)
    nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.LeakyReLU,
    nn.ELU, nn.SELU, nn.CELU, nn.PReLU, nn.Mish, nn.Softplus, nn.Softsign, nn.Tanhshrink, nn.Threshold, nn.LogSigmoid,
    nn.Identity, nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm, nn.LocalResponseNorm, nn.ChannelShuffle,
)
_GLOBAL_NORMS = (nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)
_ELEMENTWISE = {  # function and method names (leading/trailing underscores stripped) that act elementwise
    "add", "sub", "rsub", "mul", "truediv", "div", "floordiv", "pow", "neg", "abs", "relu", "relu6", "gelu", "silu",
    "sigmoid", "tanh", "hardswish", "hardsigmoid", "hardtanh", "leaky_relu", "elu", "selu", "celu", "mish", "softplus",
    "softsign", "logsigmoid", "exp", "log", "sqrt", "rsqrt", "square", "reciprocal", "clamp", "clamp_min", "clamp_max",
    "clip", "sign", "erf", "where", "maximum", "minimum", "masked_fill", "lerp", "addcmul", "addcdiv", "iadd", "isub",
    "imul", "itruediv", "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
    "stochastic_depth", "batch_norm", "prelu", "contiguous", "clone", "detach", "to", "type", "float", "double",
    "half", "bfloat16", "threshold", "hardshrink", "softshrink", "tanhshrink", "sin", "cos",
}
_BROADCASTS = {"expand_as", "type_as", "expand", "broadcast_to"}
_FIRST_ONLY = _BROADCASTS | {"view_as", "reshape_as"}  # the other arguments give only a shape or a dtype
_NO_DATA = {"zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like", "new_zeros", "new_ones",
            "new_empty", "new_full", "new_tensor", "size", "dim", "numel"}
_RESHAPES = {"view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "view_as", "reshape_as", "ravel"}
_MOVES = {"permute", "transpose", "swapaxes", "swapdims", "movedim", "moveaxis", "t", "getattr"}
_REDUCTIONS = {  # name -> positional index of (dim, keepdim)
    "mean": (1, 2), "sum": (1, 2), "amax": (1, 2), "amin": (1, 2), "max": (1, 2), "min": (1, 2), "prod": (1, 2),
    "logsumexp": (1, 2), "argmax": (1, 2), "argmin": (1, 2), "median": (1, 2), "std": (1, 3), "var": (1, 3),
    "norm": (2, 3),
}
_ALONG = {"softmax": (1, None), "log_softmax": (1, None), "cumsum": (1, None), "cumprod": (1, None),
          "normalize": (2, 1), "glu": (1, -1), "flip": (1, None), "roll": (2, None)}  # name -> (dim index, default)
_SPLITS = {"chunk": (2, 0), "split": (2, 0), "tensor_split": (2, 0), "unbind": (1, 0)}  # name -> (dim index, default)
_POOLS = {  # functional pools: parameter names after the input, in order
    "conv2d": ("weight", "bias", "stride", "padding", "dilation", "groups"),
    "max_pool2d": ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
    "avg_pool2d": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    "lp_pool2d": ("norm_type", "kernel_size", "stride", "ceil_mode"),
}
MAX_CANVAS = 512  # the largest side empirical_field probes (a 896 px swin_v2_b gradient ran out of 24 GiB)
_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)
# model -> {key: field}; geometry is fixed once a model is built (weights do not matter)
_CACHE: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class ReceptiveField:
    """Output position (r, c) sees input rows [offset + r*stride, offset + r*stride + size), same for columns.

    `method`: "graph" (read off the traced graph) or "gradient" (measured by `empirical_field`). `whole_image`:
    every position sees the whole image (global ops, or a model that takes no larger input while its field fills
    the image): then size is the longer image side, stride 0 and offset 0, so each box is the image.
    """

    size: int
    stride: int
    offset: int  # input coordinate of the first pixel seen by position 0 (negative where padding is seen)
    method: str = "graph"
    whole_image: bool = False

    def centre(self, index: int) -> float:
        """Input coordinate of the centre of output position `index` along one axis."""
        return self.offset + index * self.stride + (self.size - 1) / 2

    def exceeds_image(self, input_size: int | tuple[int, int]) -> bool:
        """Whether the field is larger than an image of `input_size` along either side (so boxes get clipped)."""
        return self.whole_image or self.size > min(_pair(input_size))


Box = tuple[int, int, int, int]  # (top, left, bottom, right), bottom and right exclusive


def box(rf: ReceptiveField, row: int, col: int, input_size: int | tuple[int, int]) -> tuple[Box, Box]:
    """(clipped, unclipped) input box of output position (row, col); clipped lies inside the image."""
    h, w = _pair(input_size)
    top, left = rf.offset + row * rf.stride, rf.offset + col * rf.stride
    full = (top, left, top + rf.size, left + rf.size)
    clipped = (max(top, 0), max(left, 0), min(full[2], h), min(full[3], w))
    return clipped, full


def field(model: nn.Module, layer: str, input_size: int | tuple[int, int], in_channels: int = 3,
          ignore_global: bool = False) -> ReceptiveField:
    """Receptive field of `layer`'s positions for `input_size` inputs: from the graph, else measured.

    The graph decides where it can (method "graph"; a global op without `ignore_global` makes it the whole image);
    where it cannot, the field is measured on `truncate(model, layer)` by `empirical_field` (method "gradient"),
    which with `ignore_global` cuts the gradient through adaptive pooling that shrinks the map (gates). Cached per
    model; raises one line where neither applies (a layer without a map, an input the model cannot take).
    """
    hw = _pair(input_size)
    key = ("field", layer, hw, ignore_global, in_channels)
    cached = _CACHE.setdefault(model, {})
    if key not in cached:
        try:
            cached[key] = receptive_field(model, layer, hw, ignore_global, in_channels)
        except GlobalField:
            cached[key] = ReceptiveField(max(hw), 0, 0, "graph", whole_image=True)
        except Undecided:
            cached[key] = empirical_field(truncate(model, layer), (in_channels, *hw), ignore_global=ignore_global)
    return cached[key]


def local_field(model: nn.Module, layer: str, input_size: int | tuple[int, int], in_channels: int = 3
                ) -> tuple[ReceptiveField, bool]:
    """The layer's field (`field`); where global branches (e.g. squeeze-excitation) make it the whole image, the
    local one without them, flagged True (the whole image where there is no local one, as for a gate itself)."""
    rf = field(model, layer, input_size, in_channels)
    if not rf.whole_image:
        return rf, False
    try:
        local = field(model, layer, input_size, in_channels, ignore_global=True)
    except ValueError:
        return rf, False
    return (local, True) if not local.whole_image else (rf, False)


def receptive_field(
    model: nn.Module, layer: str, input_size: int | tuple[int, int], ignore_global: bool = False, in_channels: int = 3
) -> ReceptiveField:
    """Receptive field of `layer`'s output positions for `input_size` inputs, from the traced module graph only.

    With `ignore_global`, branches that pool over the whole map (adaptive pooling to a smaller size, reductions
    over rows or columns, squeeze-excitation, GroupNorm/InstanceNorm, LayerNorm over the map) are left out, as
    receptive-field tables usually do; without it such layers raise GlobalField, since their true receptive field
    is the whole image. Raises Undecided where the graph cannot decide (see `field` for the fallback).
    `layer=''` is the model's own output (a dense map has a field; logits raise). Results are cached per model
    object (the geometry does not depend on the weights).
    """
    key = (layer, _pair(input_size), ignore_global, in_channels)
    cached = _CACHE.setdefault(model, {})
    if key not in cached:
        cached[key] = _compute(model, layer, (in_channels, *_pair(input_size)), ignore_global)
    return cached[key]


def crop(image: Tensor, rf: ReceptiveField, row: int, col: int, side: int, clip: bool = False) -> Tensor:
    """The full receptive-field box of map position (row, col) in `image` [C, H, W], grey where it sticks out
    of the image, resized to side x side; with `clip`, the box clipped to the image instead, padded (grey, centred)
    to a square: for fields larger than the image, which would otherwise show a small image inside grey."""
    (t, l, b, r), (ft, fl, fb, fr) = box(rf, row, col, tuple(image.shape[-2:]))
    if b <= t or r <= l:
        raise ValueError(f"position ({row}, {col}) has its receptive field outside the {image.shape[-2]}x{image.shape[-1]} image")
    if clip:
        extra_h, extra_w = max(0, (r - l) - (b - t)), max(0, (b - t) - (r - l))
        pads = (extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2)
    else:
        pads = (l - fl, fr - r, t - ft, fb - b)
    patch = F.pad(image[:, t:b, l:r], pads, value=GREY)
    if patch.shape[-1] != side:
        patch = F.interpolate(patch[None], size=(side, side), mode="bilinear", antialias=True, align_corners=False)[0]
    return patch


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
    hooks = [m.register_forward_hook(_cut_global) for m in net.modules() if ignore_global and isinstance(m, _ADAPTIVE)]
    device = next(iter(net.parameters()), torch.zeros(())).device
    gen = torch.Generator(device).manual_seed(seed)
    hooks += [m.register_forward_hook(partial(_keep_support, gen)) for m in net.modules() if not any(m.children())]
    try:
        scale = 1
        while scale <= grow and (scale == 1 or max(h, w) * scale <= MAX_CANVAS):
            chw = (c, h * scale, w * scale)
            try:
                with _eval(net):
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
        sizes = {b[2] - b[0] for b in boxes[:2]} | {b[3] - b[1] for b in boxes[:2]}
        if len(sizes) == 1 or not all(_interior(b, *chw[1:]) for b in boxes[:2]):
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
                             f"{(t, l, bottom, right)}, where size {rf.size}, stride {rf.stride}, offset {rf.offset} put it: "
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
    """(size, stride, offset) from the boxes of the map's centre and its diagonal neighbour, or one line where they
    are not one square field shifted by one stride."""
    (t, l, b, r), (tn, ln, bn, rn) = boxes
    size, stride = b - t, tn - t
    offsets = {t - (map_hw[0] // 2) * stride, l - (map_hw[1] // 2) * stride}
    if {b - t, r - l, bn - tn, rn - ln} != {size} or {tn - t, ln - l} != {stride} or stride < 1 or len(offsets) > 1:
        raise _PositionDependent(f"measured receptive fields {boxes[0]} and {boxes[1]} (top, left, bottom, right) of neighbouring "
                         "positions are not one square field shifted by a stride")
    return ReceptiveField(size, stride, offsets.pop(), "gradient")


def _compute(model: nn.Module, layer: str, chw: tuple[int, int, int], ignore_global: bool) -> ReceptiveField:
    """Trace, run on fake tensors recording shapes and values, then fields node by node up to the layer."""
    gm, node = _trace_to(model, layer)
    values = _run(gm, model, layer, chw)
    states: dict[fx.Node, State] = {}
    for n in gm.graph.nodes:
        states[n] = _state(gm, n, states, values, ignore_global)
        if n is node:
            break
    return _finish(states[node], values[node], layer)


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    """(h, w) from an int, a pair or a one-element sequence."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[-1]))


def _trace_to(model: nn.Module, layer: str) -> tuple[fx.GraphModule, fx.Node]:
    """The fx graph of `model` cut where `layer` first returns (methods.graph.cut_graph), and the layer's node."""
    get_module(model, layer)  # an unknown name raises the one-line error with suggestions
    try:
        graph = cut_graph(model, layer)
    except Exception as err:  # noqa: BLE001 - any tracing failure is reported as one line
        raise Undecided(f"cannot trace {type(model).__name__} up to {layer!r} with torch.fx for receptive fields: {one_line(err)}") from err
    node = next(n for n in graph.nodes if n.op == "output").args[0]
    if not isinstance(node, fx.Node):
        raise ValueError(f"layer {layer!r} returns {type(node).__name__}, not one tensor: it has no single receptive field")
    return fx.GraphModule(model, graph), node


class _Shape(tuple):
    """The shape of a tensor a node produced (what the analysis keeps of tensors)."""


def _leaves(v: Any) -> list:
    """The _Shapes and other leaves of a recorded output (nested tuples, lists and dicts opened)."""
    if isinstance(v, _Shape) or not isinstance(v, (tuple, list, dict)):
        return [v]
    return [x for item in (v.values() if isinstance(v, dict) else v) for x in _leaves(item)]


class _Recorder(fx.Interpreter):
    """Runs the graph keeping every node's output, tensors replaced by their _Shape."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.values: dict[fx.Node, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        self.values[n] = map_aggregate(out, lambda v: _Shape(v.shape) if isinstance(v, Tensor) else v)
        return out


def _run(gm: fx.GraphModule, model: nn.Module, layer: str, chw: tuple[int, int, int]) -> dict[fx.Node, Any]:
    """Every node's output on one fake [1, C, H, W] input (shapes only, no arithmetic)."""
    device = next(iter(model.parameters()), torch.zeros(())).device
    recorder = _Recorder(gm)
    try:
        with _eval(gm), torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True):
            recorder.run(torch.empty(1, *chw, device=device))
    except Exception as err:  # noqa: BLE001 - the model cannot take this input (or fake tensors cannot run it)
        raise Undecided(f"{type(model).__name__} cannot run up to {layer!r} on a {list(chw)} input: {one_line(err)}") from err
    return recorder.values


@contextmanager
def _eval(net: nn.Module) -> Iterator[None]:
    """The net in eval mode (BatchNorm neither needs a batch nor updates its statistics), each module's mode restored."""
    modes = {m: m.training for m in net.modules()}
    net.eval()
    try:
        yield
    finally:
        for m, mode in modes.items():
            m.training = mode


def _shape(values: dict[fx.Node, Any], n: Any) -> tuple[int, ...] | None:
    """Shape of a node's tensor output, or None when it is not one tensor."""
    v = values.get(n) if isinstance(n, fx.Node) else None
    return tuple(v) if isinstance(v, _Shape) else None


def _has_tensor(v: Any) -> bool:
    """Whether a recorded output holds a tensor (possibly inside tuples or lists)."""
    return any(isinstance(x, _Shape) for x in _leaves(v))


def _arg(n: fx.Node, values: dict[fx.Node, Any], index: int, name: str, default: Any = None) -> Any:
    """A node's argument by position or keyword, with nodes replaced by their recorded outputs."""
    a = n.kwargs[name] if name in n.kwargs else n.args[index] if len(n.args) > index else default
    return fx.node.map_arg(a, lambda x: values[x])


def _state(gm: fx.GraphModule, n: fx.Node, states: dict[fx.Node, State], values: dict[fx.Node, Any],
           ignore_global: bool) -> State:
    """Receptive-field state of one node from its inputs' states."""
    if n.op == "placeholder":
        first = not any(p.op == "placeholder" for p in states)
        return Spatial((1, 1, 0), (1, 1, 0), (2, 3)) if first else None
    if n.op in ("get_attr", "output") or not _has_tensor(values.get(n)):
        return None  # shapes, sizes and flags are not spatial data
    name = _op_name(gm, n)
    data = n.all_input_nodes[:1] if name in _FIRST_ONLY else [] if name in _NO_DATA else n.all_input_nodes
    ins = [states.get(i) for i in data]
    bad = [s for s in ins if isinstance(s, str)]
    if bad:
        return next((s for s in bad if isinstance(s, Unknown)), bad[0])
    spatial = [(i, s) for i, s in zip(data, ins) if s is not None]
    if not spatial:
        return None
    try:
        if n.op == "call_module":
            return _module(gm.get_submodule(n.target), n, name, spatial, values, ignore_global)
        return _function(n, name, spatial, values, ignore_global)
    except Exception as err:  # noqa: BLE001 - arguments this analysis does not expect: measure instead
        return Unknown(f"{name} ({n.op}) has arguments receptive_field cannot read: {one_line(err)}")


def _op_name(gm: fx.GraphModule, n: fx.Node) -> str:
    """A short name for a node's operation (module class, or function or method name without underscores)."""
    if n.op == "call_module":
        return type(gm.get_submodule(n.target)).__name__
    name = n.target if isinstance(n.target, str) else getattr(n.target, "__name__", str(n.target))
    return name.strip("_")


def _global(why: str, ignore_global: bool) -> State:
    """A global branch: left out with ignore_global, else the reason the field is the whole image."""
    return None if ignore_global else Global(f"{why} (pass ignore_global=True to leave it out)")


def _module(mod: nn.Module, n: fx.Node, name: str, spatial: list[tuple[fx.Node, Spatial]], values: dict,
            ignore_global: bool) -> State:
    """State after a leaf module."""
    src, s = spatial[0]
    if isinstance(mod, _GEOMETRIC):
        if isinstance(mod, nn.Conv2d) and mod.padding_mode != "zeros":
            return Unknown(f"{name} pads with {mod.padding_mode!r}, which folds the border back into the image")
        padding = getattr(mod, "padding", 0)
        return _on_map(s, values, src, name) or _geometric(s, mod.kernel_size, mod.stride, padding, getattr(mod, "dilation", 1))
    if isinstance(mod, nn.modules.padding._ConstantPadNd):
        return _on_map(s, values, src, name) or _padded(s, values[src], mod.padding)
    if isinstance(mod, _ADAPTIVE):
        return _on_map(s, values, src, name) or _adaptive(s, values[src], values[n], ignore_global)
    if isinstance(mod, _UPSAMPLE):
        return _on_map(s, values, src, name) or _upsampled(s, values[src], values[n], mod.mode, mod.align_corners)
    if isinstance(mod, _PER_POSITION):
        return _combine(n, name, spatial, values, ignore_global)
    if isinstance(mod, _GLOBAL_NORMS):
        return _global(f"{name} normalizes over the whole map", ignore_global)
    if isinstance(mod, (nn.LayerNorm, nn.RMSNorm)):
        return _along(s, values[src], range(-len(mod.normalized_shape), 0), name, ignore_global, norm=True)
    if isinstance(mod, nn.Linear):
        return _along(s, values[src], [-1], name, ignore_global)
    if isinstance(mod, (nn.Softmax, nn.LogSoftmax)) and mod.dim is not None:
        return _along(s, values[src], [mod.dim], name, ignore_global)
    if isinstance(mod, (nn.Flatten, nn.Unflatten)):
        return _reshaped(s, values[src], values[n], name)
    return Unknown(f"{name} is a module receptive_field does not know")


def _function(n: fx.Node, name: str, spatial: list[tuple[fx.Node, Spatial]], values: dict, ignore_global: bool) -> State:
    """State after a function or method call."""
    src, s = spatial[0]
    first = n.args[0] if n.args else None
    if name == "getitem":
        return _indexed(s, values[first], n.args[1], values) if isinstance(values.get(first), _Shape) else s
    if first is not src and name not in _ELEMENTWISE and name not in ("cat", "concat", "concatenate", "stack"):
        return Unknown(f"{name} takes the map as a later argument, which receptive_field does not model")
    elementwise_max = name in ("max", "min") and isinstance(_arg(n, values, 1, "other"), _Shape)
    if name in _ELEMENTWISE or name in _BROADCASTS or elementwise_max:
        return _combine(n, name, spatial, values, ignore_global)
    if name in ("cat", "concat", "concatenate", "stack"):
        return _joined(n, name, spatial, values)
    if name in _RESHAPES:
        return _reshaped(s, values[src], values[n], name)
    if name in _MOVES:
        return _moved(n, s, values)
    if name in _REDUCTIONS:
        return _reduced(n, name, s, values, ignore_global)
    if name in _ALONG:
        index, default = _ALONG[name]
        dims = _arg(n, values, index, "dims" if name in ("flip", "roll") else "dim", default)
        return _along(s, values[src], dims, name, ignore_global)
    if name in _SPLITS:
        index, default = _SPLITS[name]
        return _split(s, values[src], _arg(n, values, index, "dim", default), name, name == "unbind")
    if name == "linear":
        return _along(s, values[src], [-1], name, ignore_global)
    if name == "layer_norm":
        return _along(s, values[src], range(-len(_sizes(_arg(n, values, 1, "normalized_shape"))), 0), name, ignore_global, norm=True)
    if name in ("group_norm", "instance_norm"):
        return _global(f"{name} normalizes over the whole map", ignore_global)
    if name in _POOLS:
        return _on_map(s, values, src, name) or _pooled(n, name, s, values)
    if name in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
        return _on_map(s, values, src, name) or _adaptive(s, values[src], values[n], ignore_global)
    if name == "interpolate":
        mode, corners = _arg(n, values, 3, "mode", "nearest"), _arg(n, values, 4, "align_corners")
        return _on_map(s, values, src, name) or _upsampled(s, values[src], values[n], mode, corners)
    if name == "pad":
        if _arg(n, values, 2, "mode", "constant") != "constant":
            return Unknown(f"pad mode {_arg(n, values, 2, 'mode')!r} folds the border back into the image")
        return _padded(s, values[src], _arg(n, values, 1, "pad"))
    return Unknown(f"{name} ({n.op}) is an op receptive_field does not know")


def _on_map(s: Spatial, values: dict, src: fx.Node, name: str) -> Unknown | None:
    """None where the rows and columns are the last two dims (as convs and pools need), else why not."""
    nd = len(values[src])
    if s.dims != (nd - 2, nd - 1):
        return Unknown(f"{name} runs on a tensor whose last two dims are not the map's rows and columns (dims {s.dims} of {nd})")
    return None


def _combine(n: fx.Node, name: str, spatial: list[tuple[fx.Node, Spatial]], values: dict, ignore_global: bool) -> State:
    """An elementwise op: the union of its spatial inputs' fields, broadcast right-aligned; a 1x1 map broadcast
    over a larger one is a global branch (a gate)."""
    out = _shape(values, n)
    if out is None:
        return Unknown(f"{name} does not give one tensor")
    kept = []
    for src, s in spatial:
        shape = values[src]
        dims = tuple(d + len(out) - len(shape) for d in s.dims)
        if [shape[d] for d in s.dims] == [out[d] for d in dims]:
            kept.append(Spatial(s.rows, s.cols, dims))
        elif all(shape[d] == 1 for d in s.dims):
            gated = _global(f"{name} broadcasts a 1x1 map over a {out[dims[0]]}x{out[dims[1]]} one (a gate)", ignore_global)
            if gated is not None:
                return gated
        else:
            return Unknown(f"{name} broadcasts a map of shape {tuple(shape)} to {tuple(out)}")
    return _union(kept, name)


def _union(kept: list[Spatial], name: str) -> State:
    """Union of same-stride fields whose rows and columns are the same dims."""
    if not kept:
        return None
    if len({k.dims for k in kept}) > 1:
        return Unknown(f"{name} joins maps whose rows and columns are different dims {sorted({k.dims for k in kept})}")
    axes = []
    for ax in range(2):
        group = [k[ax] for k in kept]
        strides = {a[1] for a in group}
        if len(strides) > 1:
            return Unknown(f"{name} joins branches with different strides {sorted(strides)}")
        start = min(a[2] for a in group)
        axes.append((max(a[2] + a[0] for a in group) - start, group[0][1], start))
    return Spatial(axes[0], axes[1], kept[0].dims)


def _joined(n: fx.Node, name: str, spatial: list[tuple[fx.Node, Spatial]], values: dict) -> State:
    """Concatenation or stacking along a dim that is not a spatial one: the union of the inputs' fields."""
    nd = len(values[spatial[0][0]])
    dim = _arg(n, values, 1, "dim", 0)
    dim = dim % (nd + 1) if name == "stack" else dim % nd
    if name != "stack" and dim in spatial[0][1].dims:
        return Unknown(f"{name} joins maps along their rows or columns (dim {dim})")
    return _union([Spatial(s.rows, s.cols, tuple(d + (name == "stack" and d >= dim) for d in s.dims)) for _, s in spatial], name)


def _norm_dims(dims: Any, nd: int) -> list[int] | None:
    """Non-negative dims from an int, a sequence or None (None stays None)."""
    if dims is None:
        return None
    return [d % nd for d in (dims if isinstance(dims, (list, tuple, range)) else [dims])]


def _along(s: Spatial, shape: tuple, dims: Any, name: str, ignore_global: bool, norm: bool = False) -> State:
    """An op acting along `dims` (softmax, a linear layer, a norm over the last dims): per position when none of
    them is a spatial dim; a norm over the map is global, any other such op mixes positions."""
    dims = _norm_dims(dims, len(shape))
    if dims is None:
        return Unknown(f"{name} acts along an unstated dim")
    if set(dims) & set(s.dims):
        if norm:
            return _global(f"{name} normalizes over the map's rows or columns", ignore_global)
        return Unknown(f"{name} acts along the map's rows or columns (dims {dims}), mixing positions")
    return s


def _reduced(n: fx.Node, name: str, s: Spatial, values: dict, ignore_global: bool) -> State:
    """A reduction: global over the rows or columns; over other dims the spatial dims move down when dropped."""
    shape = values[n.args[0]]
    index, keep_index = _REDUCTIONS[name]
    dims = _norm_dims(_arg(n, values, index, "dim"), len(shape))
    if dims is None or set(dims) & set(s.dims):
        return _global(f"{name} reduces over the map's rows or columns", ignore_global)
    if _arg(n, values, keep_index, "keepdim", False):
        return s
    return Spatial(s.rows, s.cols, tuple(d - sum(r < d for r in dims) for d in s.dims))


def _split(s: Spatial, shape: tuple, dim: int, name: str, drop: bool) -> State:
    """chunk, split or unbind along a dim other than the rows and columns: every piece keeps the field."""
    dim %= len(shape)
    if dim in s.dims:
        return Unknown(f"{name} splits the map along its rows or columns (dim {dim})")
    return Spatial(s.rows, s.cols, tuple(d - (drop and d > dim) for d in s.dims))


def _sizes(v: Any) -> tuple:
    """A shape argument as a tuple."""
    return tuple(v) if isinstance(v, (list, tuple)) else (v,)


def _reshaped(s: Spatial, shape: tuple, out: Any, name: str) -> State:
    """A reshape keeps the field where the rows and the columns each stay one dim (in memory order); other dims
    may merge and split around them, as in a channel shuffle."""
    if not isinstance(out, _Shape):
        return Unknown(f"{name} does not give one tensor")
    prefix = [math.prod(out[:j]) for j in range(len(out))]
    dims, last = [], -1
    for d in sorted(s.dims):
        j = next((j for j in range(last + 1, len(out)) if prefix[j] == math.prod(shape[:d]) and out[j] == shape[d]), None)
        if j is None:
            return Unknown(f"{name} merges or splits the map's rows or columns ({tuple(shape)} -> {tuple(out)}: no spatial positions)")
        dims.append(j)
        last = j
    moved = dict(zip(sorted(s.dims), dims))
    return Spatial(s.rows, s.cols, (moved[s.dims[0]], moved[s.dims[1]]))


def _moved(n: fx.Node, s: Spatial, values: dict) -> State:
    """permute, transpose, movedim and attribute reads such as .T: the rows and columns follow their dims, found by
    running the op on an empty tensor with a distinct size per dim."""
    shape = values[n.args[0]]
    if len(shape) > len(_PRIMES):
        return Unknown(f"{n.target} on a {len(shape)}-d tensor")
    probe = torch.empty(_PRIMES[:len(shape)], device="meta")
    args = [fx.node.map_arg(a, lambda x: values[x]) for a in n.args[1:]]
    kwargs = {k: fx.node.map_arg(v, lambda x: values[x]) for k, v in n.kwargs.items()}
    out = getattr(probe, n.target)(*args, **kwargs) if n.op == "call_method" else n.target(probe, *args, **kwargs)
    if not isinstance(out, Tensor) or sorted(out.shape) != sorted(probe.shape):
        return Unknown(f"{getattr(n.target, '__name__', n.target)} is not a permutation of dims")
    where = {size: j for j, size in enumerate(out.shape)}
    return Spatial(s.rows, s.cols, tuple(where[_PRIMES[d]] for d in s.dims))


def _indexed(s: Spatial, shape: tuple, index: Any, values: dict) -> State:
    """Indexing: slices of the rows or columns shift (start) and thin (step) the positions; integers and None drop
    and add other dims; an integer or tensor index on a spatial dim is not modelled."""
    index = fx.node.map_arg(index, lambda x: values[x])
    items = list(index) if isinstance(index, tuple) else [index]
    if any(isinstance(i, (_Shape, list)) for i in items) or sum(i is Ellipsis for i in items) > 1:
        return Unknown("indexing with tensors or lists")
    if Ellipsis in items:
        e = items.index(Ellipsis)
        items[e:e + 1] = [slice(None)] * (len(shape) - sum(i is not None for i in items) + 1)
    items += [slice(None)] * (len(shape) - sum(i is not None for i in items))
    d, o, axes, dims = 0, 0, list(s[:2]), [None, None]
    for item in items:
        if item is None:
            o += 1
            continue
        spatial = d in s.dims
        if isinstance(item, int):
            if spatial:
                return Unknown(f"indexing picks one row or column (dim {d})")
            d += 1
            continue
        if spatial:
            ax = s.dims.index(d)
            start, _, step = item.indices(shape[d])
            if step < 1:
                return Unknown(f"indexing reverses the map's rows or columns (step {step})")
            size, jump, first = axes[ax]
            axes[ax], dims[ax] = (size, jump * step, first + start * jump), o
        d, o = d + 1, o + 1
    return Spatial(axes[0], axes[1], tuple(dims))


def _geometric(s: Spatial, kernel: Any, stride: Any, padding: Any, dilation: Any) -> Spatial:
    """Field after a convolution or pooling (kernel, stride, padding, dilation per axis; stride None = kernel)."""
    kernel, dilation = _pair(kernel), _pair(dilation)
    stride = _pair(stride) if stride else kernel
    out = []
    for ax in range(2):
        size, jump, start = s[ax]
        k_eff = dilation[ax] * (kernel[ax] - 1) + 1
        pad = 0 if padding == "valid" else (k_eff - 1) // 2 if padding == "same" else _pair(padding)[ax]
        out.append((size + (k_eff - 1) * jump, jump * stride[ax], start - pad * jump))
    return Spatial(out[0], out[1], s.dims)


def _pooled(n: fx.Node, name: str, s: Spatial, values: dict) -> Spatial:
    """Functional conv2d and pools, read from their arguments (ceil_mode only adds end positions: same field)."""
    params = dict(zip(_POOLS[name], [_arg(n, values, i + 1, p) for i, p in enumerate(_POOLS[name])]))
    kernel = tuple(params["weight"][-2:]) if name == "conv2d" else params["kernel_size"]
    stride = params["stride"] or (1 if name == "conv2d" else None)
    return _geometric(s, kernel, stride, params.get("padding") or 0, params.get("dilation") or 1)


def _padded(s: Spatial, shape: tuple, pad: Any) -> State:
    """Constant padding (pairs from the last dim back): positions shift by the padding before them, sizes stay."""
    pad, axes = list(pad), list(s[:2])
    for ax, d in enumerate(s.dims):
        k = len(shape) - 1 - d
        if 2 * k < len(pad):
            size, jump, start = axes[ax]
            axes[ax] = (size, jump, start - pad[2 * k] * jump)
    return Spatial(axes[0], axes[1], s.dims)


def _adaptive(s: Spatial, shape: tuple, out: tuple, ignore_global: bool) -> State:
    """Adaptive pooling: the identity when sizes match; else left out (ignore_global), an exact pool when sizes divide, or rejected."""
    hw_in, hw_out = shape[-2:], out[-2:]
    if hw_in == hw_out:
        return s
    if ignore_global:
        return None
    if all(i % o == 0 for i, o in zip(hw_in, hw_out)):
        k = [i // o for i, o in zip(hw_in, hw_out)]
        axes = [(size + (kk - 1) * j, j * kk, st) for (size, j, st), kk in zip(s[:2], k)]
        return Spatial(axes[0], axes[1], s.dims)
    return Unknown(f"adaptive pooling from {tuple(hw_in)} to {tuple(hw_out)} has no fixed kernel (pass ignore_global=True to leave it out)")


def _upsampled(s: Spatial, shape: tuple, out: tuple, mode: str, align_corners: bool | None) -> State:
    """Upsampling by an integer factor k ("nearest", "nearest-exact", or "bilinear" without align_corners).

    Output position i reads input positions floor(i / k) (nearest) or the two around (i + 0.5) / k - 0.5
    (bilinear), so its field depends on i mod k: the result is the smallest field with stride j / k (j: the
    input's stride) that holds every position's, exact up to (k - 1) j / k pixels (nearest) at either end.
    """
    factors = {o / i for i, o in zip(shape[-2:], out[-2:])}
    if factors == {1.0}:
        return s
    k = int(next(iter(factors)))
    ok = mode in ("nearest", "nearest-exact") or (mode == "bilinear" and not align_corners)
    if len(factors) > 1 or k != next(iter(factors)) or k < 1 or not ok:
        return Unknown(f"upsampling {tuple(shape[-2:])} -> {tuple(out[-2:])} ({mode}, align_corners={align_corners}) "
                       "is not an integer-factor nearest or bilinear upsample")
    lo, hi = [], []  # input positions seen by output i = k q + p, relative to i / k
    for p in range(k):
        src = Fraction(2 * p + 1 - k, 2 * k) if mode == "bilinear" else Fraction(0)  # relative to q
        first = math.floor(src)
        lo.append(first - Fraction(p, k))
        hi.append(first + (src != first) - Fraction(p, k))
    lo, hi = min(lo), max(hi)
    axes = []
    for size, jump, start in s[:2]:
        if jump % k or (lo * jump).denominator != 1 or (hi * jump).denominator != 1:
            return Unknown(f"upsampling by {k} a map of stride {jump} gives a fractional stride")
        axes.append((size + int((hi - lo) * jump), jump // k, start + int(lo * jump)))
    return Spatial(axes[0], axes[1], s.dims)


def _finish(state: State, out: Any, layer: str) -> ReceptiveField:
    """The ReceptiveField of the layer's node, or a one-line error (Undecided where measuring could help)."""
    shape = tuple(out) if isinstance(out, _Shape) else None
    if shape is None or len(shape) < 3:
        what = "the model output (logits?)" if not layer else f"layer {layer!r}"
        raise ValueError(f"{what} has shape {shape}; receptive fields need a map with rows and columns (no spatial positions)")
    if isinstance(state, Global):
        raise GlobalField(f"receptive field of layer {layer!r} is the whole image: {state}")
    if isinstance(state, Unknown):
        raise Undecided(f"receptive field of layer {layer!r} is undefined in the graph: {state}")
    if state is None:
        raise ValueError(f"layer {layer!r} depends on the input only through global pooling (or not at all): no local receptive field")
    if state.rows != state.cols:
        raise ValueError(f"layer {layer!r} has a non-square receptive field (rows {state.rows}, cols {state.cols}) as (size, stride, start)")
    size, stride, start = state.rows
    return ReceptiveField(size=size, stride=stride, offset=start)
