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
