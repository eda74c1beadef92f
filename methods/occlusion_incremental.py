"""Incremental occlusion (Krypton, Nakandala et al. 2019): each occluded image's activations recomputed only where
its window changes them, the unoccluded image's activations reused everywhere else.

The unoccluded image runs once through the fx graph of the truncated model (methods/graph.py), every node's output
kept. A batch of windows then runs node by node, each map holding a Region: the box the windows change (one size
for the batch, a top-left corner per window) and the values there. Convolutions and pools grow the box by their
kernel, stride, padding and dilation and compute it from a crop of their input (the cached map with the input's box
pasted in, padded as the op pads); per-position ops (ReLU, BatchNorm in eval, ...) keep it; elementwise ops of
several maps (residual adds) and channel concatenations take the union of their inputs' boxes. A box over more
than FULL of its map is computed in full, and every other op (linear layers, adaptive pools, reshapes,
attention...) runs on the full patched maps, so from there on the network runs as full forwards: exact whatever
the model. With `approx` (Krypton's projective-field threshold tau) no box grows beyond tau of its map's side, the
unoccluded activations standing in outside it: an approximation whose error the caller measures.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn
from torch.fx.node import map_aggregate

from methods.base import Normalize
from methods.graph import Recorder
from methods.layout import as_map
from methods.rf_graph import ELEMENTWISE, PER_POSITION

FULL = 0.5  # a box over more than this fraction of its map is computed in full
JOINS = ("cat", "concat", "concatenate")
SHAPES = {"call_method": ("size", "dim", "numel"), "call_function": ("getattr",)}  # read only the shape
SHAPE_ATTRIBUTES = ("shape", "ndim", "dtype")


@dataclass
class Region:
    """A map of the batch: `values` [B, C, h, w] at rows top[b]..top[b]+h and columns left[b]..left[b]+w of the
    unoccluded map `base` [1, C, H, W], which holds everywhere else."""

    base: Tensor
    values: Tensor
    top: Tensor  # [B] long
    left: Tensor  # [B] long

    @property
    def full(self) -> bool:
        """Whether the box is the whole map."""
        return self.values.shape[-2:] == self.base.shape[-2:]


@dataclass
class Plain:
    """A value computed for the whole batch that is not a map (logits, sizes, tuples)."""

    value: Any


@dataclass
class Geometry:
    """A conv's or pool's window along both axes and how it runs on a crop (padding 0, the pad value given)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]  # before the first row and column (any padding after only adds end positions)
    dilation: tuple[int, int]
    pad_value: float
    run: Callable[[Tensor], Tensor]


def unsupported(net: nn.Module) -> str | None:
    """Why incremental occlusion cannot run `net` (a methods.graph.FastForward), or None where it can."""
    if not getattr(net, "traced", False):
        return "torch.fx cannot trace the model (or it carries hooks), so there is no graph to recompute node by node"
    if not isinstance(net.normalize, (Normalize, nn.Identity)):
        return f"the input normalization {type(net.normalize).__name__} is not known to act per pixel"
    return None


