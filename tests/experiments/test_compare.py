"""experiments.compare and experiments.callbacks on synthetic run folders with known values."""
from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from scipy import stats

from experiments.callbacks import AggregateSweep
from experiments.compare import (compare_to_baseline, degenerates, failures, format_notes, format_table,
                                 incomplete_runs, is_flagged, load_results, main, summarize, welch)

sys.path.insert(0, str(Path(__file__).parent))
from fake_runs import FAILED_STATUS, LAYER, METHODS, MODELS, _row, _write_run, gt_values, make_sweep  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sweep of 10 run folders (8 ok, 1 failed, 1 without DONE)."""
    return make_sweep(tmp_path_factory.mktemp("s") / "sweep", pictures=False)


@pytest.fixture(scope="module")
def df(sweep: Path) -> pd.DataFrame:
    """The sweep's rows."""
    return load_results([sweep])


def t_half_width(values: np.ndarray) -> float:
    """95% t-interval half-width, via scipy's own interval."""
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    return (hi - lo) / 2


def test_load_results_reads_every_run(df: pd.DataFrame, sweep: Path) -> None:
    assert df["run_dir"].nunique() == 10
    assert len(df) == 8 * 4 + 1 + 2
    assert set(df["weights"]) == {"null"}  # not read as missing
    assert df.loc[df["method"] == "raw_weights", "lr"].isna().all()  # column absent in those runs
    assert (df.loc[df["method"] == "gradient_ascent", "lr"] == 0.05).all()
    assert df["done"].sum() == len(df) - 2


def test_load_results_without_metrics_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"no metrics.csv found under {tmp_path}"):
        load_results([tmp_path])


def test_incomplete_runs_are_those_without_done(sweep: Path) -> None:
    assert incomplete_runs([sweep]) == [sweep / "9"]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("method", METHODS)
def test_summary_mean_ci_n_match_numpy(df: pd.DataFrame, model: str, method: str) -> None:
    summary = summarize(df, ["method", "preset"], ["model"], ["gt_corr"])
    values = gt_values(model, method)
    cell = (method, "default", "gt_corr")
    assert summary["n"].loc[cell, model] == len(values) == 6
    assert summary["mean"].loc[cell, model] == pytest.approx(values.mean())
    assert summary["ci"].loc[cell, model] == pytest.approx(t_half_width(values))


def test_run_level_metric_aggregates_over_seeds(df: pd.DataFrame) -> None:
    summary = summarize(df, ["method"], ["model"], ["time_s"])
    assert summary["mean"].loc[("raw_weights", "time_s"), "alexnet"] == pytest.approx(1.5)
    assert summary["ci"].loc[("raw_weights", "time_s"), "alexnet"] == pytest.approx(t_half_width(np.array([1., 2.])))


def test_failed_rows_are_listed_not_aggregated(df: pd.DataFrame) -> None:
    summary = summarize(df, ["method"], ["model"])
    assert "top_patches" not in summary.index.get_level_values("method")
    failed = failures(df)
    assert failed["status"].tolist() == [FAILED_STATUS]
    assert failed["method"].tolist() == ["top_patches"]


def test_metric_can_be_a_column_level(df: pd.DataFrame) -> None:
    summary = summarize(df, ["method"], ["model", "metric"], "gt_corr,time_s")
    assert summary.columns.names == [None, "model", "metric"]
    assert summary["n"].loc["raw_weights", ("resnet18", "time_s")] == 2


def test_unknown_column_and_metric_are_named(df: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"unknown --rows column 'foo'; valid: .*model"):
        summarize(df, ["foo"], ["model"])
    with pytest.raises(ValueError, match=r"unknown --metric 'nope'; valid: gt_corr, time_s \(the metrics with ok rows\)"):
        summarize(df, ["method"], ["model"], ["nope"])


def test_markdown_shows_mean_ci_and_n(df: pd.DataFrame) -> None:
    text = format_table(summarize(df, ["method", "layer"], ["model"], ["gt_corr"]), "markdown")
    values = gt_values("alexnet", "raw_weights")
    assert f"{values.mean():.4g} ± {t_half_width(values):.4g} (n=6)" in text
    assert "model=alexnet" in text.splitlines()[0]


