"""Receptive fields read off the torch.fx graph (Araujo et al. 2019, "Computing receptive fields of CNNs").

Each node carries, per spatial axis, (size, stride, start) and which of its tensor's dims are the rows and the
columns: output position i of that node sees input pixels [start + i * stride, start + i * stride + size).
Convolutions and pools grow the field, pointwise ops keep it, permutes and reshapes that keep the rows and columns
as dims move them, and ops with several spatial inputs (residual add, concatenation) take the union. Where the graph
cannot decide (fx cannot trace the model, an op it does not know, or one that mixes positions such as attention)
`traced_field` raises Undecided, and methods.receptive_field.field measures the field instead.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from fractions import Fraction
from typing import Any, Iterator, NamedTuple

import torch
from torch import Tensor, fx, nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.node import map_aggregate

from methods.base import get_module, one_line
from methods.graph import Recorder, cut_graph, graph_module
from methods.rf_geometry import GlobalField, ReceptiveField, Undecided

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


_GEOMETRIC = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.LPPool2d)
ADAPTIVE_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_UPSAMPLE = nn.Upsample  # UpsamplingNearest2d and UpsamplingBilinear2d are subclasses
PER_POSITION = (  # leaf modules that act on each map position alone (BatchNorm in its eval-mode form)
    nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.LeakyReLU,
    nn.ELU, nn.SELU, nn.CELU, nn.PReLU, nn.Mish, nn.Softplus, nn.Softsign, nn.Tanhshrink, nn.Threshold, nn.LogSigmoid,
    nn.Identity, nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm, nn.LocalResponseNorm, nn.ChannelShuffle,
)
_GLOBAL_NORMS = (nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)
ELEMENTWISE = {  # function and method names (leading/trailing underscores stripped) that act elementwise
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
_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def traced_field(model: nn.Module, layer: str, chw: tuple[int, int, int], ignore_global: bool) -> ReceptiveField:
    """Trace, run on fake tensors recording shapes and values, then fields node by node up to the layer."""
    gm, node = _trace_to(model, layer)
    values = _run(gm, model, layer, chw)
    states: dict[fx.Node, State] = {}
    for n in gm.graph.nodes:
        states[n] = _state(gm, n, states, values, ignore_global)
        if n is node:
            break
    return _finish(states[node], values[node], layer)


def _per_axis(value: Any) -> tuple[Any, Any]:
    """A conv or pool argument (kernel, stride, padding, dilation) per axis: torch's convention, an int or a pair."""
    return (value, value) if not isinstance(value, (tuple, list)) else (value[0], value[-1])


def _trace_to(model: nn.Module, layer: str) -> tuple[fx.GraphModule, fx.Node]:
    """The fx graph of `model` cut where `layer` first returns (methods.graph.cut_graph), and the layer's node."""
    get_module(model, layer)  # an unknown name raises the one-line error with suggestions
    try:
        graph, constants = cut_graph(model, layer)
    except Exception as err:  # noqa: BLE001 - any tracing failure is reported as one line
        raise Undecided(f"cannot trace {type(model).__name__} up to {layer!r} with torch.fx for receptive fields: {one_line(err)}") from err
    node = next(n for n in graph.nodes if n.op == "output").args[0]
    if not isinstance(node, fx.Node):
        raise ValueError(f"layer {layer!r} returns {type(node).__name__}, not one tensor: it has no single receptive field")
    return graph_module(model, graph, constants, copies=False), node


class _Shape(tuple):
    """The shape of a tensor a node produced (what the analysis keeps of tensors)."""


def _leaves(v: Any) -> list:
    """The _Shapes and other leaves of a recorded output (nested tuples, lists and dicts opened)."""
    if isinstance(v, _Shape) or not isinstance(v, (tuple, list, dict)):
        return [v]
    return [x for item in (v.values() if isinstance(v, dict) else v) for x in _leaves(item)]


def _run(gm: fx.GraphModule, model: nn.Module, layer: str, chw: tuple[int, int, int]) -> dict[fx.Node, Any]:
    """Every node's output on one fake [1, C, H, W] input (shapes only, no arithmetic)."""
    device = next(iter(model.parameters()), torch.zeros(())).device
    recorder = Recorder(gm, lambda out: map_aggregate(out, lambda v: _Shape(v.shape) if isinstance(v, Tensor) else v))
    try:
        with eval_mode(gm), torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True):
            recorder.run(torch.empty(1, *chw, device=device))
    except Exception as err:  # noqa: BLE001 - the model cannot take this input (or fake tensors cannot run it)
        raise Undecided(f"{type(model).__name__} cannot run up to {layer!r} on a {list(chw)} input: {one_line(err)}") from err
    return recorder.kept


@contextmanager


def eval_mode(net: nn.Module) -> Iterator[None]:
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
    if isinstance(mod, ADAPTIVE_POOLS):
        return _on_map(s, values, src, name) or _adaptive(s, values[src], values[n], ignore_global)
    if isinstance(mod, _UPSAMPLE):
        return _on_map(s, values, src, name) or _upsampled(s, values[src], values[n], mod.mode, mod.align_corners)
    if isinstance(mod, PER_POSITION):
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
    if first is not src and name not in ELEMENTWISE and name not in ("cat", "concat", "concatenate", "stack"):
        return Unknown(f"{name} takes the map as a later argument, which receptive_field does not model")
    elementwise_max = name in ("max", "min") and isinstance(_arg(n, values, 1, "other"), _Shape)
    if name in ELEMENTWISE or name in _BROADCASTS or elementwise_max:
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
    kernel, dilation = _per_axis(kernel), _per_axis(dilation)
    stride = _per_axis(stride) if stride else kernel
    out = []
    for ax in range(2):
        size, jump, start = s[ax]
        k_eff = dilation[ax] * (kernel[ax] - 1) + 1
        pad = 0 if padding == "valid" else (k_eff - 1) // 2 if padding == "same" else _per_axis(padding)[ax]
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
    size, stride, start = state.rows
    return ReceptiveField(size, stride, start, cols=None if state.cols == state.rows else tuple(state.cols))