class Incremental:
    """A truncated model's occluded outputs computed incrementally from one image's cached activations."""

    def __init__(self, net: nn.Module, approx: float | None = None) -> None:
        if (reason := unsupported(net)) is not None:
            raise ValueError(f"engine=incremental: {reason} (engine=full runs full forwards)")
        self.net, self.gm, self.approx = net, net.body, approx
        self.base: dict[fx.Node, Any] = {}

    def prepare(self, image: Tensor) -> Tensor:
        """Run the unoccluded image [1, C, H, W] (display space) once, keeping every node's output; its output."""
        x = self._input(image)
        # copies: in-place ops later in the graph must not change the kept outputs
        recorder = Recorder(self.gm, lambda out: out.clone() if isinstance(out, Tensor) else out)
        out = recorder.run(x)
        self.base = recorder.kept
        self.hw = tuple(image.shape[-2:])
        return as_map(out, self.hw, 1)

    def occluded(self, values: Tensor, top: Tensor, left: Tensor) -> Tensor:
        """The model's outputs for B occluded copies of the prepared image, given each copy's changed pixels
        `values` [B, C, h, w] (display space) at (top[b], left[b])."""
        env: dict[fx.Node, Any] = {}
        for n in self.gm.graph.nodes:
            if n.op == "placeholder":
                env[n] = Region(self.base[n], self._input(values), top, left)
            elif n.op == "output":
                out = map_aggregate(n.args[0], lambda a: _value(env[a]) if isinstance(a, fx.Node) else a)
                return as_map(out, self.hw, len(values))
            else:
                env[n] = self._node(n, env)
        raise ValueError("the graph has no output node")

    def _input(self, x: Tensor) -> Tensor:
        """Normalized and in the layout the graph runs in."""
        x = self.net.normalize(x)
        return x.contiguous(memory_format=torch.channels_last) if self.net.channels_last else x

    def _node(self, n: fx.Node, env: dict[fx.Node, Any]) -> Any:
        """One node's output for the batch: a Region, a Plain value, or the cached value where no input changes."""
        args = _args(n, env)
        if not any(isinstance(a, (Region, Plain)) for a in args):
            return self.base[n]  # does not depend on the image
        geometry = self._geometry(n)
        if geometry is not None and isinstance(args[0], Region) and self._is_map(n):
            return self._spatial(n, env, args[0], geometry)
        if (self._elementwise(n) or _name(n) in JOINS and _cat_dim(n) in (1, -3)) and self._is_map(n):
            return self._combined(n, env)
        if _shape_only(n) and isinstance(env.get(n.args[0]), Region):
            r = env[n.args[0]]
            fake = torch.empty(len(r.top), *r.base.shape[1:], dtype=r.values.dtype, device="meta")
            return Plain(_call(self.gm, n, [fake, *n.args[1:]], n.kwargs))
        return self._in_full(n, env)

    def _is_map(self, n: fx.Node) -> bool:
        """Whether the node's cached output is one image's map [1, C, H, W]."""
        base = self.base.get(n)
        return isinstance(base, Tensor) and base.dim() == 4 and base.shape[0] == 1

    def _geometry(self, n: fx.Node) -> Geometry | None:
        """The window of a conv or pool this engine can compute on crops; None for anything else."""
        if n.op == "call_module":
            return _module_geometry(self.gm.get_submodule(n.target))
        if n.op == "call_function":
            return _function_geometry(n, self.base)
        return None

    def _elementwise(self, n: fx.Node) -> bool:
        """Whether the node acts on each map position alone."""
        if n.op == "call_module":
            m = self.gm.get_submodule(n.target)
            return isinstance(m, PER_POSITION) and not (isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training)
        return n.op in ("call_function", "call_method") and _name(n) in ELEMENTWISE

    def _spatial(self, n: fx.Node, env: dict[fx.Node, Any], r: Region, g: Geometry) -> Region:
        """A conv or pool on the box it changes, from a crop of its input padded as the op pads."""
        out_hw = self.base[n].shape[-2:]
        axes = [_grown(start, r.values.shape[-2 + ax], out_hw[ax], g, ax, self.approx)
                for ax, start in enumerate((r.top, r.left))]
        (top, h), (left, w) = axes
        if h * w > FULL * out_hw[0] * out_hw[1]:
            return self._in_full(n, env)
        needed = [(start * g.stride[ax] - g.padding[ax], (size - 1) * g.stride[ax] + g.dilation[ax] * (g.kernel[ax] - 1) + 1)
                  for ax, (start, size) in enumerate(axes)]
        crop = patched(r, needed[0][0], needed[1][0], needed[0][1], needed[1][1], g.pad_value)
        return Region(self.base[n], g.run(crop), top, left)

    def _combined(self, n: fx.Node, env: dict[fx.Node, Any]) -> Any:
        """An elementwise op or a channel concatenation of maps, on the union of their inputs' boxes."""
        hw = self.base[n].shape[-2:]
        inputs = [env[a] for a in n.all_input_nodes]
        maps = [v for v in inputs if isinstance(v, Region)]
        image_maps = [v for v in inputs if isinstance(v, Tensor) and v.dim() >= 2 and v.shape[-2:] == hw != (1, 1)]
        if any(isinstance(v, Plain) for v in inputs) or image_maps or any(r.base.shape[-2:] != hw for r in maps):
            return self._in_full(n, env)  # sizes, or an image-independent map to crop: not worth a special case
        (top, h), (left, w) = _union([r.top for r in maps], [r.values.shape[-2] for r in maps], hw[0]), \
            _union([r.left for r in maps], [r.values.shape[-1] for r in maps], hw[1])
        if h * w > FULL * hw[0] * hw[1]:
            top, left, h, w = torch.zeros_like(top), torch.zeros_like(left), hw[0], hw[1]

        def crop(a: Any) -> Any:
            if not isinstance(a, fx.Node):
                return a
            v = env[a]
            if not isinstance(v, Region):
                return v
            same = v.values.shape[-2:] == (h, w) and torch.equal(v.top, top) and torch.equal(v.left, left)
            return v.values if same else patched(v, top, left, h, w, 0.0)

        values = _call(self.gm, n, map_aggregate(n.args, crop), map_aggregate(n.kwargs, crop))
        if not isinstance(values, Tensor) or values.dim() != 4 or values.shape[-2:] != (h, w):
            return self._in_full(n, env)
        return Region(self.base[n], values, top, left)

    def _in_full(self, n: fx.Node, env: dict[fx.Node, Any]) -> Any:
        """The node run as the model runs it, on the full patched maps: a full Region where it gives a map."""
        def value(a: Any) -> Any:
            if not isinstance(a, fx.Node):
                return a
            v = env[a]
            return _value(v) if isinstance(v, (Region, Plain)) else v

        out = _call(self.gm, n, map_aggregate(n.args, value), map_aggregate(n.kwargs, value))
        if self._is_map(n) and isinstance(out, Tensor) and out.dim() == 4 and out.shape[1:] == self.base[n].shape[1:]:
            zeros = torch.zeros(len(out), dtype=torch.long, device=out.device)
            return Region(self.base[n], out, zeros, zeros)
        return Plain(out)


