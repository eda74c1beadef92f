"""The speed experiment: tiny in-process runs write the expected rows, peers missing are recorded, and every
contender does the same work as vizbench (same images seen by the model, same objective, same maps)."""
from __future__ import annotations

import copy
import math
import sys
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from experiments import contenders as contenders_module
from experiments import speed
from experiments.adapters import gradient_ascent as ga_adapter
from experiments.adapters import registry
from experiments.run import run
from methods import occlusion, top_patches
from methods.gradient_ascent import optimize as ga_optimize
from methods.base import Normalize, Target, truncate
from tests.conftest import make_cfg

S = 32  # side of every tiny case
GA = {"name": "ga", "method": "gradient_ascent/quick", "model": "planted", "layer": "conv2", "units": 2, "input_size": S,
      "params": {"steps": 2, "transforms": "standard"}}
OCC_CLASS = {"name": "occ_class", "method": "occlusion", "model": "planted", "kind": "class", "layer": "", "units": [0, 3],
             "input_size": S, "images": 2, "params": {"window": 8, "stride": 8, "batch_size": 8}}
OCC_NEURON = {"name": "occ_neuron", "method": "occlusion", "model": "planted", "kind": "neuron", "layer": "conv1",
              "units": [0], "input_size": S, "images": 1, "params": {"window": 4, "stride": 4, "batch_size": 16}}
TOP = {"name": "top", "method": "top_patches", "model": "planted", "layer": "conv2", "units": 2, "input_size": S,
       "images": 8, "params": {"k": 2, "batch_size": 4}}
CONTEXT = ["case", "contender", "variant", "device", "torch_version", "cuda_version", "amp", "channels_last", "compile",
           "threads", "batch_size"]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: on a busy shared CPU, two threads make tiny models tens of times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def speed_cfg(tmp_path: Path, cases: list[dict], *overrides: str) -> DictConfig:
    """The speed experiment's config with tiny cases, one repeat, writing into tmp_path."""
    cfg = make_cfg("experiment=speed", "speed.repeats=1", "speed.threads=1", "speed.memory=false", "progress=false", *overrides)
    OmegaConf.set_struct(cfg, False)
    cfg.output_dir = str(tmp_path)
    cfg.speed.cases = cases
    return cfg


def value(df: pd.DataFrame, case: str, contender: str, metric: str) -> pd.Series:
    """The rows of one case, contender and metric."""
    return df[(df["case"] == case) & (df["contender"] == contender) & (df["metric"] == metric)]


