"""The truncated model rebuilt for speed: one fx graph up to the layer, BatchNorm folded into convs, channels_last."""
from __future__ import annotations

import copy
from contextlib import contextmanager
from operator import attrgetter
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, fx, nn
from torch.fx.experimental.optimization import fuse

from methods.base import MODULE_TABLES, copy_module, to_channels_last, truncate
from methods.layout import as_map


class FastForward(nn.Module):
    """normalize, then NHWC when asked, then the body (`traced`: an fx graph, its output seen as a map as truncate
    does; otherwise the hook-truncated model, which does it itself)."""

    def __init__(self, body: nn.Module, normalize: nn.Module | None, channels_last: bool, traced: bool) -> None:
        super().__init__()
        self.body = body
        self.normalize = normalize if normalize is not None else nn.Identity()
        self.channels_last = channels_last
        self.traced = traced

    def forward(self, x: Tensor) -> Tensor:
        x = self.normalize(x)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.body(x) if not self.traced else as_map(self.body(x), x.shape[-2:], len(x))


class _Reached(Exception):
    """Raised by CutTracer when the layer has returned: nothing above it is traced."""

    def __init__(self, out: object) -> None:
        super().__init__()
        self.out = out


class CutTracer(fx.Tracer):
    """An fx tracer that stops at the first return of module `layer`, as truncate's hook does."""

    def __init__(self, layer: str) -> None:
        super().__init__()
        self.layer = layer

    def call_module(self, m: nn.Module, forward: Any, args: tuple, kwargs: dict) -> Any:
        out = super().call_module(m, forward, args, kwargs)
        if self.path_of_module(m) == self.layer:
            raise _Reached(out)
        return out


class Recorder(fx.Interpreter):
    """Runs the graph keeping `keep(output)` of every node in `kept`."""

    def __init__(self, gm: fx.GraphModule, keep: Callable[[Any], Any]) -> None:
        super().__init__(gm)
        self.keep = keep
        self.kept: dict[fx.Node, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        self.kept[n] = self.keep(out)
        return out


def impure(node: fx.Node, model: nn.Module) -> bool:
    """fx's purity rule for dead-code elimination, reading modules from `model` (the graph has no owner yet)."""
    if node.op == "call_module":
        return bool(getattr(attrgetter(node.target)(model), "_is_impure", False))
    return node.is_impure()


@contextmanager
def attributes_kept(model: nn.Module) -> Iterator[dict[str, Any]]:
    """Every module's plain attributes, and the contents of its dict, list and set attributes, restored after the
    block: tracing runs the model's forward code, which may cache fx Proxies on the model (timm's LeViT keeps its
    attention biases in a dict per device), and a model holding Proxies breaks every later copy and run. Yields a
    dict that gets the attributes the block added, by qualified name, as they were before their removal (the
    tracer's own tensor constants among them)."""
    saved, added = [], {}
    for name, m in model.named_modules():
        attrs = {k: v for k, v in vars(m).items() if k not in MODULE_TABLES}
        saved.append((name, m, attrs, {k: copy.copy(v) for k, v in attrs.items() if type(v) in (dict, list, set)}))
    try:
        yield added
    finally:
        for name, m, attrs, contents in saved:
            for k in [k for k in vars(m) if k not in attrs and k not in MODULE_TABLES]:
                added[f"{name}.{k}" if name else k] = m.__dict__.pop(k)
            m.__dict__.update(attrs)
            for k, old in contents.items():
                attrs[k].clear()
                attrs[k].update(old) if isinstance(old, (dict, set)) else attrs[k].extend(old)


def cut_graph(model: nn.Module, layer: str) -> tuple[fx.Graph, dict[str, Tensor]]:
    """The fx graph of `model` up to where `layer` first returns (its output is the graph's), dead code pruned, and
    the tensor constants the trace made (which torch.fx would otherwise leave on the model).

    Its call_module and get_attr nodes name the model's own modules and tensors, or those constants; raises where
    torch.fx cannot trace that far.
    """
    tracer = CutTracer(layer)
    with attributes_kept(model) as added:
        try:
            graph = tracer.trace(model)
        except _Reached as reached:
            graph = tracer.graph
            graph.output(tracer.create_arg(reached.out))
        else:
            if layer:
                raise ValueError(f"layer {layer!r} is not reached in the traced forward")
    graph.eliminate_dead_code(is_impure_node=lambda n: impure(n, model))
    return graph, {k: v for k, v in added.items() if isinstance(v, Tensor)}


def graph_module(model: nn.Module, graph: fx.Graph, constants: dict[str, Tensor], copies: bool) -> fx.GraphModule:
    """The graph over the model's modules and tensors (copies of them with `copies`: the model is then left as it
    is) and the trace's constants."""
    def owned(target: str) -> Any:
        if target in constants:
            return constants[target]
        value = attrgetter(target)(model)
        return copy_module(value) if copies else value
    targets = {n.target for n in graph.nodes if n.op in ("call_module", "get_attr")}
    return fx.GraphModule({t: owned(t) for t in targets}, graph).train(model.training)


def traced(model: nn.Module, layer: str) -> fx.GraphModule:
    """The model cut after `layer` as one fx graph over copies of its modules (the model is left as it is)."""
    return graph_module(model, *cut_graph(model, layer), copies=True)


def graph_or_none(model: nn.Module, layer: str) -> fx.GraphModule | None:
    """traced(model, layer); None where torch.fx fails (data-dependent control flow) or would drop forward hooks."""
    if any(m._forward_hooks or m._forward_pre_hooks for m in model.modules()):
        return None
    try:
        return traced(model, layer)
    except Exception:  # noqa: BLE001 - any tracing failure means: use the hook truncation
        return None


def fast_forward(model: nn.Module, layer: str, normalize: nn.Module | None = None, channels_last: bool = False) -> nn.Module:
    """A copy of `truncate(model, layer, normalize)` that computes the same function faster.

    The trace stops where the layer first returns, so nothing above it is in the graph (and control flow
    above it does not matter); in eval mode each BatchNorm after a conv is folded into that conv's
    weights (one op fewer forward and backward); with channels_last weights and inputs are NHWC (oneDNN and
    cuDNN's fast layout). Outputs and input gradients equal the model's up to float rounding. Models torch.fx
    cannot trace (data-dependent control flow) or that carry forward hooks fall back to a hook-truncated copy,
    unfolded.
    """
    body = graph_or_none(model, layer)
    if body is None:
        net = FastForward(truncate(copy_module(model), layer), copy_module(normalize) if normalize is not None else None, channels_last, traced=False)
    else:
        if not model.training:
            body = fuse(body, inplace=True, no_trace=True).eval()
        net = FastForward(body, copy_module(normalize) if normalize is not None else None, channels_last, traced=True)
    return to_channels_last(net) if channels_last else net
