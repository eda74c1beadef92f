"""Theoretical receptive fields from the module graph (Araujo et al. 2019, "Computing receptive fields of CNNs").

The model is traced with torch.fx; each node carries, per spatial axis, (size, stride, start): output position i
of that node sees input pixels [start + i * stride, start + i * stride + size). Convolutions and pools grow it,
pointwise ops keep it, and ops with several spatial inputs (residual add, concatenation) take the union.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.passes.shape_prop import ShapeProp

from methods.base import GREY, get_module
from methods.graph import cut_graph

Axis = tuple[int, int, int]  # (size, stride, start) along one spatial axis
State = tuple[Axis, Axis] | str | None  # rows and cols; str = why it is unsupported; None = not spatial

_GEOMETRIC = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
_ADAPTIVE = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_PADS = (nn.ZeroPad2d, nn.ConstantPad2d)
_GLOBAL_NORMS = (nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d, nn.InstanceNorm1d, nn.InstanceNorm3d)
_MIXING_OPS = {  # shape-preserving ops that mix spatial positions in ways this module does not model
    "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "lp_pool2d", "roll", "flip", "permute",
    "transpose", "cumsum", "softmax", "log_softmax",
}
_GLOBAL_OPS = {"group_norm", "layer_norm", "instance_norm"}
# model -> {(layer, (h, w), ignore_global): field}; geometry is fixed once a model is built (weights do not matter)
_CACHE: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class ReceptiveField:
    """Output position (r, c) sees input rows [offset + r*stride, offset + r*stride + size), same for columns."""

    size: int
    stride: int
    offset: int  # input coordinate of the first pixel seen by position 0 (negative where padding is seen)

    def centre(self, index: int) -> float:
        """Input coordinate of the centre of output position `index` along one axis."""
        return self.offset + index * self.stride + (self.size - 1) / 2


Box = tuple[int, int, int, int]  # (top, left, bottom, right), bottom and right exclusive


def box(rf: ReceptiveField, row: int, col: int, input_size: int | tuple[int, int]) -> tuple[Box, Box]:
    """(clipped, unclipped) input box of output position (row, col); clipped lies inside the image."""
    h, w = _pair(input_size)
    top, left = rf.offset + row * rf.stride, rf.offset + col * rf.stride
    full = (top, left, top + rf.size, left + rf.size)
    clipped = (max(top, 0), max(left, 0), min(full[2], h), min(full[3], w))
    return clipped, full


def receptive_field(
    model: nn.Module, layer: str, input_size: int | tuple[int, int], ignore_global: bool = False, in_channels: int = 3
) -> ReceptiveField:
    """Receptive field of `layer`'s output positions for `input_size` inputs, from the traced module graph.

    With `ignore_global`, branches that pool over the whole map (adaptive pooling to a smaller size,
    squeeze-excitation, GroupNorm/LayerNorm/InstanceNorm) are left out, as receptive-field tables usually do;
    without it such layers raise ValueError, since their true receptive field is the whole image.
    Results are cached per model object (the geometry does not depend on the weights).
    """
    if not layer:
        raise ValueError("layer='' is the model output (logits), which has no spatial receptive field; name a conv layer")
    key = (layer, _pair(input_size), ignore_global, in_channels)
    cached = _CACHE.setdefault(model, {})
    if key not in cached:
        cached[key] = _compute(model, layer, (in_channels, *_pair(input_size)), ignore_global)
    return cached[key]


def local_field(model: nn.Module, layer: str, input_size: int | tuple[int, int], in_channels: int = 3
                ) -> tuple[ReceptiveField, bool]:
    """The layer's receptive field; where global branches (e.g. squeeze-excitation) make it the whole image,
    the local one without them, flagged True."""
    try:
        return receptive_field(model, layer, input_size, in_channels=in_channels), False
    except ValueError:
        return receptive_field(model, layer, input_size, ignore_global=True, in_channels=in_channels), True


def crop(image: Tensor, rf: ReceptiveField, row: int, col: int, side: int) -> Tensor:
    """The full receptive-field box of map position (row, col) in `image` [C, H, W], grey where it sticks out
    of the image, resized to side x side."""
    (t, l, b, r), (ft, fl, fb, fr) = box(rf, row, col, tuple(image.shape[-2:]))
    if b <= t or r <= l:
        raise ValueError(f"position ({row}, {col}) has its receptive field outside the {image.shape[-2]}x{image.shape[-1]} image")
    patch = F.pad(image[:, t:b, l:r], (l - fl, fr - r, t - ft, fb - b), value=GREY)
    if patch.shape[-1] != side:
        patch = F.interpolate(patch[None], size=(side, side), mode="bilinear", antialias=True, align_corners=False)[0]
    return patch


def _compute(model: nn.Module, layer: str, chw: tuple[int, int, int], ignore_global: bool) -> ReceptiveField:
    """Trace, propagate shapes with fake tensors, then fields node by node up to the layer."""
    gm, node = _trace_to(model, layer)
    device = next(iter(model.parameters()), torch.zeros(())).device
    try:
        with torch.no_grad():  # fake tensors: shapes only, no arithmetic
            ShapeProp(gm, fake_mode=FakeTensorMode(allow_non_fake_inputs=True)).propagate(torch.zeros(1, *chw, device=device))
    except Exception as err:  # noqa: BLE001 - the model cannot take this input; say so in one line
        raise ValueError(f"{type(model).__name__} cannot run up to {layer!r} on a {list(chw)} input: {str(err).splitlines()[0]}") from err
    states: dict[fx.Node, State] = {}
    for n in gm.graph.nodes:
        states[n] = _state(gm, n, states, ignore_global)
        if n is node:
            break
    return _finish(states[node], node, layer)


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    """(h, w) from an int or a pair."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _trace_to(model: nn.Module, layer: str) -> tuple[fx.GraphModule, fx.Node]:
    """The fx graph of `model` cut where `layer` first returns (methods.graph.cut_graph), and the layer's node."""
    get_module(model, layer)  # an unknown name raises the one-line error with suggestions
    try:
        graph = cut_graph(model, layer)
    except Exception as err:  # noqa: BLE001 - any tracing failure is reported as one line
        raise ValueError(f"cannot trace {type(model).__name__} up to {layer!r} with torch.fx for receptive fields: {err}") from err
    node = next(n for n in graph.nodes if n.op == "output").args[0]
    if not isinstance(node, fx.Node):
        raise ValueError(f"layer {layer!r} returns {type(node).__name__}, not one tensor: it has no single receptive field")
    return fx.GraphModule(model, graph), node


