"""experiments.report: a static page whose pictures resolve, checked as text and in headless Chromium."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from experiments.report import main, natural_key, write_report

sys.path.insert(0, str(Path(__file__).parent))
from fake_runs import FAILED_STATUS, LAYER, _row, _write_run, gt_corr, make_sweep  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sweep with pictures, and its report written."""
    sweep = make_sweep(tmp_path_factory.mktemp("r") / "sweep")
    write_report(sweep)
    return sweep


def image_sources(page: str) -> list[str]:
    """Every <img src> of a page, unquoted."""
    return [unquote(s) for s in re.findall(r'<img [^>]*src="([^"]+)"', page)]


def test_every_picture_is_referenced_and_resolves(sweep: Path) -> None:
    sources = image_sources((sweep / "report.html").read_text())
    on_disk = sorted(p.relative_to(sweep).as_posix() for p in sweep.glob("*/*/*.png"))
    assert sorted(sources) == on_disk and len(on_disk) == 8 * 4 + 3  # 8 ok runs, incomplete run: grid + 2 units
    for src in sources:
        assert not Path(src).is_absolute()
        with Image.open(sweep / src) as im:
            assert im.size[0] > 0


def test_unit_metrics_are_listed_under_the_unit_picture(sweep: Path) -> None:
    page = (sweep / "report.html").read_text()
    figure = re.search(rf'<figure><img [^>]*src="0/units/raw_weights__{re.escape(LAYER)}__2.png".*?</figure>', page)
    assert figure, "unit 2 of run 0 has no figure"
    assert f"gt_corr ↑: {gt_corr('resnet18', 'raw_weights', 0, 2):.4g}" in figure.group(0)  # with its direction


def test_summary_failed_and_incomplete_are_shown(sweep: Path) -> None:
    page = (sweep / "report.html").read_text()
    assert "model=resnet18" in page and "(n=6)" in page
    assert FAILED_STATUS in page and "Failed rows (1)" in page
    assert "Incomplete runs (1" in page and "incomplete: no DONE" in page


def test_degenerate_values_are_greyed_with_their_reason(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path / "sweep")
    dead = "degenerate: dead unit (activation range 0 over 512 images)"
    rows = [_row("sweep/10", "alexnet", "occlusion", 0, "pointing_game", v, LAYER, u, status)
            for u, v, status in ((0, 0.5, "ok"), (1, np.nan, dead))]
    _write_run(sweep / "10", rows, done=True, pictures=True)
    page = write_report(sweep).read_text()
    assert f'<li class="degenerate">pointing_game ↑: {dead}</li>' in page
    assert "Degenerate rows (1)" in page and "(n=1, 1 degenerate)" in page
    assert "Failed rows (1)" in page  # the failed run of the sweep, listed as before


def test_page_is_self_contained(sweep: Path) -> None:
    page = (sweep / "report.html").read_text()
    for external in ("http://", "https://", "<script", "<link", "@import", "url("):
        assert external not in page


def test_missing_picture_is_a_note_not_a_broken_image(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path / "sweep")
    (sweep / "0" / "units" / f"raw_weights__{LAYER}__1.png").unlink()
    page = write_report(sweep).read_text()
    assert f"no picture: 0/units/raw_weights__{LAYER}__1.png" in page
    assert all((sweep / src).exists() for src in image_sources(page))


def test_cli_prints_the_report_path(sweep: Path, capsys) -> None:
    main([str(sweep)])
    assert capsys.readouterr().out.strip() == str(sweep / "report.html")


def test_natural_order_of_job_folders() -> None:
    assert sorted(["s/10", "s/2", "s/1"], key=natural_key) == ["s/1", "s/2", "s/10"]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs it: apt-get install chromium)")
def test_page_renders_in_headless_chromium(sweep: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", "--window-size=1000,1400",
           f"--screenshot={shot}", (sweep / "report.html").resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert pixels.shape[:2] == (1400, 1000)
    assert pixels.std() > 10 and (pixels < 200).any(axis=-1).mean() > 0.01  # text and pictures, not a blank page
