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
                                 incomplete_runs, load_results, main, summarize, welch)

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
