"""gradient_ascent in a run and in the speed experiment: all units in one batch, against bare steps and lucent."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn

from experiments.adapters.base import Method, RunOptions, dataclass_schema
from experiments.contenders import Contender, Setup, bare_module, failing, formatted
from experiments.data.spec import DataSpec
from experiments.devices import autocast, prepare_input
from experiments.zoo.spec import ModelSpec
from methods import gradient_ascent
from methods.base import GREY, Target, pair

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # what lucent's preprocessing assumes
# settings lucent's render_vis does as we call it; other gradient-ascent settings make the comparison unfair
LUCENT_SETTINGS = {"param": "fourier", "decorrelate": True, "decay_power": 1.0, "optimizer": "adam", "lr": 0.05,
                   "images_per_unit": 1, "diversity": 0.0, "l1": 0.0, "l2": 0.0, "tv": 0.0, "alpha_weight": 0.0,
                   "minimize": False}


def call(spec: ModelSpec, data: DataSpec, target: Target, params: dict[str, Any], opts: RunOptions,
         model: nn.Module) -> gradient_ascent.Ascent:
    """Optimized inputs at the model's input size, with the run's seed, precision and layout."""
    return gradient_ascent.visualize(model, target, input_size=spec.hw, in_channels=spec.in_channels,
                                     normalize=spec.normalizer(), seed=opts.seed,
                                     amp=opts.amp, channels_last=opts.channels_last, compile=opts.compile,
                                     progress=opts.progress, **params)


def contenders(s: Setup, peers: bool) -> tuple[list[Contender], dict[str, float]]:
    """vizbench gradient ascent (all units in one batch), the bare forward+backward steps, lucent per unit."""
    from experiments.peers.lucent import bare_step

    target, params = s.case.target(), s.params
    batch = len(target.units) * params["images_per_unit"]

    def vizbench() -> Any:
        return gradient_ascent.visualize(s.model, target, input_size=s.size, in_channels=len(s.mean),
                                         normalize=s.normalize, seed=s.seed,
                                         amp=s.amp, channels_last=s.channels_last, compile=s.compile, progress=False,
                                         **s.case.params)

    trunc = bare_module(s)
    grey = torch.Generator().manual_seed(s.seed)  # near-grey images like vizbench's starts (speed depends a little on content)
    x = prepare_input((GREY + 0.05 * torch.randn(batch, len(s.mean), *pair(s.size), generator=grey)).clamp(0, 1), s.device, s.channels_last)

    def bare() -> None:
        with autocast(s.device, s.amp):
            for _ in range(params["steps"]):
                bare_step(trunc, x)

    out = [Contender("vizbench", vizbench, batch_size=batch), Contender("bare", bare, batch_size=batch)]
    if peers:
        try:
            fn = lucent_fn(s, params)
        except ValueError as err:  # lucent cannot do this case's work: its row says why, the others still run
            fn = failing(err)
        out.append(Contender("lucent", fn, batch_size=1, eager_fp32=True))
    return out, {"units": len(target.units)}


def lucent_fn(s: Setup, params: dict[str, Any]) -> Callable[[], Any]:
    """lucent's render_vis once per unit, as people call it (fails at once when it cannot do the same work)."""
    from experiments.peers.lucent import lucent_render

    differ = {k: params.get(k) for k, v in LUCENT_SETTINGS.items() if params.get(k) != v}
    if differ:
        raise ValueError(f"not comparable: lucent's render_vis as called here does {LUCENT_SETTINGS}; this case sets {differ}")
    if len(s.mean) != 3 or not isinstance(s.size, int):
        raise ValueError(f"not comparable: lucent renders square RGB images; this case has {len(s.mean)} channels at "
                         f"{s.size} px")
    model = lucent_model(formatted(s), s.mean, s.std)
    target = s.case.target()
    if target.kind != "channel":
        raise ValueError(f"the lucent peer times channel targets only, not {target.kind!r}")

    def run() -> list[Tensor]:  # no autocast: lucent's render_vis fails on bf16 images
        return [lucent_render(model, target.layer, u, s.size, params["steps"], params["transforms"], s.seed)
                for u in target.units]

    return run


def lucent_model(model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> nn.Module:
    """The model as lucent must see it: lucent normalizes with ImageNet statistics; map that to the model's own."""
    if (tuple(mean), tuple(std)) == IMAGENET:
        return model
    m_in, s_in = (torch.tensor(v).view(1, 3, 1, 1) for v in IMAGENET)
    m_out, s_out = (torch.tensor(v).view(1, 3, 1, 1) for v in (mean, std))
    scale, shift = s_in / s_out, (m_in - m_out) / s_out
    dev = next(model.parameters()).device
    scale, shift = scale.to(dev), shift.to(dev)
    model.register_forward_pre_hook(lambda _m, args: (args[0] * scale + shift, *args[1:]))
    return model


METHOD = Method(
    name="gradient_ascent", order=1, visualize=gradient_ascent.visualize, call=call, inputs="optimized",
    check=gradient_ascent.check_params, schema=dataclass_schema(gradient_ascent.Settings), batch="units_per_batch",
    stochastic=True, contenders=contenders, peers={"lucent": ("lucent.optvis.render", "experiments.peers.lucent")},
    scaled="steps", smoke=lambda side: ["method=gradient_ascent/quick", "method.params.steps=2"],
)
