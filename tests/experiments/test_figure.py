"""experiments.figure on fake run folders: one page, the PNG's size, "not run" panels, and one-line errors (exit 2)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from experiments import figure
from experiments.compare import load_results

sys.path.insert(0, str(Path(__file__).parent))
from fake_runs import LAYER, make_sweep  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """The fake sweep: 2 models x raw_weights, gradient_ascent (units 0-2 of LAYER, with pictures), a failed
    top_patches run on alexnet and an unfinished occlusion run on resnet18."""
    return make_sweep(tmp_path_factory.mktemp("fig") / "sweep")


def pages(pdf: Path) -> int:
    """Page objects in a PDF (matplotlib writes them uncompressed): '/Type /Page', not '/Type /Pages'."""
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf.read_bytes()))


def fails(capsys, argv: list[str]) -> str:
    """Run main, expect exit status 2, return the one error line."""
    with pytest.raises(SystemExit) as exit_:
        figure.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [l for l in err.splitlines() if "error:" in l]
    assert len(lines) == 1
    return lines[0]


def test_writes_one_page_pdf_and_png_of_the_requested_width(sweep, tmp_path, capsys):
    out = tmp_path / "paper" / "fig.pdf"
    figure.main([str(sweep), "--units", f"{LAYER}:0,{LAYER}:2", "--model", "alexnet", "--out", str(out),
                 "--dpi", "40", "--width-in", "5"])
    assert capsys.readouterr().out.split() == [str(out), str(out.with_suffix(".png"))]
    assert out.read_bytes().startswith(b"%PDF") and pages(out) == 1
    width, height = Image.open(out.with_suffix(".png")).size
    assert abs(width - 5 * 40) <= 1 and height > 0


def test_columns_pictures_and_not_run_panels(sweep):
    df = load_results([sweep])
    df = df[(df["model"] == "alexnet") & df["unit"].notna()]
    cols = figure.columns_of(df.assign(preset=df["preset"].astype(str)))
    assert [c.title for c in cols] == ["raw_weights", "gradient_ascent", "top_patches"]
    ga, top = cols[1], cols[2]
    path = figure.picture(df, ga, LAYER, 1)
    assert path is not None and path.name == f"gradient_ascent__{LAYER}__1.png" and path.exists()
    assert figure.picture(df, top, LAYER, 0) is None  # that run failed: no picture
    fig = figure.draw([[path, None]], [f"{LAYER} · 1"], ["gradient_ascent", "top_patches"], 4.0)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts] + [t.get_text() for t in fig.texts]
    assert texts.count("not run") == 1 and {"gradient_ascent", "top_patches", f"{LAYER} · 1"} <= set(texts)
    assert len(fig.axes[0].images) == 1 and not fig.axes[1].images


def test_presets_become_columns_and_methods_pick_them():
    cols = figure.columns_of(pd.DataFrame({"method": ["ga", "ga", "occ"], "preset": ["a", "b", "default"]}))
    assert [c.title for c in cols] == ["ga/a", "ga/b", "occ"]
    assert [c.title for c in figure.pick_columns(cols, ["occ", "ga/b"])] == ["occ", "ga/b"]
    assert [c.title for c in figure.pick_columns(cols, ["ga"])] == ["ga/a", "ga/b"]


def test_parse_units():
    assert figure.parse_units("conv1:0, a:b.c:12,output:3, c2 : 1") == [("conv1", 0), ("a:b.c", 12), ("", 3), ("c2", 1)]
    for bad in ("conv1", "conv1:x", ":3", "conv1:-1", ""):
        with pytest.raises(ValueError, match="bad --units entry"):
            figure.parse_units(bad)


def test_bad_units_syntax_exits_2_naming_the_valid_units(sweep, capsys):
    line = fails(capsys, [str(sweep), "--units", "conv1-0", "--model", "alexnet"])
    assert "bad --units entry 'conv1-0'" in line
    assert f"valid units: {LAYER}:0, {LAYER}:1, {LAYER}:2" in line


def test_unknown_method_exits_2_naming_the_valid_ones(sweep, capsys):
    line = fails(capsys, [str(sweep), "--units", f"{LAYER}:0", "--model", "alexnet", "--methods", "raw_weights,gradient_acent"])
    assert "unknown --methods entry 'gradient_acent'; did you mean gradient_ascent?" in line
    assert "valid: raw_weights, gradient_ascent, top_patches" in line


@pytest.mark.parametrize("argv, message", [
    (["--units", f"{LAYER}:7", "--model", "alexnet"], f"unit {LAYER}:7 is not in"),
    (["--units", f"{LAYER}:0"], "holds several models; pick one with --model: resnet18, alexnet"),
    (["--units", f"{LAYER}:0", "--model", "vgg"], "unknown --model 'vgg'; valid: resnet18, alexnet"),
    (["--units", f"{LAYER}:0", "--model", "alexnet", "--out", "fig.png"], "must end in .pdf"),
    (["--units", f"{LAYER}:0", "--model", "alexnet", "--dpi", "0"], "--dpi 0 must be >= 1"),
])
def test_other_bad_input_exits_2(sweep, capsys, argv, message):
    assert message in fails(capsys, [str(sweep), *argv])


def test_folder_without_results_exits_2_from_the_command_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "experiments.figure", str(tmp_path), "--units", "conv1:0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith(f"no metrics.csv found under {tmp_path} "
                                                         "(expected a run or sweep folder of experiments.run)")