def patched(r: Region, top: Tensor, left: Tensor, h: int, w: int, pad: float) -> Tensor:
    """The batch's maps over the boxes rows top[b]..+h, columns left[b]..+w (which may reach outside the map:
    `pad` there), each the unoccluded map with its own box of changed values pasted in: [B, C, h, w]."""
    height, width = r.base.shape[-2:]
    device = r.values.device
    rows = top[:, None] + torch.arange(h, device=device)  # [B, h]
    cols = left[:, None] + torch.arange(w, device=device)
    batch = torch.arange(len(top), device=device)[:, None, None]
    rr, cc = rows.clamp(0, height - 1)[:, :, None], cols.clamp(0, width - 1)[:, None, :]
    if r.full:
        out = r.values[batch, :, rr, cc]  # [B, h, w, C]
    else:
        out = r.base[0].permute(1, 2, 0)[rr, cc]  # [B, h, w, C]
        vh, vw = r.values.shape[-2:]
        dr, dc = rows - r.top[:, None], cols - r.left[:, None]
        in_box = ((dr >= 0) & (dr < vh))[:, :, None] & ((dc >= 0) & (dc < vw))[:, None, :]
        changed = r.values[batch, :, dr.clamp(0, vh - 1)[:, :, None], dc.clamp(0, vw - 1)[:, None, :]]
        out = torch.where(in_box[..., None], changed, out)
    inside = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
    if not bool(inside.all()):
        out = torch.where(inside[..., None], out, torch.full((), pad, dtype=out.dtype, device=device))
    return out.permute(0, 3, 1, 2)


def _value(v: Region | Plain) -> Any:
    """The batch's full value of a node."""
    if isinstance(v, Plain):
        return v.value
    h, w = v.base.shape[-2:]
    zeros = torch.zeros_like(v.top)
    return v.values if v.full else patched(v, zeros, zeros, h, w, 0.0)


def _grown(start: Tensor, size: int, out_size: int, g: Geometry, ax: int, approx: float | None) -> tuple[Tensor, int]:
    """The output box (starts [B], length) whose positions read the input box [start, start + size) along axis ax."""
    k, s, p, d = g.kernel[ax], g.stride[ax], g.padding[ax], g.dilation[ax]
    lo = torch.div(start + p - d * (k - 1) + s - 1, s, rounding_mode="floor").clamp(min=0)  # ceil division
    hi = (torch.div(start + size - 1 + p, s, rounding_mode="floor") + 1).clamp(max=out_size)
    length = max(1, int((hi - lo).max()))
    if approx is not None and length > (cap := max(1, math.ceil(approx * out_size))):
        lo, length = (lo + hi - cap) // 2, cap
    return torch.minimum(lo, torch.full_like(lo, out_size - length)).clamp(min=0), length


def _union(starts: Sequence[Tensor], sizes: Sequence[int], size: int) -> tuple[Tensor, int]:
    """The box (starts [B], length) holding every given box along one axis, inside 0..size."""
    lo = torch.stack(list(starts)).amin(0)
    hi = torch.stack([s + n for s, n in zip(starts, sizes)]).amax(0)
    length = min(size, int((hi - lo).max()))
    return torch.minimum(lo, torch.full_like(lo, size - length)).clamp(min=0), length


def _pair(v: Any) -> tuple[int, int]:
    """An int or a pair as a pair."""
    return (v, v) if isinstance(v, int) else tuple(v)


def _module_geometry(m: nn.Module) -> Geometry | None:
    """Conv2d (zero padding), MaxPool2d (no indices) and AvgPool2d where cropping computes them exactly."""
    if isinstance(m, nn.Conv2d) and m.padding_mode == "zeros":
        return _conv(m.weight, m.bias, m.kernel_size, m.stride, m.padding, m.dilation, m.groups)
    if isinstance(m, nn.MaxPool2d) and not m.return_indices:
        return _max_pool(m.kernel_size, m.stride, m.padding, m.dilation)
    if isinstance(m, nn.AvgPool2d):
        return _avg_pool(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad, m.divisor_override)
    return None