def test_latex_uses_booktabs_and_escapes(df: pd.DataFrame) -> None:
    text = format_table(summarize(df, ["method"], ["model"], ["gt_corr"]), "latex")
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert rule in text
    assert r"gradient\_ascent" in text and r"$\pm$" in text and r"model=alexnet" in text


def test_csv_is_numeric_long(df: pd.DataFrame) -> None:
    table = pd.read_csv(io.StringIO(format_table(summarize(df, ["method"], ["model"], ["gt_corr"]), "csv")))
    row = table[(table["method"] == "gradient_ascent") & (table["model"] == "resnet18")]
    assert row["mean"].item() == pytest.approx(gt_values("resnet18", "gradient_ascent").mean())
    assert row["n"].item() == 6


def test_baseline_marks_known_difference_only(df: pd.DataFrame, tmp_path: Path) -> None:
    base = load_results([make_sweep(tmp_path / "base", shift={("resnet18", "raw_weights"): 1.0}, pictures=False)])
    result = compare_to_baseline(df, base, ["method"], ["model"], ["gt_corr"])
    shifted, same = ("raw_weights", "gt_corr"), ("gradient_ascent", "gt_corr")
    a, b = gt_values("resnet18", "raw_weights"), gt_values("resnet18", "raw_weights", shift=1.0)
    lo, hi = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert result["diff"].loc[shifted, "resnet18"] == pytest.approx(-1.0)
    assert result["ci"].loc[shifted, "resnet18"] == pytest.approx((hi - lo) / 2)
    assert result["sig"].loc[shifted, "resnet18"]
    assert result["diff"].loc[same, "resnet18"] == pytest.approx(0.0)
    assert not result["sig"].loc[same, "resnet18"]
    lines = format_table(result, "markdown").splitlines()
    assert "*" in next(line for line in lines if "raw_weights" in line)
    assert "*" not in next(line for line in lines if "gradient_ascent" in line)


def test_welch_without_spread_is_exact() -> None:
    zero = np.zeros(2)
    diff, half = welch(np.array([1.0, 2.0]), zero, 3, np.array([1.0, 1.0]), zero, 3)
    assert diff.tolist() == [0.0, 1.0] and half.tolist() == [0.0, 0.0]
    _, half = welch(1.0, np.nan, 1, 1.0, 0.1, 3)
    assert np.isnan(half)


