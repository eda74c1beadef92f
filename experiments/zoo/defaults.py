"""Default targets: the first conv, then spatial feature maps at about one third and two thirds of the depth.

Where the model has blocks (composite modules in a Sequential, ModuleList or ModuleDict: resnet's BasicBlock,
efficientnet's MBConv, ViT's EncoderBlock, Swin's and ConvNeXt's blocks, DenseNet's dense layers) the targets are
whole blocks, the innermost ones; otherwise (VGG, AlexNet, plain conv stacks) they are Conv2d layers, and where
neither gives one map per image (TNT's blocks return tuples, its pixel-level convs fold patches into the batch),
the outermost composite modules whose output does (else any module). Gates
(modules whose every called submodule gives a 1x1 map or a vector, as squeeze-excitation does) and attention
modules are never targets, nor anything inside them. A map is an output methods.layout reads as [C, H, W] with
H * W > 1 (channels-last maps and token grids included).
"""
from __future__ import annotations

from torch import nn

from experiments.zoo.probe import Call, Trace, trace
from experiments.zoo.spec import first_conv

SEQUENCES = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
DEPTHS = (1 / 3, 2 / 3)


def ancestors(name: str) -> list[str]:
    """The names of the modules above `name` ('' = the root)."""
    parts = name.split(".") if name else []
    return [".".join(parts[:i]) for i in range(len(parts))]


def is_attention(module: nn.Module) -> bool:
    """Whether `module` is an attention module (nn.MultiheadAttention, or a class named ...Attention)."""
    return isinstance(module, nn.MultiheadAttention) or type(module).__name__.lower().endswith("attention")


def branches(model: nn.Module, probe: Trace) -> set[str]:
    """Gates and attention modules: module names whose outputs, and everything inside them, are not targets."""
    called, mapped = set(), set()
    for call in probe.calls:
        called.update(ancestors(call.name))
        if probe.is_map(call):
            mapped.update(ancestors(call.name))
    gates = {c.name for c in probe.calls if c.name in called and c.name not in mapped and probe.is_map(c)}
    return gates | {n for n, m in model.named_modules() if is_attention(m)}


def composite(module: nn.Module) -> bool:
    """Whether `module` may be a block: it has submodules and is not itself a plain container."""
    return not isinstance(module, SEQUENCES) and next(module.children(), None) is not None


def inside_any(name: str, modules: set[str]) -> bool:
    """Whether module `name` is one of `modules` or inside one."""
    return not modules.isdisjoint([name, *ancestors(name)])


def blocks(model: nn.Module, probe: Trace, skipped: set[str]) -> list[str]:
    """The model's blocks outside the `skipped` modules. A composite module is a stage, made of the composites
    inside it, where a container inside it ends in a composite that gives the stage's output shape (ViT's Encoder,
    timm's ConvNeXtStage); otherwise it is a block (the composites inside it are its parts or branches, as in a
    ViT block's MLP or an Inception block's branches)."""
    calls = {c.name: c for c in probe.calls}
    order = {c.name: i for i, c in enumerate(probe.calls)}
    modules = dict(model.named_modules())
    names = [n for n, m in modules.items() if n in calls and n and composite(m) and not inside_any(n, skipped)]
    inside: dict[str | None, list[str]] = {}
    for name in names:
        outer = next((a for a in reversed(ancestors(name)) if a in names), None)
        inside.setdefault(outer, []).append(name)

    def is_stage(name: str) -> bool:
        chains: dict[str, list[str]] = {}
        for sub in inside.get(name, []):
            container = sub.rpartition(".")[0]
            if container != name and isinstance(modules[container], SEQUENCES):
                chains.setdefault(container, []).append(sub)
        return any(calls[max(chain, key=order.get)].shape == calls[name].shape for chain in chains.values())

    def expand(name: str | None) -> list[str]:
        if name is not None and not is_stage(name):
            return [name]
        return [block for sub in sorted(inside.get(name, []), key=order.get) for block in expand(sub)]
    return expand(None)


def candidates(model: nn.Module, probe: Trace) -> list[Call]:
    """The calls that may be targets, in execution order: blocks, or convs where there are no blocks."""
    skipped, modules = branches(model, probe), dict(model.named_modules())
    usable = {c.name: c for c in probe.calls if c.name and probe.is_map(c) and not inside_any(c.name, skipped)}
    chosen = [n for n in blocks(model, probe, skipped) if n in usable]
    if not chosen:
        chosen = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and n in usable]
    if not chosen:  # neither blocks nor convs give one map per image (TNT's blocks return tuples): any module that does
        chosen = [n for n in usable if not any(a in usable for a in ancestors(n)) and composite(modules[n])] or list(usable)
    order = {c.name: i for i, c in enumerate(probe.calls)}
    return sorted((usable[n] for n in chosen), key=lambda c: order[c.name])


def auto_targets(model: nn.Module, hw: tuple[int, int] = (224, 224), in_channels: int = 3, units: int = 4,
                 probe: Trace | None = None) -> dict[str, list[int]]:
    """Default targets (see the module docstring), each with its first `units` units; `probe` is a trace of the
    model at (hw, in_channels), made here where not given."""
    probe = probe or trace(model, hw, in_channels)
    calls = {c.name: c for c in probe.calls}
    first = first_conv(model)
    picked = [calls[first[0]]] if first and first[0] in calls and probe.is_map(calls[first[0]]) else []
    pool = [c for c in candidates(model, probe) if not (first and inside_any(first[0], {c.name}))]
    picked += [pool[max(0, round(len(pool) * depth) - 1)] for depth in DEPTHS if pool]  # the block ending that depth
    return {c.name: list(range(min(units, probe.map_shape(c)[0]))) for c in picked}