def test_tiny_run_writes_rows_for_every_contender_and_both_ratios(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    df = run(speed_cfg(tmp_path, [GA, OCC_CLASS, OCC_NEURON, {**TOP, "targets": {"vs_bare": 1e9}}], "speed.memory=true"))
    printed = capsys.readouterr().out
    summary_line = next(line for line in printed.splitlines() if line.startswith("| top "))
    assert "yes" in summary_line  # its target (vs_bare <= 1e9) is met
    assert (tmp_path / "DONE").exists()
    on_disk = pd.read_csv(tmp_path / "metrics.csv")
    assert len(on_disk) == len(df) and set(CONTEXT) <= set(on_disk.columns)
    assert (df["experiment"] == "speed").all()
    expected = {"ga": ["vizbench", "bare", "lucent"], "occ_class": ["vizbench", "bare", "captum_occlusion"],
                "occ_neuron": ["vizbench", "bare", "captum_occlusion"], "top": ["vizbench", "bare"]}
    for case, contenders in expected.items():
        for who in contenders:
            times = value(df, case, who, "time_s")
            assert len(times) >= 1 and (times["status"] == "ok").all(), (case, who, times["status"].tolist())
            assert times["value"].map(lambda v: math.isfinite(v) and v > 0).all()
            assert (value(df, case, who, "time_min_s")["value"] <= times["value"].values).all()
            assert (value(df, case, who, "peak_mem_mb")["value"] > 0).all() and (value(df, case, who, "repeats")["value"] == 1).all()
        for metric in ("vs_bare", "vs_bare_min"):
            ratio = value(df, case, "vizbench", metric)
            assert len(ratio) == 1 and ratio["status"].iloc[0] == "ok" and ratio["value"].iloc[0] > 0
    for case in ("ga", "occ_class", "occ_neuron"):
        assert value(df, case, "vizbench", "vs_peer")["status"].tolist() == ["ok"]
    assert value(df, "top", "vizbench", "vs_peer").empty
    # captum is timed at perturbations_per_eval 1 and at the batch size; vs_peer uses the faster one
    captum = value(df, "occ_class", "captum_occlusion", "time_s")
    assert sorted(captum["variant"]) == ["ppe=1", "ppe=8"]
    viz = value(df, "occ_class", "vizbench", "time_s")["value"].iloc[0]
    assert value(df, "occ_class", "vizbench", "vs_peer")["value"].iloc[0] == pytest.approx(viz / captum["value"].min())
    fastest = value(df, "occ_class", "vizbench", "time_min_s")["value"].iloc[0]
    captum_min = value(df, "occ_class", "captum_occlusion", "time_min_s")["value"].min()
    assert value(df, "occ_class", "vizbench", "vs_peer_min")["value"].iloc[0] == pytest.approx(fastest / captum_min)
    # throughput counts the same work for every contender: units, or images x full-map windows x units
    assert value(df, "ga", "lucent", "units_per_s")["value"].iloc[0] == pytest.approx(2 / value(df, "ga", "lucent", "time_s")["value"].iloc[0])
    per_s = value(df, "occ_class", "bare", "perturbations_per_s")["value"].iloc[0]
    assert per_s == pytest.approx(2 * 16 * 2 / value(df, "occ_class", "bare", "time_s")["value"].iloc[0])
    assert (df[df["status"] == "ok"]["threads"] == 1).all()


def test_missing_peers_are_recorded_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("lucent", "lucent.optvis", "lucent.optvis.render", "captum", "captum.attr"):
        monkeypatch.setitem(sys.modules, name, None)  # import of <name> now raises ImportError
    df = run(speed_cfg(tmp_path, [GA, OCC_CLASS]))
    for case, peer in (("ga", "lucent"), ("occ_class", "captum_occlusion")):
        rows = value(df, case, peer, "time_s")
        assert len(rows) == 1 and rows["status"].iloc[0].startswith("skipped: peer not installed")
        assert value(df, case, "vizbench", "vs_peer")["status"].iloc[0].startswith("skipped: peer not installed")
        assert value(df, case, "vizbench", "vs_bare")["status"].tolist() == ["ok"]
    assert (tmp_path / "DONE").exists()


def test_lucent_is_marked_failed_when_the_case_is_not_its_work(tmp_path: Path) -> None:
    pixel = {**GA, "params": {**GA["params"], "param": "pixel"}}
    df = run(speed_cfg(tmp_path, [pixel]))
    assert value(df, "ga", "lucent", "time_s")["status"].iloc[0].startswith("failed: ValueError: not comparable")
    assert value(df, "ga", "vizbench", "vs_bare")["status"].tolist() == ["ok"]
    assert value(df, "ga", "vizbench", "vs_peer")["status"].iloc[0] == "failed: every peer variant failed"


def test_peers_off_times_no_peer(tmp_path: Path) -> None:
    df = run(speed_cfg(tmp_path, [OCC_NEURON], "speed.peers=false"))
    assert set(df["contender"]) == {"vizbench", "bare", "vizbench_full"}  # vizbench_full: its own full-forward path
    assert value(df, "occ_neuron", "vizbench", "vs_peer")["status"].iloc[0] == "skipped: peers off (speed.peers=false)"


def test_a_broken_case_gives_a_failed_row_and_the_run_goes_on(tmp_path: Path) -> None:
    broken = {**OCC_NEURON, "name": "broken", "layer": "no_such_layer"}
    df = run(speed_cfg(tmp_path, [broken, OCC_NEURON], "speed.peers=false"))
    assert df[df["case"] == "broken"]["status"].str.startswith("failed:").all()
    assert value(df, "occ_neuron", "vizbench", "vs_bare")["status"].tolist() == ["ok"]


def build(case: dict, monkeypatch: pytest.MonkeyPatch | None = None, seen: list | None = None) -> tuple[speed.Setup, list, dict]:
    """A case's setup, contenders and work; with `seen`, every model copy and graph the contenders build records
    (its name, input shape) as it is fed (the shared model itself carries no hook: fast_forward would not trace it)."""
    cfg = speed_cfg(Path("."), [case])
    s, method, _ = speed.setup(speed.parse_cases([case])[0], cfg, torch.device("cpu"))
    if seen is None:
        return (s, *method.contenders(s, True))
    names = iter(range(1000))

    def record(model: torch.nn.Module) -> torch.nn.Module:
        name = f"model{next(names)}"
        model.register_forward_pre_hook(lambda _m, args: seen.append((name, tuple(args[0].shape))))
        return model

    patched = [(contenders_module, "fast_forward"), (ga_optimize, "fast_forward"), (occlusion, "fast_forward"),
               (top_patches, "fast_forward")]
    if method.name == "gradient_ascent":  # lucent runs the model copy itself (occlusion's vizbench would stop tracing a hooked copy)
        patched.append((ga_adapter, "formatted"))
    for module, attr in patched:
        original = getattr(module, attr)
        monkeypatch.setattr(module, attr, lambda *a, _f=original, **k: record(_f(*a, **k)))
    return (s, *method.contenders(s, True))


def fed(contender: speed.Contender, seen: list) -> tuple[set[str], list[tuple[int, ...]]]:
    """Run the contender: the names of the models it fed and the input shapes, in order."""
    start = len(seen)
    contender.fn()
    return {n for n, _ in seen[start:]}, [shape for _, shape in seen[start:]]


def test_gradient_ascent_contenders_feed_the_model_the_same_images(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list = []
    _, contenders, _ = build(GA, monkeypatch, seen)
    batches, used = {}, {}
    for c in contenders:
        used[c.name], shapes = fed(c, seen)
        assert {shape[1:] for shape in shapes} == {(3, S, S)}  # the model sees the same resolution
        batches[c.name] = [shape[0] for shape in shapes]
    assert not used["vizbench"] & used["bare"] and not used["lucent"] & (used["vizbench"] | used["bare"])  # own copies
    steps, units = GA["params"]["steps"], GA["units"]
    # vizbench: a one-image shape probe (also the grey reference), `steps` batched forwards, one to read the start
    # images' objective and one to read the final activations
    assert batches["vizbench"] == [1] + [units] * (steps + 2)
    assert batches["bare"] == [units] * steps
    assert batches["lucent"] == [1] * (units * steps)  # one unit per call, batch 1


def test_lucent_optimizes_the_same_objective_through_its_own_preprocessing() -> None:
    from lucent.optvis import objectives, render, transform
    from experiments.zoo.planted import build_planted
    from methods.gradient_ascent.objectives import from_target

    spec = build_planted()  # normalizes with mean = std = 0.5, not lucent's ImageNet statistics
    x = torch.rand(1, 3, S, S)

    def lucent_value(model: torch.nn.Module) -> torch.Tensor:
        hook = render.hook_model(model, lambda: x)
        model(transform.normalize()(x))
        return -objectives.channel("conv2", 1)(hook)

    ours = from_target(Target("conv2", (1,)))(truncate(spec.model, "conv2", Normalize(spec.mean, spec.std))(x), torch.tensor([1]))
    assert torch.allclose(lucent_value(ga_adapter.lucent_model(copy.deepcopy(spec.model), spec.mean, spec.std)), ours.sum())
    assert not torch.allclose(lucent_value(copy.deepcopy(spec.model)), ours.sum())  # without the fix it would differ


@pytest.mark.parametrize("case", [OCC_CLASS, OCC_NEURON], ids=["class", "neuron"])
def test_occlusion_contenders_compute_the_same_maps_and_bare_the_same_forwards(case: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list = []
    s, contenders, work = build(case, monkeypatch, seen)
    vis = contenders[0].fn()
    assert contenders[0].name == "vizbench"
    for c in contenders:
        if c.name == "captum_occlusion":
            assert torch.allclose(c.fn(), vis.maps, atol=1e-5), c.variant
    _, shapes = fed(next(c for c in contenders if c.name == "bare"), seen)
    batch = [shape[0] for shape in shapes]
    assert sum(batch) == len(s.images) + vis.perturbations and max(batch) <= case["params"]["batch_size"]
    if case["kind"] == "neuron":  # the point of the neuron case: far fewer windows than the full map
        assert vis.perturbations < work["perturbations"]


def test_cases_parse_scale_and_refuse_bad_keys() -> None:
    (case,) = speed.parse_cases([GA])
    assert case.scaled(0.5, "steps", 512).params["steps"] == 1 and case.scaled(3, "steps", 512).params["steps"] == 6
    (occ,) = speed.parse_cases([OCC_CLASS])
    assert occ.scaled(0.1, "images", 1).images == 1 and occ.target() == Target("", (0, 3), "class")
    cfg = speed_cfg(Path("."), [GA, OCC_CLASS], "speed.scale=3")
    assert [c.params.get("steps") for c in speed.scaled_cases(cfg.speed)] == [6, None]
    assert [c.images for c in speed.scaled_cases(cfg.speed)] == [4, 6]
    with pytest.raises(ValueError, match="unknown speed case key in ga 'steps'; valid: name, method"):
        speed.parse_cases([{**GA, "steps": 3}])
    with pytest.raises(ValueError, match="Could not find 'method/deepdream'"):
        speed.case_config(speed.parse_cases([{**GA, "method": "deepdream"}])[0])
    with pytest.raises(ValueError, match="Could not find 'model/alexnet9'"):
        speed.case_config(speed.parse_cases([{**GA, "model": "alexnet9"}])[0])
    with pytest.raises(ValueError, match="no speed contenders.*raw_weights.*valid: gradient_ascent, occlusion, top_patches"):
        speed.case_config(speed.parse_cases([{**GA, "method": "raw_weights"}])[0])


def test_only_names_existing_cases(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="speed.only"):
        run(speed_cfg(tmp_path, [GA], "speed.only=[nope]"))


def test_default_speed_config_is_one_run_with_the_issue_cases() -> None:
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=speed"], return_hydra_config=True)
    assert cfg.hydra.mode.name == "RUN" and cfg.experiment == "speed"
    cases = {c.name: c for c in speed.parse_cases(cfg.speed.cases)}
    ga = cases["ga_googlenet"]
    assert (ga.model, ga.layer, len(ga.target().units), ga.input_size, ga.params["steps"], ga.params["transforms"]) == \
        ("googlenet", "inception4a", 8, 128, 64, "standard")
    assert {c.kind for c in cases.values() if c.method == "occlusion" and c.model == "resnet18"} == {"class", "neuron"}
    timed = {m.name for m in registry().values() if m.contenders is not None}
    assert {(speed.case_config(c)[1].name, c.model) for c in cases.values()} >= {(m, "shapes_cnn") for m in timed}


def test_timing_is_interleaved_budgeted_and_survives_a_failing_contender(monkeypatch: pytest.MonkeyPatch) -> None:
    cost = {"fast": 1.0, "slow": 100.0}
    calls: list[tuple[str, bool]] = []

    def fake_measure(fn, device, repeats, warmup, memory):  # type: ignore[no-untyped-def]
        name = fn()  # raises for the broken contender
        calls.append((name, memory))
        return speed.Timing([cost[name]], None, 5.0 if memory else None, 1.0 if memory else None, "cpu")

    def broken() -> str:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(speed, "measure", fake_measure)
    contenders = [speed.Contender("vizbench", lambda: "fast"), speed.Contender("lucent", lambda: "slow"),
                  speed.Contender("bare", broken)]
    out = speed.time_interleaved(contenders, torch.device("cpu"), repeats=3, warmup=1, budget_s=60)
    assert out[2] == "failed: RuntimeError: boom"
    assert out[0].times == [1.0] * 3 and out[0].warmup_s == 1.0 and out[0].peak_mem_mb == 5.0
    assert out[1].times == [100.0] and out[1].peak_mem_mb == 5.0  # one repeat fits no budget; still measured
    # warm-ups first, then round-robin; memory sampled in each contender's last repeat only
    assert calls == [("fast", False), ("slow", False), ("fast", False), ("slow", True), ("fast", False), ("fast", True)]
