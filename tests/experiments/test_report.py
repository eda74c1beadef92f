"""experiments.report: the gallery (front page, layer pages, unit pages) links and pictures resolve, checked as text,
on the default sweep, and in headless Chromium."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest

from experiments.report import main, natural_key, write_report

sys.path.insert(0, str(Path(__file__).parent))
from fake_runs import FAILED_STATUS, LAYER, _row, _write_run, gt_corr, make_sweep  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


class Page(HTMLParser):
    """The links, pictures and ids of one HTML page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []
        self.ids: set[str] = set()
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if tag in ("img", "script") and a.get("src"):
            self.srcs.append(a["src"])
        if a.get("id"):
            self.ids.add(a["id"])


def pages(folder: Path) -> list[Path]:
    """Every page of a gallery: report.html and the pages below gallery/."""
    return [folder / "report.html", *sorted((folder / "gallery").glob("**/*.html"))]


def broken(folder: Path) -> list[str]:
    """Every link or picture of the gallery that does not resolve to a file (or to an id on its page)."""
    bad = []
    for path in pages(folder):
        page = Page(path.read_text(encoding="utf-8"))
        for ref in page.hrefs + page.srcs:
            url = urlsplit(ref)
            assert not url.scheme and not url.netloc, f"{path}: {ref} is not a relative address"
            target = (path.parent / unquote(url.path)).resolve() if url.path else path
            if not target.exists():
                bad.append(f"{path.relative_to(folder)}: {ref}")
            elif url.fragment and url.fragment not in Page(target.read_text(encoding="utf-8")).ids:
                bad.append(f"{path.relative_to(folder)}: {ref} (no such id)")
    return bad


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic sweep with pictures, and its gallery written."""
    sweep = make_sweep(tmp_path_factory.mktemp("r") / "sweep")
    write_report(sweep)
    return sweep


def test_every_link_and_picture_of_every_page_resolves(sweep: Path) -> None:
    assert broken(sweep) == []
    shown = {unquote(s) for p in pages(sweep) for s in Page(p.read_text()).srcs}
    names = {Path(s).name for s in shown}
    on_disk = {p.name for p in sweep.glob("*/units/*.png")}
    assert on_disk <= names  # every unit picture of every run is on some page


def test_unit_pages_have_stable_names_and_neighbours(sweep: Path) -> None:
    layer = sweep / "gallery" / "resnet18" / LAYER
    assert sorted(p.name for p in layer.glob("*.html")) == ["index.html", "unit_0.html", "unit_1.html", "unit_2.html"]
    middle = Page((layer / "unit_1.html").read_text())
    assert {"unit_0.html", "unit_2.html", "index.html", "../../../report.html"} <= set(middle.hrefs)
    assert "unit_3.html" not in Page((layer / "unit_2.html").read_text()).hrefs


def test_a_unit_page_shows_each_run_with_its_metrics_beside_its_picture(sweep: Path) -> None:
    page = (sweep / "gallery" / "resnet18" / LAYER / "unit_2.html").read_text()
    card = re.search(r'<div class="card" id="raw_weights-default-seed0">.*?</div>', page).group(0)
    assert f'src="../../../0/units/raw_weights__{LAYER}__2.png"' in card
    assert f"gt_corr ↑: {gt_corr('resnet18', 'raw_weights', 0, 2):.4g}" in card  # with its direction
    assert "<h2>raw_weights</h2>" in page and "<h2>gradient_ascent</h2>" in page
    assert 'href="#gradient_ascent-default-seed1-lr0.05"' in page  # the same unit under the other configs


def test_the_layer_page_links_every_unit_and_carries_sortable_values(sweep: Path) -> None:
    page = (sweep / "gallery" / "alexnet" / LAYER / "index.html").read_text()
    assert '<option value="gt_corr">gt_corr ↑</option>' in page and 'data-better-gt_corr="higher"' in page
    figures = re.findall(r'<figure data-unit="(\d)" data-m-gt_corr="([0-9.]+)"><a href="unit_(\d).html">', page)
    assert len(figures) == 4 * 3  # 4 runs (2 methods x 2 seeds) x 3 units, each linking to its own unit page
    assert all(unit == link for unit, _, link in figures)
    values = {(u, float(v)) for u, v, _ in figures}
    assert (2, round(gt_corr("alexnet", "gradient_ascent", 1, 2), 4)) in {(int(u), round(v, 4)) for u, v in values}


def test_summary_keeps_run_level_rows_apart_and_lists_failures(sweep: Path) -> None:
    page = (sweep / "report.html").read_text()
    quality, run_level = page.split("<h3>Quality, per unit</h3>")[1].split("<h3>Run level")
    assert "gt_corr" in quality and "time_s" not in quality
    assert "time_s" in run_level.split("</table>")[0] and "gt_corr" not in run_level.split("</table>")[0]
    assert "<th>layer</th>" in quality  # layers are never averaged together by default
    assert FAILED_STATUS in page and "Failed rows (1)" in page
    assert "Incomplete runs (1" in page
    assert f'href="gallery/resnet18/{LAYER}/unit_0.html"' in page  # models -> layers -> units


def test_degenerate_values_are_greyed_with_their_reason(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path / "sweep")
    dead = "degenerate: dead unit (activation range 0 over 512 images)"
    rows = [_row("sweep/10", "alexnet", "occlusion", 0, "pointing_game", v, LAYER, u, status)
            for u, v, status in ((0, 0.5, "ok"), (1, np.nan, dead))]
    _write_run(sweep / "10", rows, done=True, pictures=True)
    write_report(sweep)
    unit = (sweep / "gallery" / "alexnet" / LAYER / "unit_1.html").read_text()
    assert f'<li class="degenerate">pointing_game ↑: {dead}</li>' in unit
    page = (sweep / "report.html").read_text()
    assert "Degenerate rows (1)" in page and "(n=1, 1 degenerate)" in page


def test_pages_are_self_contained(sweep: Path) -> None:
    for path in pages(sweep):
        text = path.read_text()
        for external in ("http://", "https://", "<link", "@import", "url(", "<script src"):
            assert external not in text, (path, external)


def test_a_missing_picture_is_a_note_not_a_broken_image(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path / "sweep")
    (sweep / "0" / "units" / f"raw_weights__{LAYER}__1.png").unlink()
    write_report(sweep)
    page = (sweep / "gallery" / "resnet18" / LAYER / "unit_1.html").read_text()
    assert f"no picture: 0/units/raw_weights__{LAYER}__1.png" in page
    assert broken(sweep) == []


def test_a_rewritten_gallery_drops_pages_of_units_no_longer_there(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path / "sweep")
    write_report(sweep)
    stale = sweep / "gallery" / "resnet18" / "gone" / "unit_0.html"
    stale.parent.mkdir()
    stale.write_text("old")
    write_report(sweep)
    assert not stale.exists()


def test_cli_prints_the_report_path(sweep: Path, capsys) -> None:
    main([str(sweep)])
    assert capsys.readouterr().out.strip() == str(sweep / "report.html")


def test_natural_order_of_job_folders() -> None:
    assert sorted(["s/10", "s/2", "s/1"], key=natural_key) == ["s/1", "s/2", "s/10"]


SMALLER = ["experiment=default", "metrics.enabled=[cascade_spearman,gt_corr]", "metrics.randomization_curve=true", "data.n=32",
           "progress=false"]  # the default experiment with fewer images and metrics, and the randomization curve


@pytest.fixture(scope="module")
def default_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default sweep (4 methods and their floors on planted and shapes_cnn; its callback writes the gallery)."""
    out = tmp_path_factory.mktemp("default") / "sweep"
    proc = subprocess.run([sys.executable, "-m", "experiments.run", *SMALLER, f"hydra.sweep.dir={out}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, env={**os.environ, "HYDRA_FULL_ERROR": "0"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_planted_unit_pages_show_every_method_that_applies(default_sweep: Path) -> None:
    """conv1 units: all four methods (raw weights only exist for the first layer); conv2 units: three; each with
    its random floor beside it and its metrics under its pictures."""
    gallery = default_sweep / "gallery" / "planted"
    for layer, families in (("conv1", ["raw_weights", "gradient_ascent", "occlusion", "top_patches"]),
                            ("conv2", ["gradient_ascent", "occlusion", "top_patches"])):
        page = (gallery / layer / "unit_0.html").read_text()
        assert re.findall(r"<h2>(\w+)</h2>", page) == families, layer
        cards = re.findall(r'<div class="card" id="[^"]+"><h4>([^<]+)</h4>(.*?)<p>run: ', page)
        assert [label.split(" ")[0] for label, _ in cards] == [m for f in families for m in (
            f"{f}/{'pixel_short' if f == 'gradient_ascent' else 'default'}", f"random_baseline/{f}")]
        assert all("<img " in card and "gt_corr ↑:" in card for _, card in cards)
    assert "top_patches__conv2__0__context.png" in (gallery / "conv2" / "unit_0.html").read_text()
    assert broken(default_sweep) == []


def test_default_sweep_draws_the_randomization_curve(default_sweep: Path) -> None:
    page = (default_sweep / "report.html").read_text()
    curves = [s for s in Page(page).srcs if "randomization_curve" in s]
    assert curves and all((default_sweep / unquote(s)).exists() for s in curves)
    assert all((default_sweep / unquote(s)).with_suffix(".svg").exists() for s in curves)
    assert "Cascading randomization, per step" in page


def test_a_paper_figure_of_two_planted_units(default_sweep: Path, tmp_path: Path) -> None:
    from PIL import Image
    from experiments.figure import main as figure
    out = tmp_path / "fig.pdf"
    figure([str(default_sweep), "--model", "planted", "--units", "conv1:0,conv2:1", "--out", str(out), "--dpi", "100",
            "--width-in", "8", "--methods", "raw_weights,gradient_ascent,occlusion,top_patches"])
    assert len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", out.read_bytes())) == 1
    with Image.open(out.with_suffix(".png")) as png:
        assert abs(png.size[0] - 800) <= 1 and png.size[1] > 100


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by Selenium, with the browser console log kept."""
    webdriver = pytest.importorskip("selenium.webdriver")
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("chromium or chromedriver is not installed (CI installs both: apt-get install chromium "
                    "chromium-driver)")
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1300,1600"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    yield driver
    driver.quit()


def check_page(driver, url: str) -> None:
    """Open `url`: every picture loaded (natural width > 0), no console message of level warning or worse."""
    driver.get(url)
    images = driver.execute_script("return Array.from(document.images).map(i => [i.src, i.complete, i.naturalWidth])")
    assert images and all(done and width > 0 for _, done, width in images), [i for i in images if not i[2]]
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == [], errors


def follow(driver, text: str) -> None:
    """Click the first link whose text contains `text`."""
    from selenium.webdriver.common.by import By
    driver.find_element(By.PARTIAL_LINK_TEXT, text).click()


def test_the_gallery_works_in_headless_chromium(browser, default_sweep: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    check_page(browser, (default_sweep / "report.html").resolve().as_uri())
    follow(browser, "conv1")  # index -> layer page
    assert browser.current_url.endswith("gallery/planted/conv1/index.html")
    check_page(browser, browser.current_url)
    Select(browser.find_element(By.ID, "sort")).select_by_value("gt_corr")
    boxes = browser.find_elements(By.CSS_SELECTOR, ".units")
    orders = [[float(f.get_attribute("data-m-gt_corr")) for f in b.find_elements(By.TAG_NAME, "figure")] for b in boxes]
    assert len(orders) == 8 and all(v == sorted(v, reverse=True) for v in orders)  # each run's grid, best first
    box = browser.find_element(By.XPATH, "//h3[starts-with(., 'gradient_ascent/')]/following-sibling::div[1]")
    assert len({f.get_attribute("data-m-gt_corr") for f in box.find_elements(By.TAG_NAME, "figure")}) > 1
    assert box.find_element(By.CSS_SELECTOR, ".value").text.startswith("gt_corr: ")
    box.find_element(By.TAG_NAME, "a").click()  # layer page -> the best unit's page
    assert re.search(r"gallery/planted/conv1/unit_\d+\.html$", browser.current_url)
    check_page(browser, browser.current_url)
    assert len(browser.find_elements(By.CSS_SELECTOR, ".card")) == 8  # 4 methods and their floors
    follow(browser, "unit")  # a neighbour
    check_page(browser, browser.current_url)
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
