"""The truncated model rebuilt for speed: one fx graph up to the layer, BatchNorm folded into convs, channels_last."""
from __future__ import annotations

import copy
from operator import attrgetter

import torch
from torch import Tensor, fx, nn
from torch.fx.experimental.optimization import fuse

from methods.base import truncate


class FastForward(nn.Module):
    """normalize, then NHWC when asked, then the body (`traced`: an fx graph; otherwise the hook-truncated model)."""

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
        return self.body(x)


def layer_output(graph: fx.Graph, layer: str) -> fx.Node:
    """The node holding `layer`'s output: a leaf module's (first) call, or the last op inside a container module."""
    for node in graph.nodes:
        if node.op == "call_module" and node.target == layer:
            return node
    inside = [n for n in graph.nodes if layer in n.meta.get("nn_module_stack", {})]
    if not inside:
        raise ValueError(f"layer {layer!r} is not in the traced graph")
    return inside[-1]


def traced(model: nn.Module, layer: str) -> fx.GraphModule:
    """The model cut after `layer` as one fx graph over copies of its modules (the model is left as it is)."""
    gm = fx.symbolic_trace(model)
    if layer:
        out = layer_output(gm.graph, layer)
        gm.graph.erase_node(next(n for n in gm.graph.nodes if n.op == "output"))
        with gm.graph.inserting_after(out):
            gm.graph.output(out)
        gm.graph.eliminate_dead_code()
    owned = {n.target: copy.deepcopy(attrgetter(n.target)(model)) for n in gm.graph.nodes if n.op in ("call_module", "get_attr")}
    return fx.GraphModule(owned, gm.graph).train(model.training)


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

    Nothing above the layer is in the graph; in eval mode each BatchNorm after a conv is folded into that conv's
    weights (one op fewer forward and backward); with channels_last weights and inputs are NHWC (oneDNN and
    cuDNN's fast layout). Outputs and input gradients equal the model's up to float rounding. Models torch.fx
    cannot trace (data-dependent control flow) or that carry forward hooks fall back to a hook-truncated copy,
    unfolded.
    """
    body = graph_or_none(model, layer)
    if body is None:
        net = FastForward(truncate(copy.deepcopy(model), layer), copy.deepcopy(normalize), channels_last, traced=False)
    else:
        if not model.training:
            body = fuse(body, inplace=True, no_trace=True).eval()
        net = FastForward(body, copy.deepcopy(normalize), channels_last, traced=True)
    return net.to(memory_format=torch.channels_last) if channels_last else net
