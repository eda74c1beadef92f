"""The results table: schema, atomic writes, pictures."""
from __future__ import annotations

import os

import pandas as pd
import pytest

from experiments import tables


def test_schema_columns_first_and_status_defaults_ok() -> None:
    df = tables.to_frame([{"metric": "a", "value": 1.0, "unit": 3}, {"metric": "b", "value": 2.0}],
                         {"run_id": "r", "method": "m", "lr": "0.1"})
    assert list(df.columns[: len(tables.COLUMNS)]) == tables.COLUMNS
    assert "lr" in df.columns and list(df.status) == ["ok", "ok"]
    assert df.unit.dtype == "Int64" and df.unit.isna().tolist() == [False, True]


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path) -> None:
    path = tmp_path / "metrics.csv"
    tables.write_csv_atomic(pd.DataFrame({"a": [1]}), path)

    class Boom(pd.DataFrame):
        def to_csv(self, *a, **k):  # noqa: D102 - fails halfway
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        tables.write_csv_atomic(Boom({"a": [2]}), path)
    assert pd.read_csv(path).a.tolist() == [1]
    assert os.listdir(tmp_path) == ["metrics.csv"]


def _job(method: str = "raw_weights") -> list[dict]:
    """A run's rows: gt_corr of 3 units on each of two layers, each layer's timing, and a whole-run row."""
    rows = [{"method": method, "layer": layer, "unit": u, "metric": "gt_corr", "value": base + 0.1 * u}
            for layer, base in (("conv1", 0.5), ("conv2", 0.2)) for u in range(3)]
    rows += [{"method": method, "layer": layer, "unit": None, "metric": "time_s", "value": t}
             for layer, t in (("conv1", 59.0), ("conv2", 0.8))]
    return rows + [{"method": method, "layer": None, "metric": "images_skipped", "value": 2.0}]


def _line(text: str, metric: str) -> list[str]:
    """The cells of a markdown table's row for `metric`."""
    line = next(row for row in text.splitlines() if row.startswith(f"| {metric} "))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_summary_has_flat_headers_and_timing_per_layer() -> None:
    text = tables.summary_markdown(tables.to_frame(_job(), {"run_id": "r", "seed": 0}))
    header = [cell.strip() for cell in text.splitlines()[0].strip("|").split("|")]
    assert header == ["metric", "layer=(run)", "layer=conv1", "layer=conv2"]
    assert "(" not in "".join(header[2:]) and "'" not in text
    assert _line(text, "time_s") == ["time_s", "", "59 (n=1)", "0.8 (n=1)"]  # each layer's own value, no interval
    assert _line(text, "images_skipped") == ["images_skipped", "2 (n=1)", "", ""]
    gt = _line(text, "gt_corr ↑")
    assert gt[2].startswith("0.6 ± ") and gt[2].endswith("(n=3)") and gt[3].startswith("0.3 ± ")
    assert "**" not in text  # layers are not contenders: no bold


def test_summary_of_several_methods_names_each_column() -> None:
    text = tables.summary_markdown(tables.to_frame(_job() + _job("occlusion"), {"run_id": "r"}))
    assert "method=occlusion / layer=conv1" in text.splitlines()[0]


def test_summary_counts_flagged_rows_and_they_are_not_failures() -> None:
    rows = _job()
    rows[0]["status"] = "flagged: objective ended below its start (-0.187 < 0.012)"
    rows.append({"method": "raw_weights", "layer": "conv2", "unit": None, "metric": "error", "value": float("nan"),
                 "status": "failed: RuntimeError: boom"})
    df = tables.to_frame(rows, {"run_id": "r"})
    assert tables.failed(df)["metric"].tolist() == ["error"]
    assert _line(tables.summary_markdown(df), "gt_corr ↑")[2].endswith("(n=3, 1 flagged)")
    assert tables.summary_markdown(df[df["status"].str.startswith("failed")]) == "(no ok rows)"


def test_flagged_row_without_a_number_becomes_degenerate_keeping_the_flag() -> None:
    flag = "flagged: objective ended below its start"
    df = tables.to_frame([{"metric": "activation", "value": float("nan"), "unit": 0, "status": flag},
                          {"metric": "activation", "value": 0.5, "unit": 1, "status": flag}], {"run_id": "r"})
    assert df["status"].tolist() == [f"degenerate: activation is not a number ({flag})", flag]