def _shape(n: Any) -> tuple[int, ...] | None:
    """Shape of a node's tensor output, or None when it is not a tensor."""
    meta = getattr(n, "meta", {}).get("tensor_meta") if isinstance(n, fx.Node) else None
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _inputs(n: fx.Node) -> list[fx.Node]:
    """All nodes among a node's args and kwargs (lists flattened, as for torch.cat)."""
    return list(n.all_input_nodes)


def _state(gm: fx.GraphModule, n: fx.Node, states: dict[fx.Node, State], ignore_global: bool) -> State:
    """Receptive-field state of one node from its inputs' states."""
    if n.op == "placeholder":
        return ((1, 1, 0), (1, 1, 0)) if not any(p.op == "placeholder" for p in states) else None
    if n.op in ("get_attr", "output"):
        return None
    ins = [states.get(i) for i in _inputs(n)]
    bad = next((s for s in ins if isinstance(s, str)), None)
    if bad is not None:
        return bad
    spatial = [(i, s) for i, s in zip(_inputs(n), ins) if s is not None]
    if not spatial:
        return None
    name = _op_name(gm, n)
    if n.op == "call_module":
        mod = gm.get_submodule(n.target)
        if isinstance(mod, _GEOMETRIC):
            return _geometric(mod, spatial[0][1])
        if isinstance(mod, _PADS):
            return _padded(mod, spatial[0][1])
        if isinstance(mod, _ADAPTIVE):
            return _adaptive(n, spatial[0], ignore_global)
        if isinstance(mod, _GLOBAL_NORMS):
            return spatial[0][1] if ignore_global else f"{name} normalizes over the whole map (pass ignore_global=True to leave it out)"
    if name in _GLOBAL_OPS:
        return spatial[0][1] if ignore_global else f"{name} normalizes over the whole map (pass ignore_global=True to leave it out)"
    if name in _MIXING_OPS and not (name in ("softmax", "log_softmax") and _channel_dim(n)):
        return f"{name} ({n.op}) mixes spatial positions in a way receptive_field does not model; use nn modules"
    return _pointwise(n, name, spatial)