def test_cli_prints_table_notes_and_saves_parquet(sweep: Path, tmp_path: Path, capsys) -> None:
    main([str(sweep), "--rows", "method", "--metric", "gt_corr", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| gradient_ascent" in out and "(n=6)" in out
    assert "Failed rows (1)" in out and FAILED_STATUS in out
    assert "Incomplete runs (1" in out and str(sweep / "9") in out
    saved = pd.read_parquet(tmp_path / "results.parquet")
    assert len(saved) == 35 and "run_dir" in saved


def test_cli_errors_are_one_line(sweep: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"^error: unknown --rows column 'foo'; valid: .*method"):
        main([str(sweep), "--rows", "foo", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"^error: no metrics.csv found under"):
        main([str(tmp_path)])


def test_callback_writes_sweep_tables(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path / "sweep", pictures=False)
    with pytest.raises(SystemExit) as stop:  # the sweep has a failed and an unfinished run: tables, then exit 1
        AggregateSweep(metrics=["gt_corr"]).on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    assert stop.value.code == 1
    assert len(pd.read_parquet(sweep / "results.parquet")) == 35
    summary = (sweep / "summary.md").read_text()
    values = gt_values("alexnet", "gradient_ascent")
    assert f"{values.mean():.4g} ± {t_half_width(values):.4g} (n=6)" in summary
    assert FAILED_STATUS in summary and "Incomplete runs (1" in summary
    assert (sweep / "report.html").exists()


APP = """
import hydra, pandas as pd
from hydra.core.hydra_config import HydraConfig
from pathlib import Path

@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg):
    out = Path(HydraConfig.get().runtime.output_dir)
    row = dict(run_id=out.name, method="m", preset="default", model=cfg.model, layer="", unit="", seed=0,
               metric="gt_corr", value=cfg.x, status="ok")
    pd.DataFrame([row]).to_csv(out / "metrics.csv", index=False)
    (out / "DONE").touch()

main()
"""


def test_callback_runs_at_the_end_of_a_real_sweep(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    (conf / "hydra" / "callbacks").mkdir(parents=True)
    (conf / "hydra" / "callbacks" / "aggregate.yaml").write_text(
        (REPO / "conf" / "hydra" / "callbacks" / "aggregate.yaml").read_text())
    (conf / "config.yaml").write_text(textwrap.dedent("""
        defaults:
          - _self_
          - override hydra/callbacks: aggregate
        model: a
        x: 0.0
        """))
    (tmp_path / "app.py").write_text(APP)
    sweep = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, "app.py", "-m", "model=a,b", "x=1.0,3.0", f"hydra.sweep.dir={sweep}"],
                          cwd=tmp_path, env={"PYTHONPATH": str(REPO), "PATH": ""}, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| gt_corr ↑ | m        | default  | 2 ± 12.71 (n=2) | 2 ± 12.71 (n=2) |" in (sweep / "summary.md").read_text()
    assert len(pd.read_parquet(sweep / "results.parquet")) == 4


def test_nested_paths_read_each_run_once(sweep: Path, df: pd.DataFrame) -> None:
    assert len(load_results([sweep, sweep / "3"])) == len(df)


def test_single_value_cell_has_no_interval(df: pd.DataFrame) -> None:
    one = df[(df["run_dir"] == df["run_dir"].iloc[0]) & (df["metric"] == "time_s")]
    assert format_table(summarize(one, ["method"], []), "markdown").splitlines()[-1].endswith("| 1 (n=1) |")


def test_baseline_missing_metric_or_cell_is_shown_as_such(df: pd.DataFrame) -> None:
    base = df[(df["metric"] == "gt_corr") & (df["model"] == "alexnet")]
    text = format_table(compare_to_baseline(df, base, ["method"], ["model"], ["gt_corr", "time_s"]), "markdown")
    row = next(line for line in text.splitlines() if "raw_weights" in line and "time_s" in line)
    assert row.count("no baseline") == 2


def test_metrics_carry_their_direction_and_each_rows_best_is_bold(df: pd.DataFrame) -> None:
    lines = format_table(summarize(df, ["method"], ["model"], ["gt_corr", "time_s"]), "markdown").splitlines()
    assert lines[0].split("|")[3].strip() == "model=alexnet"
    ga = next(line for line in lines if "gradient_ascent" in line and "gt_corr" in line).split("|")
    raw = next(line for line in lines if "raw_weights" in line and "gt_corr" in line).split("|")
    assert ga[2].strip() == "gt_corr ↑"
    assert ga[3].strip().startswith("**") and not ga[4].strip().startswith("**")  # alexnet 0.9 > resnet18 0.7
    assert raw[4].strip().startswith("**") and not raw[3].strip().startswith("**")  # resnet18 0.5 > alexnet 0.2
    timing = next(line for line in lines if "time_s" in line)
    assert "**" not in timing and "↑" not in timing and "↓" not in timing  # not a quality metric: no direction
    html = format_table(summarize(df, ["method"], ["model"], ["gt_corr"]), "html")
    assert html.count("<b>") == 2 and "gt_corr ↑" in html
    latex = format_table(summarize(df, ["method"], ["model"], ["gt_corr"]), "latex")
    assert r"gt\_corr $\uparrow$" in latex and latex.count(r"\textbf{") == 2


DEAD = "degenerate: dead unit (activation range 0 over 512 images)"


def test_degenerate_rows_are_counted_per_cell_not_averaged(tmp_path: Path) -> None:
    def row(metric: str, value: float, unit: int, status: str = "ok") -> dict:
        return _row("d/0", "alexnet", "occlusion", 0, metric, value, LAYER, unit, status)

    rows = [row("pointing_game", 0.5, 0), row("pointing_game", 0.7, 1), row("pointing_game", np.nan, 2, DEAD)]
    rows += [row("mask_energy", np.nan, u, DEAD) for u in range(4)]
    rows.append(row("sparseness", np.nan, 0))  # an ok NaN, as tables written before labelling have them
    _write_run(tmp_path / "d" / "0", rows, done=True, pictures=False)
    df = load_results([tmp_path / "d"])
    assert df.loc[df["metric"] == "sparseness", "status"].item() == "degenerate: sparseness is not a number"
    summary = summarize(df, ["method"], ["model"])
    assert summary["n"].loc[("occlusion", "pointing_game"), "alexnet"] == 2
    assert summary["degenerate"].loc[("occlusion", "pointing_game"), "alexnet"] == 1
    text = format_table(summary, "markdown")
    half = t_half_width(np.array([0.5, 0.7]))
    assert f"0.6 ± {half:.4g} (n=2, 1 degenerate)" in text
    assert "— (0 ok, 4 degenerate)" in text and "— (0 ok, 1 degenerate)" in text
    assert failures(df).empty and len(degenerates(df)) == 5  # one per unit and status: units 0-3 DEAD, 1 not a number
    notes = format_notes(df, [])
    assert "Failed rows" not in notes and "Degenerate rows (5)" in notes and DEAD in notes
    assert format_table(summarize(df, ["method"], ["model"], ["mask_energy"]), "csv").count("\n") == 2
    assert "(n=2/2, 1 degenerate)" in format_table(compare_to_baseline(df, df, ["method"], ["model"]), "markdown")


def _runs(root: Path, runs: dict[int, list[dict]]) -> pd.DataFrame:
    """Write one run folder per seed under `root` (rows given per seed) and load them."""
    for seed, rows in runs.items():
        _write_run(root / str(seed), rows, done=True, pictures=False)
    return load_results([root])


def _unit_rows(seed: int, values: list[float], method: str = "raw_weights", metric: str = "gt_corr",
               status: str = "ok") -> list[dict]:
    """One run's per-unit rows of `metric`, unit i holding values[i]."""
    return [_row(f"r/{seed}", "alexnet", method, seed, metric, v, LAYER, u, status) for u, v in enumerate(values)]


def test_seeds_with_identical_results_are_one_sample(tmp_path: Path) -> None:
    same = [0.2, 0.5, 0.9]
    df = _runs(tmp_path / "r", {s: _unit_rows(s, same) + _unit_rows(s, [0.1 * s + v for v in same], "occlusion")
                                for s in (0, 1)})
    summary = summarize(df, ["method"], ["model"])
    raw, occ = ("raw_weights", "gt_corr"), ("occlusion", "gt_corr")
    assert summary["n"].loc[raw, "alexnet"] == 3
    assert summary["ci"].loc[raw, "alexnet"] == pytest.approx(t_half_width(np.array(same)))
    assert summary["n"].loc[occ, "alexnet"] == 6  # seeds differ: every row is a sample, as before
    text = format_table(summary, "markdown")
    assert f"{np.mean(same):.4g} ± {t_half_width(np.array(same)):.4g} (n=3, 2 seeds identical)" in text
    assert "(n=6)" in text and "(n=6," not in text
    by_seed = summarize(df, ["method"], ["seed"])  # seed is a column level: nothing is merged across it
    assert by_seed["n"].loc[raw].tolist() == [3, 3]


def test_seeds_identical_to_float_tolerance_only(tmp_path: Path) -> None:
    df = _runs(tmp_path / "r", {0: _unit_rows(0, [1.0, 0.5, 0.25]), 1: _unit_rows(1, [1.0 + 1e-13, 0.5 + 1e-6, 0.25]),
                                2: _unit_rows(2, [1.0, 0.5, 0.3])})
    summary = summarize(df, ["method"], ["model"])
    cell = ("raw_weights", "gt_corr")
    distinct = np.array([1.0, 0.5, 0.5 + 1e-6, 0.25, 0.3])
    assert summary["n"].loc[cell, "alexnet"] == 5 and summary["repeats"].loc[cell, "alexnet"] == 4
    assert summary["mean"].loc[cell, "alexnet"] == pytest.approx(distinct.mean())
    assert "(n=5, 4 repeats across seeds)" in format_table(summary, "markdown")


def test_a_runs_own_equal_rows_are_not_merged(tmp_path: Path) -> None:
    rows = {s: [_row(f"r/{s}", "alexnet", "occlusion", s, "pointing_game", 1.0, LAYER, 0)] * 2 for s in (0, 1)}
    summary = summarize(_runs(tmp_path / "r", rows), ["method"], ["model"])
    assert summary["n"].loc[("occlusion", "pointing_game"), "alexnet"] == 2  # two per run, each run's pair repeated


def test_baseline_counts_distinct_results(tmp_path: Path) -> None:
    same = [0.2, 0.5, 0.9]
    df = _runs(tmp_path / "a", {s: _unit_rows(s, same) for s in (0, 1)})
    base = _runs(tmp_path / "b", {s: _unit_rows(s, [v - 0.1 for v in same]) for s in (0, 1)})
    result = compare_to_baseline(df, base, ["method"], ["model"])
    assert result["n"].loc[("raw_weights", "gt_corr"), "alexnet"] == 3
    assert result["n_base"].loc[("raw_weights", "gt_corr"), "alexnet"] == 3
    assert "(n=3/3, 2 seeds identical)" in format_table(result, "markdown")


def test_interval_below_the_printed_precision_is_zero(tmp_path: Path) -> None:
    df = _runs(tmp_path / "r", {0: _unit_rows(0, [1.0, 1.0 - 2e-16, 1.0 + 4e-16, 1.0]),
                                1: _unit_rows(1, [0.123456, 0.123466, 0.5, 0.6], "occlusion")})
    summary = summarize(df, ["method"], ["model"])
    text = format_table(summary, "markdown")
    assert "| 1 ± 0 (n=4)" in text and "e-1" not in text
    occ = summary["ci"].loc[("occlusion", "gt_corr"), "alexnet"]
    assert f"± {occ:.2g} (n=4)" in format_table(summary, "markdown", digits=2)
    occ_mean = np.mean([0.123456, 0.123466, 0.5, 0.6])
    assert f"{occ_mean:.2g} $\\pm$ {occ:.2g} (n=4)" in format_table(summary, "latex", digits=2)
    close = summarize(df[df["method"] == "occlusion"].assign(value=lambda d: 5 + d["value"] * 1e-6),
                      ["method"], ["model"])
    assert "| 5 ± 0 (n=4)" in format_table(close, "markdown", digits=3)  # ci ~4e-7 < half of 0.01
    close_ci = close["ci"].loc[("occlusion", "gt_corr"), "alexnet"]
    assert f" ± {close_ci:.8g} (n=4)" in format_table(close, "markdown", digits=8)  # printed to 1e-7: it shows


def test_csv_keeps_full_precision_unless_digits_are_asked(tmp_path: Path) -> None:
    df = _runs(tmp_path / "r", {0: _unit_rows(0, [1 / 3, 2 / 3, 1.0, 1.0 - 1e-15]),
                                1: _unit_rows(1, [0.1, 0.2, 0.3, 0.4], "occlusion")})
    summary = summarize(df, ["method"], ["model"])
    full = pd.read_csv(io.StringIO(format_table(summary, "csv"))).set_index("method")
    assert full.loc["raw_weights", "mean"] == pytest.approx((1 / 3 + 2 / 3 + 2 - 1e-15) / 4, rel=1e-12)
    short = pd.read_csv(io.StringIO(format_table(summary, "csv", digits=3))).set_index("method")
    assert short.loc["raw_weights", "mean"] == 0.75
    ci = t_half_width(np.array([0.1, 0.2, 0.3, 0.4]))
    assert short.loc["occlusion", "ci"] == float(f"{ci:.3g}") != ci
    assert short.loc["occlusion", "n"] == 4


def test_cli_digits_and_best(sweep: Path, tmp_path: Path, capsys) -> None:
    main([str(sweep), "--rows", "method", "--metric", "gt_corr", "--digits", "2", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    values = gt_values("alexnet", "gradient_ascent")
    assert f"{values.mean():.2g} ± {t_half_width(values):.2g} (n=6)" in out and "**" in out  # bold is the default
    main([str(sweep), "--rows", "method", "--metric", "gt_corr", "--no-best", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "**" not in out and f"{values.mean():.4g} ± {t_half_width(values):.4g} (n=6)" in out
    with pytest.raises(SystemExit):
        main([str(sweep), "--digits", "0", "--out", str(tmp_path)])


def test_best_compares_means_as_printed(tmp_path: Path) -> None:
    df = _runs(tmp_path / "r", {0: [_row("r/0", model, "occlusion", 0, "pointing_game", v, LAYER, u)
                                    for model, values in (("alexnet", (0.51, 0.52)), ("resnet18", (0.515, 0.5152)))
                                    for u, v in enumerate(values)]})
    summary = summarize(df, ["method"], ["model"])
    assert format_table(summary, "markdown").count("**") == 2  # 0.515 < 0.5151
    assert "**" not in format_table(summary, "markdown", digits=2)  # both print as 0.52: a tie
    assert "**" not in format_table(summary, "markdown", best=False)


def _speed_rows(seed: int, times: tuple[float, float], units: float = 10.0, method: str = "top_patches") -> list[dict]:
    """One run's timing rows for two layers: `units` units per layer done in times[i] seconds, memory 100 and 300."""
    rows = []
    for layer, t, mem in zip(("conv1", "conv2"), times, (100.0, 300.0)):
        rows += [_row(f"r/{seed}", "alexnet", method, seed, m, v, layer)
                 for m, v in (("time_s", t), ("peak_mem_mb", mem), ("units_per_s", units / t))]
    return rows


def test_speed_rows_are_combined_per_run_not_averaged_over_layers(tmp_path: Path) -> None:
    df = _runs(tmp_path / "r", {0: _speed_rows(0, (1.0, 2.0)), 1: _speed_rows(1, (2.0, 3.0))})
    summary = summarize(df, ["method"], ["model"])
    cell = lambda m: (("top_patches", m), "alexnet")  # noqa: E731
    assert summary["n"].loc[cell("time_s")] == 2  # runs, not layers
    assert summary["mean"].loc[cell("time_s")] == pytest.approx(4.0)  # totals 3 s and 5 s
    assert summary["ci"].loc[cell("time_s")] == pytest.approx(t_half_width(np.array([3.0, 5.0])))
    assert summary["mean"].loc[cell("peak_mem_mb")] == 300.0 and summary["n"].loc[cell("peak_mem_mb")] == 1
    assert summary["mean"].loc[cell("units_per_s")] == pytest.approx((20 / 3 + 20 / 5) / 2)  # total work / time
    text = format_table(summary, "markdown")
    assert f"4 ± {t_half_width(np.array([3.0, 5.0])):.4g} (n=2, summed over 2 layers)" in text
    assert "300 (n=1, 2 seeds identical, max over 2 layers)" in text  # both runs' largest: one result
    assert "(n=2, pooled over 2 layers)" in text
    per_layer = summarize(df, ["method", "layer"], ["model"], ["time_s"])
    assert per_layer["mean"].loc[("top_patches", "conv2", "time_s"), "alexnet"] == pytest.approx(2.5)
    assert "layers" not in format_table(per_layer, "markdown")


FLAG = "flagged: objective ended below its start (-0.187 < 0.012)"


def test_flagged_rows_are_averaged_counted_and_listed_not_failed(tmp_path: Path) -> None:
    rows = _unit_rows(0, [0.5, 0.7, 0.9], metric="activation")
    rows[1]["status"] = FLAG
    rows.append(_row("r/0", "alexnet", "raw_weights", 0, "activation", np.nan, LAYER, 3, FLAG))  # no value: degenerate
    df = _runs(tmp_path / "r", {0: rows})
    assert df.loc[df["unit"] == 3, "status"].item() == f"degenerate: activation is not a number ({FLAG})"
    assert is_flagged(df["status"]).sum() == 1
    summary = summarize(df, ["method"], ["model"])
    cell = (("raw_weights", "activation"), "alexnet")
    assert summary["n"].loc[cell] == 3 and summary["mean"].loc[cell] == pytest.approx(0.7)
    assert "(n=3, 1 flagged, 1 degenerate)" in format_table(summary, "markdown")
    assert failures(df).empty
    notes = format_notes(df, [])
    assert "Flagged rows (1)" in notes and FLAG in notes and "metric=activation" in notes
    assert "Failed rows" not in notes


def test_flag_survives_a_merge_of_identical_seeds(tmp_path: Path) -> None:
    runs = {s: _unit_rows(s, [0.5, 0.7]) for s in (0, 1)}
    runs[1][0]["status"] = FLAG
    summary = summarize(_runs(tmp_path / "r", runs), ["method"], ["model"])
    assert "(n=2, 2 seeds identical, 1 flagged)" in format_table(summary, "markdown")


def test_two_copies_of_a_run_are_one_result_said_as_runs(tmp_path: Path) -> None:
    rows = _unit_rows(0, [0.2, 0.5, 0.9])
    _write_run(tmp_path / "a" / "0", rows, done=True, pictures=False)
    _write_run(tmp_path / "b" / "0", rows, done=True, pictures=False)
    summary = summarize(load_results([tmp_path / "a", tmp_path / "b"]), ["method"], ["model"])
    assert summary["n"].loc[("raw_weights", "gt_corr"), "alexnet"] == 3
    assert "(n=3, 2 runs identical)" in format_table(summary, "markdown")
