"""experiments.plots on constructed tables and fake run folders: files written, and the plotted data itself."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from experiments import plots

SCHEMA = dict(experiment="default", weights="null", data="shapes", device="cpu", status="ok")


def row(run: str, method: str, layer: str, unit, metric: str, value: float, seed: int = 0, model: str = "m",
        preset: str = "default", **extra) -> dict:
    """One long-format row of a run."""
    return dict(run_id=run, run_dir=f"/nowhere/{run}", method=method, preset=preset, model=model, layer=layer,
                unit=unit, seed=seed, metric=metric, value=value, **{**SCHEMA, **extra})


def quality_table() -> pd.DataFrame:
    """Two seeds of method a over layers c1, c2, c3 (written in model order), method b on c2 and c3 only, and
    a metric `once` measured at c1 only; gt = depth + seed / 10 + unit / 100."""
    rows = []
    for seed in (0, 1):
        for d, layer in enumerate(("c1", "c2", "c3")):
            rows.append(row(f"a{seed}", "a", layer, None, "time_s", 1.0, seed))
            rows += [row(f"a{seed}", "a", layer, u, "gt", d + seed / 10 + u / 100, seed) for u in (0, 1, 2)]
        rows.append(row(f"a{seed}", "a", "c1", 0, "once", 0.5, seed))
        rows += [row(f"b{seed}", "b", layer, u, "gt", -d, seed) for d, layer in ((1, "c2"), (2, "c3")) for u in (0, 1)]
    rows.append(row("b0", "b", "c3", 5, "gt", 99.0, status="degenerate: flat"))
    return pd.DataFrame(rows).assign(unit=lambda d: d["unit"].astype("Int64"))


def cascade_table(shuffle: bool = True) -> pd.DataFrame:
    """cascade_ssim / cascade_spearman rows of two methods, randomized from fc (depth 1) down to c1 (depth 3)."""
    names = {1: "fc", 2: "c2", 3: "c1"}
    rows = [row("r0", method, "c2", u, metric, base - 0.2 * d + 0.01 * u, randomized_from=names[d], randomized_depth=d)
            for method, base in (("occlusion", 0.9), ("top_patches", 0.5)) for metric in ("cascade_ssim", "cascade_spearman")
            for d in (1, 2, 3) for u in (0, 1, 2)]
    df = pd.DataFrame(rows)
    return df.sample(frac=1.0, random_state=3).reset_index(drop=True) if shuffle else df


def speed_table() -> pd.DataFrame:
    """A speed run: a gradient-ascent case (units) and an occlusion case (perturbations) with a peer variant."""
    rows = []
    for case, kind, contenders in (("ga", "units", {("vizbench", ""): 10.0, ("bare", ""): 20.0, ("lucent", ""): 2.0}),
                                   ("occ", "perturbations", {("vizbench", ""): 400.0, ("bare", ""): 500.0,
                                                             ("captum_occlusion", "ppe=1"): 100.0})):
        for (c, v), per_s in contenders.items():
            rows += [dict(case=case, contender=c, variant=v or None, metric="time_s", value=1 / per_s, status="ok"),
                     dict(case=case, contender=c, variant=v or None, metric=f"{kind}_per_s", value=per_s, status="ok")]
        rows += [dict(case=case, contender="vizbench", metric="vs_bare", value=0.5 if case == "ga" else 1.25, status="ok"),
                 dict(case=case, contender="vizbench", metric="vs_peer", value=5.0 if case == "ga" else 0.25, status="ok")]
    return pd.DataFrame(rows).assign(method="x", preset="default", model="m", layer="l", unit=pd.NA, run_id="s0")


def written(paths, out) -> list[str]:
    """The stems of the PNGs returned, each checked to exist with its SVG beside it."""
    for p in paths:
        assert p.parent == out and p.suffix == ".png" and p.stat().st_size > 0
        assert p.with_suffix(".svg").exists() and p.with_suffix(".svg").read_text().lstrip().startswith("<?xml")
    return [p.stem for p in paths]


def test_depth_order_merges_each_runs_order():
    df = pd.DataFrame([row("r0", "a", "c2", 0, "g", 0), row("r0", "a", "c3", 0, "g", 0),
                       row("r1", "a", "c1", 0, "g", 0), row("r1", "a", "c2", 0, "g", 0),
                       row("r2", "a", "c3", 0, "g", 0), row("r2", "a", "c4", 0, "g", 0),
                       row("r3", "a", "", None, "time_s", 1.0, model="n")]).assign(layer=lambda d: d["layer"].replace("", np.nan))
    assert plots.depth_order(df) == {"m": ["c1", "c2", "c3", "c4"], "n": ["output"]}


def test_depth_series_means_cis_and_order():
    s = plots.depth_series(quality_table())
    assert set(s["metric"]) == {"gt"}  # `once` has a single layer, time_s is run level
    a = s[s["line"] == "a"]
    assert a["layer"].tolist() == ["c1", "c2", "c3"] and a["depth"].tolist() == [0, 1, 2]
    values = np.array([1 + seed / 10 + u / 100 for seed in (0, 1) for u in (0, 1, 2)])  # c2, both seeds
    c2 = a[a["layer"] == "c2"].iloc[0]
    half = stats.t.ppf(0.975, 5) * values.std(ddof=1) / math.sqrt(6)
    assert c2["n"] == 6 and c2["mean"] == pytest.approx(values.mean()) and c2["ci"] == pytest.approx(half)
    b = s[s["line"] == "b"]
    assert b["depth"].tolist() == [1, 2] and b["mean"].tolist() == [-1, -2]  # the degenerate row left out
    fig = plots.depth_figure(s, "m")
    (ax,) = fig.axes
    lines = {l.get_label(): l for l in ax.lines}
    assert lines["a"].get_xdata().tolist() == [0, 1, 2] and lines["b"].get_ydata().tolist() == [-1, -2]


def test_line_labels_name_presets_and_swept_overrides():
    df = quality_table()
    df.loc[df["run_id"] == "a1", "preset"] = "fast"
    assert set(plots.line_labels(df)) == {"a/default", "a/fast", "b"}
    df = quality_table().assign(lr=lambda d: np.where(d["run_id"] == "a1", 0.1, 0.05))
    assert set(plots.line_labels(df)) == {"a lr=0.05", "a lr=0.1", "b lr=0.05"}


def test_metric_by_depth_writes_png_and_svg(tmp_path):
    assert written(plots.metric_by_depth(quality_table(), tmp_path), tmp_path) == ["metric_by_depth__m"]
    assert plots.metric_by_depth(speed_table(), tmp_path / "none") == []
    assert not (tmp_path / "none").exists()


def test_cascade_series_orders_by_depth_even_when_shuffled():
    s = plots.cascade_series(cascade_table())
    assert s["metric"].drop_duplicates().tolist() == ["cascade_ssim", "cascade_spearman"]  # CASCADE_METRICS order
    for _, line in s.groupby(["metric", "line"]):
        assert line["randomized_depth"].tolist() == [1, 2, 3]
        assert line["randomized_from"].tolist() == ["fc", "c2", "c1"]
    occ = s[(s["line"] == "occlusion") & (s["metric"] == "cascade_ssim")]
    assert occ["mean"].tolist() == pytest.approx([0.71, 0.51, 0.31]) and occ["n"].tolist() == [3, 3, 3]


def test_cascade_figure_plots_lines_in_depth_order():
    fig = plots.cascade_figure(plots.cascade_series(cascade_table()), "m")
    assert len(fig.axes) == 2
    for ax in fig.axes:
        lines = {l.get_label(): l for l in ax.lines if not l.get_label().startswith("_")}
        assert set(lines) == {"occlusion", "top_patches"}
        assert lines["occlusion"].get_xdata().tolist() == [1, 2, 3]
        assert np.allclose(lines["occlusion"].get_ydata(), [0.71, 0.51, 0.31])
        assert np.allclose(lines["top_patches"].get_ydata(), [0.31, 0.11, -0.09])
        assert [t.get_text() for t in ax.get_xticklabels()] == ["fc", "c2", "c1"]
        zero = [l for l in ax.lines if l.get_linestyle() == "--"]
        assert len(zero) == 1 and list(zero[0].get_ydata()) == [0, 0]


def test_randomization_curve_writes_png_and_svg(tmp_path):
    df = pd.concat([cascade_table(), quality_table()], ignore_index=True)
    assert written(plots.randomization_curve(df, tmp_path), tmp_path) == ["randomization_curve__m"]
    assert plots.randomization_curve(quality_table(), tmp_path) == []  # no randomized_* columns
    no_cascade = quality_table().assign(randomized_from=None, randomized_depth=None)
    assert plots.randomization_curve(no_cascade, tmp_path) == []


def ascent_runs(tmp_path) -> pd.DataFrame:
    """Two gradient_ascent run folders: one with a trace on two layers, one written without a trace."""
    rows = []
    for run, trace in (("0", True), ("1", False)):
        folder = tmp_path / "sweep" / run
        (folder / "arrays").mkdir(parents=True)
        for layer, units in (("c1", (0, 3)), ("c2", (1,))):
            t = torch.arange(5.0)[:, None] * torch.tensor([float(u + 1) for u in units])
            arrays = {"units": units, "layer": layer, "steps": 5, **({"trace": t} if trace else {})}
            torch.save(arrays, folder / "arrays" / f"gradient_ascent__{layer}.pt")
            rows += [dict(row(f"sweep/{run}", "gradient_ascent", layer, u, "activation", 1.0), run_dir=str(folder))
                     for u in units]
    rows.append(dict(row("sweep/2", "gradient_ascent", "c1", 0, "activation", 1.0), run_dir=str(tmp_path / "gone")))
    return pd.DataFrame(rows)


def test_ascent_series_reads_traces_and_skips_runs_without(tmp_path):
    s = plots.ascent_series(ascent_runs(tmp_path))
    assert set(s["run"]) == {"sweep/0"} and s["layer"].drop_duplicates().tolist() == ["c1", "c2"]
    u3 = s[(s["layer"] == "c1") & (s["unit"] == 3)]
    assert u3["step"].tolist() == [1, 2, 3, 4, 5] and u3["value"].tolist() == [0, 4, 8, 12, 16]
    fig = plots.ascent_figure(s, "sweep/0")
    lines = {l.get_label(): l for l in fig.axes[0].lines if not l.get_label().startswith("_")}
    assert set(lines) == {"0", "3"} and lines["3"].get_ydata().tolist() == [0, 4, 8, 12, 16]


def test_ascent_curve_writes_png_and_svg(tmp_path):
    paths = plots.ascent_curve(ascent_runs(tmp_path), tmp_path / "out")
    assert written(paths, tmp_path / "out") == ["ascent_curve__m__default__sweep-0"]
    assert plots.ascent_curve(quality_table(), tmp_path / "none") == []  # no gradient_ascent runs


def test_ascent_curve_draws_one_figure_per_preset_not_per_seed(tmp_path):
    import shutil
    one = ascent_runs(tmp_path / "a")
    shutil.copytree(tmp_path / "a" / "sweep" / "0", tmp_path / "a" / "sweep" / "10")  # a second seed's run folder
    other = one[one["run_id"] == "sweep/0"].assign(run_id="sweep/10", seed=1, run_dir=str(tmp_path / "a/sweep/10"))
    paths = plots.ascent_curve(pd.concat([other, one], ignore_index=True), tmp_path / "out")
    assert written(paths, tmp_path / "out") == ["ascent_curve__m__default__sweep-0"]  # the first run, naturally
    quick = other.assign(run_id="sweep/11", preset="quick")
    assert len(plots.ascent_curve(pd.concat([one, quick], ignore_index=True), tmp_path / "two")) == 2


def test_ascent_curve_of_a_real_trace(tmp_path):
    from methods.base import Target
    from methods.gradient_ascent import visualize
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    v = visualize(net, Target("1", (0, 2)), input_size=12, steps=4, param="pixel", transforms="none")
    folder = tmp_path / "run"
    (folder / "arrays").mkdir(parents=True)
    torch.save({"units": v.units, "trace": v.trace}, folder / "arrays" / "gradient_ascent__1.pt")
    df = pd.DataFrame([dict(row("run", "gradient_ascent", "1", u, "activation", float(a)), run_dir=str(folder))
                       for u, a in zip(v.units, v.activation)])
    s = plots.ascent_series(df)
    assert s[s["step"] == 4].sort_values("unit")["value"].tolist() == pytest.approx(v.activation.tolist())
    assert len(plots.ascent_curve(df, tmp_path)) == 1


def test_speed_series_and_bars(tmp_path):
    times, ratios = plots.speed_series(speed_table())
    t = times.set_index(["case", "contender"])
    assert t.loc[("ga", "lucent"), "s_per_work"] == pytest.approx(0.5) and t.loc[("ga", "lucent"), "work"] == "unit"
    assert t.loc[("occ", "captum_occlusion [ppe=1]"), "s_per_work"] == pytest.approx(0.01)
    assert t.loc[("occ", "vizbench"), "work"] == "perturbation"
    assert ratios.set_index(["case", "metric"])["value"].to_dict() == {
        ("ga", "vs_bare"): 0.5, ("ga", "vs_peer"): 5.0, ("occ", "vs_bare"): 1.25, ("occ", "vs_peer"): 0.25}
    fig = plots.speed_figure(times, ratios)
    top, bottom = fig.axes
    assert top.get_yscale() == "log" and len(top.patches) == 6
    assert sorted(p.get_height() for p in bottom.patches) == [0.25, 0.5, 1.25, 5.0]
    assert any(l.get_linestyle() == "--" and list(l.get_ydata()) == [1, 1] for l in bottom.lines)
    assert written(plots.speed_bars(speed_table(), tmp_path), tmp_path) == ["speed_bars"]
    assert plots.speed_bars(quality_table(), tmp_path / "none") == []


def test_sweep_plots_calls_every_plot_that_applies(tmp_path):
    df = pd.concat([quality_table(), cascade_table(), speed_table()], ignore_index=True)
    assert written(plots.sweep_plots(df, tmp_path), tmp_path) == [
        "metric_by_depth__m", "randomization_curve__m", "speed_bars"]
    assert plots.sweep_plots(pd.DataFrame(columns=["method", "metric", "value", "status"]), tmp_path / "e") == []


def test_each_target_layer_names_its_own_cascade_steps():
    """Depth 1 is the target's own layer, so it names another layer for each target (c2's cascade: c2, c1)."""
    rows = [row("r0", "occlusion", layer, 0, "cascade_ssim", 0.5, randomized_from=step, randomized_depth=d)
            for layer, steps in (("c1", ["c1"]), ("c2", ["c2", "c1"])) for d, step in enumerate(steps, start=1)]
    fig = plots.cascade_figure(plots.cascade_series(pd.DataFrame(rows)), "m")
    assert [[t.get_text() for t in ax.get_xticklabels()] for ax in fig.axes] == [["c1"], ["c2", "c1"]]
