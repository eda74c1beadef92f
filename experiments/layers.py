"""`python -m experiments.layers model=<...> [model.name=...] [--measure]`: every module of a model with its type,
output shape at the model's input size (raw, and as a map where methods.layout reads one), channels, receptive
field and whether it is a default target; the names are what target.layer takes.

One forward pass gives the shapes; receptive fields are computed for maps larger than 1x1 only, from the traced graph.
Where the graph cannot decide (transformer blocks, ops it does not know) the field is `-` unless --measure is
given, which measures it from input gradients (`methods.receptive_field.field`; seconds per layer on a ViT).
"""
from __future__ import annotations

import sys
from typing import Sequence

import pandas as pd
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from experiments.config import register
from experiments.zoo import build_model
from experiments.zoo.probe import Call, Trace, trace
from experiments.zoo.spec import ModelSpec
from methods.receptive_field import GlobalField, Undecided, local_field, receptive_field

MEASURE = "--measure"


def model_config(overrides: Sequence[str]) -> DictConfig:
    """The `model` config `python -m experiments.run` composes from the same overrides."""
    register()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        return compose(config_name="config", overrides=["hydra.mode=RUN", *overrides]).model


def field_text(spec: ModelSpec, layer: str, measure: bool) -> tuple[str, str]:
    """(receptive field size, how it was found) of a map layer; '-' where it cannot be had."""
    if not measure:  # the traced graph only: no gradient measurement (seconds per layer on a ViT)
        try:
            return str(receptive_field(spec.model, layer, spec.hw, in_channels=spec.in_channels)), "graph"
        except Undecided:
            return "-", "undecided"
        except GlobalField:
            try:
                local = receptive_field(spec.model, layer, spec.hw, ignore_global=True, in_channels=spec.in_channels)
            except Undecided:
                return "whole image", "graph"
            except Exception:  # noqa: BLE001 - no local field: the global one is the answer
                return "whole image", "graph"
            return f"{local} (local)", "graph"
        except Exception as err:  # noqa: BLE001 - any failure is this layer's "-", never the table's end
            return "-", (str(err).splitlines() or [type(err).__name__])[0][:60]
    try:
        rf, local = local_field(spec.model, layer, spec.hw, spec.in_channels)
    except Exception as err:  # noqa: BLE001 - any failure is this layer's "-", never the table's end
        return "-", (str(err).splitlines() or [type(err).__name__])[0][:60]
    if rf.whole_image:
        return "whole image", rf.method
    return (f"{rf} (local)" if local else str(rf)), rf.method


def map_text(probe: Trace, call: Call) -> str:
    """The output as a map, e.g. '768x14x14 tokens 14x14 (1 leading token dropped)'; '-' where it is none."""
    layout = probe.layout(call)
    if layout is None:
        return "-"
    shape = "x".join(map(str, layout.map_shape(call.shape)))
    return shape if layout.kind in ("nchw", "vector") else f"{shape} {layout.describe()}"


def layer_table(spec: ModelSpec, measure: bool = False) -> pd.DataFrame:
    """One row per module (the root left out), in module order."""
    probe = trace(spec.model, spec.hw, spec.in_channels, spec.name)
    calls = {c.name: c for c in probe.calls}
    rows = []
    for name, module in spec.model.named_modules():
        if not name:
            continue
        call = calls.get(name)
        units = spec.default_targets.get(name, [])
        row = {"layer": name, "type": type(module).__name__, "output": "-", "map": "-", "channels": "-", "rf": "-",
               "rf_method": "-" if call else "not called", "target": ",".join(map(str, units))}
        if call is not None:
            row["output"] = str(list(call.shape)) if call.shape is not None else call.kind
            row["map"] = map_text(probe, call)
            shape = probe.map_shape(call)
            row["channels"] = str(shape[0]) if shape else "-"
            if probe.is_map(call):
                row["rf"], row["rf_method"] = field_text(spec, name, measure)
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the layer table of the model the overrides in `argv` describe; 1 with one error line on bad input."""
    args = list(sys.argv[1:] if argv is None else argv)
    measure = MEASURE in args
    try:
        spec = build_model(model_config([a for a in args if a != MEASURE]))
        table = layer_table(spec, measure)
    except Exception as err:  # noqa: BLE001 - bad overrides and models fail in many types, all one line
        print(f"error: {str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}", file=sys.stderr)
        return 1
    c, (h, w) = spec.in_channels, spec.hw
    print(f"{spec.name}: input [{c}, {h}, {w}]; default targets (target.layer=...): {', '.join(spec.default_targets)}")
    print(table.to_string(index=False))
    if not measure and (table["rf_method"] == "undecided").any():
        print(f"rf '-' (undecided): the traced graph cannot decide the field; {MEASURE} measures it from input "
              "gradients (seconds per layer on a transformer)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