def _function_geometry(n: fx.Node, base: dict[fx.Node, Any]) -> Geometry | None:
    """The functional conv2d, max_pool2d and avg_pool2d, read from their arguments."""
    def arg(i: int, name: str, default: Any = None) -> Any:
        v = n.args[i] if len(n.args) > i else n.kwargs.get(name, default)
        return base[v] if isinstance(v, fx.Node) else v

    if n.target is F.conv2d:
        weight = arg(1, "weight")
        return _conv(weight, arg(2, "bias"), weight.shape[-2:], arg(3, "stride", 1), arg(4, "padding", 0),
                     arg(5, "dilation", 1), arg(6, "groups", 1))
    if n.target is F.max_pool2d and not arg(5, "return_indices", False):
        return _max_pool(arg(1, "kernel_size"), arg(2, "stride"), arg(3, "padding", 0), arg(4, "dilation", 1))
    if n.target is F.avg_pool2d:
        return _avg_pool(arg(1, "kernel_size"), arg(2, "stride"), arg(3, "padding", 0), arg(4, "ceil_mode", False),
                         arg(5, "count_include_pad", True), arg(6, "divisor_override"))
    return None


def _conv(weight: Tensor, bias: Tensor | None, kernel: Any, stride: Any, padding: Any, dilation: Any, groups: int,
          ) -> Geometry:
    """A zero-padded convolution."""
    kernel, dilation = _pair(tuple(kernel) if not isinstance(kernel, int) else kernel), _pair(dilation)
    if padding == "valid":
        padding = (0, 0)
    elif padding == "same":
        padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    stride = _pair(stride)
    return Geometry(kernel, stride, _pair(padding), dilation, 0.0,
                    lambda x: F.conv2d(x, weight, bias, stride, 0, dilation, groups))


def _max_pool(kernel: Any, stride: Any, padding: Any, dilation: Any) -> Geometry:
    """A max pool (padding is -inf; ceil_mode only adds end positions, which the crop's padding covers)."""
    kernel, dilation = _pair(kernel), _pair(dilation)
    stride = _pair(stride) if stride else kernel
    return Geometry(kernel, stride, _pair(padding), dilation, -math.inf,
                    lambda x: F.max_pool2d(x, kernel, stride, 0, dilation))


def _avg_pool(kernel: Any, stride: Any, padding: Any, ceil_mode: bool, count_include_pad: bool,
              divisor_override: int | None) -> Geometry | None:
    """An average pool whose divisor is the same everywhere (no excluded padding, no ceil_mode)."""
    kernel = _pair(kernel)
    stride, padding = _pair(stride) if stride else kernel, _pair(padding)
    if ceil_mode or (any(padding) and not count_include_pad and divisor_override is None):
        return None
    return Geometry(kernel, stride, padding, (1, 1), 0.0,
                    lambda x: F.avg_pool2d(x, kernel, stride, 0, False, True, divisor_override))


def _name(n: fx.Node) -> str:
    """The node's function or method name without leading or trailing underscores ('' for modules)."""
    if n.op == "call_module":
        return ""
    return (n.target if isinstance(n.target, str) else getattr(n.target, "__name__", str(n.target))).strip("_")


def _shape_only(n: fx.Node) -> bool:
    """Whether the node reads only its first argument's shape or dtype (x.size(0), x.shape)."""
    if _name(n) not in SHAPES.get(n.op, ()) or not n.args:
        return False
    return n.op == "call_method" or (len(n.args) > 1 and n.args[1] in SHAPE_ATTRIBUTES)


def _cat_dim(n: fx.Node) -> Any:
    """The dim a concatenation joins along."""
    return n.args[1] if len(n.args) > 1 else n.kwargs.get("dim", 0)


def _args(n: fx.Node, env: dict[fx.Node, Any]) -> list[Any]:
    """The node's input nodes' values for the batch (cached values for image-independent ones)."""
    return [env[a] for a in n.all_input_nodes if a in env]


def _call(gm: fx.GraphModule, n: fx.Node, args: Any, kwargs: Any) -> Any:
    """Run the node's op on these arguments."""
    if n.op == "call_module":
        return gm.get_submodule(n.target)(*args, **kwargs)
    if n.op == "call_method":
        return getattr(args[0], n.target)(*args[1:], **kwargs)
    if n.op == "call_function":
        return n.target(*args, **kwargs)
    if n.op == "get_attr":
        return operator.attrgetter(n.target)(gm)
    raise ValueError(f"node {n.name}: op {n.op!r} cannot run")