def _op_name(gm: fx.GraphModule, n: fx.Node) -> str:
    """A short name for a node's operation (module class, function or method name)."""
    if n.op == "call_module":
        return type(gm.get_submodule(n.target)).__name__
    return n.target if isinstance(n.target, str) else getattr(n.target, "__name__", str(n.target))


def _channel_dim(n: fx.Node) -> bool:
    """Whether a softmax node works along the channel dimension (1 of a 4-d tensor)."""
    dim = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else None)
    return dim in (1, -3)


def _pointwise(n: fx.Node, name: str, spatial: list[tuple[fx.Node, State]]) -> State:
    """A shape-preserving op: the union of its spatial inputs' fields (residual add, concatenation, ...)."""
    out = _shape(n)
    if out is None or len(out) != 4:
        return f"{name} turns the map into shape {out} (no spatial positions)"
    for i, _ in spatial:
        if _shape(i) is None or _shape(i)[-2:] != out[-2:]:
            return f"{name} combines maps of spatial size {_shape(i) and _shape(i)[-2:]} into {out[-2:]} (resizing/broadcast is not modelled; ignore_global=True leaves out global branches)"
    states = [s for _, s in spatial]
    rows, cols = _union([s[0] for s in states], name), _union([s[1] for s in states], name)
    return rows if isinstance(rows, str) else cols if isinstance(cols, str) else (rows, cols)


def _union(axes: list[Axis], name: str) -> Axis | str:
    """Union of same-stride fields along one axis."""
    strides = {a[1] for a in axes}
    if len(strides) > 1:
        return f"{name} joins branches with different strides {sorted(strides)}"
    start = min(a[2] for a in axes)
    end = max(a[2] + a[0] for a in axes)
    return (end - start, axes[0][1], start)


def _geometric(mod: nn.Module, state: State) -> State:
    """Field after a convolution or pooling layer (kernel, stride, padding, dilation per axis)."""
    kernel = _pair(mod.kernel_size)
    stride = _pair(mod.stride if mod.stride is not None else mod.kernel_size)
    dilation = _pair(getattr(mod, "dilation", 1))
    padding = mod.padding
    out = []
    for ax in range(2):
        size, jump, start = state[ax]
        k_eff = dilation[ax] * (kernel[ax] - 1) + 1
        if padding == "valid":
            pad = 0
        elif padding == "same":
            pad = (k_eff - 1) // 2
        else:
            pad = _pair(padding)[ax]
        out.append((size + (k_eff - 1) * jump, jump * stride[ax], start - pad * jump))
    return tuple(out)


def _padded(mod: nn.Module, state: State) -> State:
    """Field after constant padding (left, right, top, bottom): positions shift, sizes stay."""
    left, _, top, _ = mod.padding
    (rs, rj, r0), (cs, cj, c0) = state
    return ((rs, rj, r0 - top * rj), (cs, cj, c0 - left * cj))


def _adaptive(n: fx.Node, inp: tuple[fx.Node, State], ignore_global: bool) -> State:
    """Adaptive pooling: the identity when sizes match; else left out (ignore_global), an exact pool when sizes divide, or rejected."""
    src, state = inp
    hw_in, hw_out = _shape(src)[-2:], _shape(n)[-2:]
    if hw_in == hw_out:
        return state
    if ignore_global:
        return None
    if all(i % o == 0 for i, o in zip(hw_in, hw_out)):
        k = tuple(i // o for i, o in zip(hw_in, hw_out))
        return tuple((s + (kk - 1) * j, j * kk, st) for (s, j, st), kk in zip(state, k))
    return f"adaptive pooling from {tuple(hw_in)} to {tuple(hw_out)} has no fixed kernel (pass ignore_global=True to leave it out)"


def _finish(state: State, node: fx.Node, layer: str) -> ReceptiveField:
    """The ReceptiveField of the layer's node, or a one-line error."""
    if isinstance(state, str):
        raise ValueError(f"receptive field of layer {layer!r} is undefined: {state}")
    if state is None:
        raise ValueError(f"layer {layer!r} depends on the input only through global pooling (or not at all): no local receptive field")
    shape = _shape(node)
    if shape is None or len(shape) != 4:
        raise ValueError(f"layer {layer!r} outputs shape {shape}; receptive fields need a [N, C, H, W] map")
    if state[0] != state[1]:
        raise ValueError(f"layer {layer!r} has a non-square receptive field (rows {state[0]}, cols {state[1]}) as (size, stride, start)")
    size, stride, start = state[0]
    return ReceptiveField(size=size, stride=stride, offset=start)
