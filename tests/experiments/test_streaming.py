"""Streamed data sources: image folders and arrays read as they are needed, equal to the eager ones image for image,
batched by a DataLoader in order, sharded lazily, and a run end to end; memory flat in the image count (slow)."""
from __future__ import annotations

import io
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from experiments import run as run_module
from experiments.builders import check_builder
from experiments.data import build_data
from experiments.data.count import STREAM_ABOVE, streams
from experiments.data.shard import shard_bounds
from experiments.data import shapes_folder as shapes_folder_module
from experiments.data.shapes_folder import shapes_folder
from experiments.data.spec import DataSpec
from experiments.data.stream import LazyImages, batches
from tests.conftest import make_cfg

SIDE = 24  # the size every folder is built at
LABELS, PER_CLASS = ("a", "b", "c"), 4
IMAGES = len(LABELS) * PER_CLASS  # in the `root` folder
COUNTS = {"a.npy": 5, "b.pt": 4, "c.npz": 3}  # images in each file write_arrays writes


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An ImageFolder tree of three classes with images of several sizes, two with masks, one box file."""
    rng = np.random.default_rng(0)
    for label in LABELS:
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(PER_CLASS):
            pixels = rng.integers(0, 256, (20 + 3 * i, 30 - 2 * i, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / label / f"{i}.png")
    Image.fromarray((rng.random((20, 30)) > 0.5).astype(np.uint8) * 255).save(tmp_path / "images" / "a" / "0.mask.png")
    Image.fromarray((rng.random((23, 28)) > 0.5).astype(np.uint8) * 255).save(tmp_path / "images" / "b" / "1.mask.png")
    return tmp_path / "images"


def folder(root: Path, *overrides: str, size: object = SIDE, channels: int = 3) -> DataSpec:
    """data=image_folder at `root` built through its config."""
    return build_data(make_cfg("data=image_folder", f"data.root={root}", *overrides).data, size, channels)


def equal(eager: DataSpec, lazy: DataSpec) -> bool:
    """Whether a streamed source reads every image, label and mask of the eager one, in the same order."""
    assert isinstance(lazy.images, LazyImages) and isinstance(eager.images, torch.Tensor)
    same_masks = (eager.masks is None and lazy.masks is None) or \
        torch.equal(eager.masks, torch.stack([lazy.masks[i] for i in range(len(lazy.masks))]))
    return lazy.images.shape == eager.images.shape and torch.equal(lazy.labels, eager.labels) and same_masks and \
        all(torch.equal(lazy.images[i], eager.images[i]) for i in range(len(eager.images)))


@pytest.mark.parametrize("overrides,size,channels", [
    (["data.n=7"], SIDE, 3), (["data.n=all"], SIDE, 3), (["data.n=all", "data.resize=crop"], SIDE, 1),
    (["data.n=5", "data.seed=3"], SIDE, 1), (["data.n=all", "data.resize=stretch"], (16, 28), 3),
])
def test_a_streamed_folder_equals_the_eager_one_image_for_image(root: Path, overrides: list[str], size: object,
                                                                channels: int) -> None:
    eager = folder(root, *overrides, "data.stream=false", size=size, channels=channels)
    lazy = folder(root, *overrides, "data.stream=true", "data.workers=0", size=size, channels=channels)
    assert equal(eager, lazy) and lazy.class_names == eager.class_names


def test_streamed_masks_unite_mask_files_and_boxes_as_the_eager_ones(root: Path, tmp_path: Path) -> None:
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("path,top,left,bottom,right\nc/2.png,2,3,10,12\na/0.png,0,0,4,4\n")
    eager = folder(root, "data.n=all", f"data.boxes={boxes}", "data.stream=false")
    lazy = folder(root, "data.n=all", f"data.boxes={boxes}", "data.stream=true")
    assert isinstance(lazy.masks, LazyImages) and lazy.masks.shape == eager.masks.shape and equal(eager, lazy)
    assert eager.masks.flatten(1).any(1).sum() == 3  # two mask files and one box-only image


@pytest.mark.parametrize("batch_size", [1, 4, 5])
def test_batches_give_the_same_tensors_in_order_with_and_without_workers(root: Path, batch_size: int) -> None:
    eager, lazy = folder(root, "data.n=all", "data.stream=false"), folder(root, "data.n=all", "data.stream=true")
    expected = list(eager.images.split(batch_size))
    for workers in (0, 2):
        got = list(batches(lazy.images, batch_size, workers))
        assert len(got) == len(expected) and all(torch.equal(a, b) for a, b in zip(got, expected))
    assert all(torch.equal(a, b) for a, b in zip(batches(eager.images, batch_size, 2), expected))


def test_n_all_reads_every_image_in_sorted_order_and_streams_by_default(root: Path) -> None:
    data = folder(root, "data.n=all")
    assert isinstance(data.images, LazyImages) and len(data.images) == IMAGES
    assert data.labels.tolist() == sorted(data.labels.tolist())  # ImageFolder's order: class by class
    assert not isinstance(folder(root, f"data.n={IMAGES}").images, LazyImages)  # a small count: decoded up front
    assert streams("auto", STREAM_ABOVE + 1, STREAM_ABOVE + 1) and not streams("auto", STREAM_ABOVE + 1, 10)
    assert folder(root, "data.n=all", "data.workers=3").workers == 3


def counting(monkeypatch: pytest.MonkeyPatch, images: LazyImages) -> list[int]:
    """The source rows `images`' class reads from now on."""
    read, rows = type(images).read, []
    monkeypatch.setattr(type(images), "read", lambda self, row: rows.append(row) or read(self, row))
    return rows


def test_a_lazy_slice_stays_lazy_and_indexing_decodes_only_what_it_names(root: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    lazy = folder(root, "data.n=all", "data.stream=true")
    rows = counting(monkeypatch, lazy.images)
    part = lazy.images[3:9]
    assert isinstance(part, LazyImages) and part.shape == (6, 3, SIDE, SIDE) and part.dtype == torch.float32
    assert isinstance(part.subset([0, 2]), LazyImages) and not rows
    assert part[1].shape == (3, SIDE, SIDE) and part[torch.tensor([0, 5])].shape == (2, 3, SIDE, SIDE)
    assert part[[1]].shape == (1, 3, SIDE, SIDE) and part[np.array([-1])].shape == (1, 3, SIDE, SIDE)
    assert rows == [4, 3, 8, 4, 8]
    with pytest.raises(IndexError, match="out of range"):
        part[6]
    with pytest.raises(IndexError, match="1-D integer indices"):
        part[torch.tensor([0.5])]


def test_a_shard_of_a_streamed_folder_is_lazy_with_its_global_index(root: Path) -> None:
    whole = folder(root, "data.n=all", "data.stream=false")
    for shard in range(3):
        part = folder(root, "data.n=all", "data.stream=true", f"data.shard={shard}", "data.num_shards=3")
        start, stop = shard_bounds(len(whole.images), shard, 3)
        assert isinstance(part.images, LazyImages) and isinstance(part.masks, LazyImages)
        assert part.global_index().tolist() == list(range(start, stop))
        assert torch.equal(torch.cat(list(batches(part.images, 3, 2))), whole.images[start:stop])
        assert torch.equal(part.labels, whole.labels[start:stop]) and torch.equal(part.masks[[0]], whole.masks[[start]])


def test_unreadable_files_streamed_are_skipped_by_header_or_read_as_nan(root: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    buffer = io.BytesIO()  # noise: a JPEG large enough that its first half holds the whole header
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    (root / "a" / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (root / "a" / "text.jpg").write_text("this is not a JPEG")
    with caplog.at_level(logging.WARNING, logger="experiments.data.image_folder"):
        data = folder(root, "data.n=all", "data.stream=true")
        assert data.skipped == (str(root / "a" / "text.jpg"),) and len(data.images) == IMAGES + 1  # truncated: kept
        nan = [i for i in range(len(data.images)) if data.images[i].isnan().all()]
    assert len(nan) == 1 and data.images[[nan[0]]].isnan().all()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("text.jpg" in w and w.startswith("skipped unreadable image") for w in warnings)
    assert any("truncated.jpg" in w and "NaN image" in w for w in warnings)


def write_arrays(path: Path) -> None:
    """A folder of arrays: a .npy (uint8), a .pt dict with labels and masks, a .npz with labels (float)."""
    rng = np.random.default_rng(1)
    path.mkdir()
    a, b, c = COUNTS.values()
    np.save(path / "a.npy", rng.integers(0, 256, (a, 3, 12, 16), dtype=np.uint8))
    torch.save({"images": torch.rand(b, 3, 12, 16), "labels": torch.arange(b), "masks": torch.rand(b, 12, 16) > 0.5},
               path / "b.pt")
    np.savez(path / "c.npz", images=rng.random((c, 3, 12, 16), dtype=np.float32), labels=np.arange(c) + 7)


@pytest.mark.parametrize("n", ["all", "6"])
def test_streamed_arrays_equal_the_eager_ones(tmp_path: Path, n: str) -> None:
    write_arrays(tmp_path / "arrays")
    common = ["data=arrays", f"data.path={tmp_path / 'arrays'}", f"data.n={n}"]
    eager = build_data(make_cfg(*common, "data.stream=false").data, (16, 20))
    lazy = build_data(make_cfg(*common, "data.stream=true", "data.workers=2").data, (16, 20))
    assert equal(eager, lazy) and torch.equal(torch.cat(list(batches(lazy.images, 4, 2))), eager.images)
    assert len(lazy.images) == (sum(COUNTS.values()) if n == "all" else int(n))


def mapped_files(array: np.ndarray | torch.Tensor) -> list[str]:
    """What is mapped where the data of `array` lies (a file's path, or e.g. [heap]), from /proc/self/maps."""
    address = array.data_ptr() if isinstance(array, torch.Tensor) else array.ctypes.data
    found = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, *rest = line.split()
        start, stop = (int(a, 16) for a in span.split("-"))
        if start <= address < stop and len(rest) >= 5:
            found.append(rest[4])
    return found


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc/self/maps (Linux)")
def test_a_streamed_npy_and_pt_are_memory_mapped(tmp_path: Path) -> None:
    write_arrays(tmp_path / "arrays")
    data = build_data(make_cfg("data=arrays", f"data.path={tmp_path / 'arrays'}", "data.n=all").data, (12, 16))
    parts = data.images.files.parts()
    assert mapped_files(parts[0]["images"]) == [str(tmp_path / "arrays" / "a.npy")]
    assert mapped_files(parts[1]["images"]) == [str(tmp_path / "arrays" / "b.pt")]
    assert str(tmp_path / "arrays" / "c.npz") not in mapped_files(parts[2]["images"])  # .npz: read into memory


def test_a_streamed_value_out_of_range_fails_in_one_line_when_read(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.full((3, 3, 8, 8), 2.0, dtype=np.float32))
    data = build_data(make_cfg("data=arrays", f"data.path={tmp_path / 'x.npy'}", "data.stream=true").data, 8)
    for workers in (0, 2):
        with pytest.raises(ValueError) as err:
            list(batches(data.images, 2, workers))
        assert "\n" not in str(err.value) and "data.value_range" in str(err.value), str(err.value)


@pytest.mark.parametrize("overrides,message", [
    (["data=image_folder", "data.root=/x", "data.stream=maybe"],
     "unknown data.stream 'maybe'; valid: auto, true, false"),
    (["data=arrays", "data.path=/x.npy", "data.stream=2"], "unknown data.stream 2; valid: auto, true, false"),
    (["data=image_folder", "data.root=/x", "data.workers=-1"], "data.workers=-1 must be an integer >= 0 or auto"),
    (["data=shapes", "data.n=all"], "data.n=all is meaningless for data=shapes: it generates its images"),
    (["data=skimage", "data.n=all"], "data.n=all is meaningless for data=skimage"),
    (["data=shapes", "data.n=0"], "data.n=0 must be >= 1"),
    (["data=image_folder", "data.root=/x", "data.n=0"], "data.n=0 must be >= 1 or all"),
    (["data=arrays", "data.path=/x.npy", "data.n=some"], "data.n=some must be >= 1 or all"),
])
def test_bad_stream_settings_and_counts_are_one_line(overrides: list[str], message: str) -> None:
    with pytest.raises(ValueError) as err:
        check_builder("data", make_cfg(*overrides).data, "name")
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


def run_on(root: Path, out: Path, *overrides: str) -> pd.DataFrame:
    """A top_patches run of the planted model on the folder at `root`, written into `out`."""
    cfg = make_cfg("progress=false", "model=planted", "method=top_patches", "method.params.k=3", "metrics=fast",
                   "data=image_folder", f"data.root={root}", "data.n=all", *overrides)
    OmegaConf.set_struct(cfg, False)
    cfg.output_dir = str(out)
    return run_module.run(cfg)


def scores(table: pd.DataFrame) -> pd.Series:
    """A run's values but its timings, by layer, unit and metric."""
    return table[~table["metric"].str.contains("time|per_s|mem")].set_index(["layer", "unit", "metric"])["value"]


def test_a_run_on_a_streamed_folder_end_to_end(root: Path, tmp_path: Path) -> None:
    df = run_on(root, tmp_path / "streamed", "data.stream=true", "data.workers=2")
    assert (tmp_path / "streamed" / "DONE").exists() and (df["status"] == "ok").all(), df[df["status"] != "ok"]
    eager = run_on(root, tmp_path / "eager", "data.stream=false")
    pd.testing.assert_series_equal(scores(df), scores(eager))
    for path in (tmp_path / "streamed" / "arrays").iterdir():
        streamed, same = torch.load(path), torch.load(tmp_path / "eager" / "arrays" / path.name)
        assert streamed["images_processed"] == IMAGES and torch.equal(streamed["indices"], same["indices"])
        assert torch.equal(streamed["images"], same["images"])


def test_the_streamed_speed_case_writes_its_folder_once_and_times_both_loaders(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shapes_folder_module, "cache_root", lambda: tmp_path / "cache")
    case = {"name": "top_stream", "method": "top_patches", "model": "planted", "layer": "conv2", "units": 2,
            "input_size": 32, "data": "image_folder", "data_params": {"stream": True, "workers": 2}, "images": 10,
            "params": {"k": 2, "batch_size": 4}}
    cfg = make_cfg("experiment=speed", "speed.repeats=1", "speed.threads=1", "speed.memory=false", "progress=false")
    OmegaConf.set_struct(cfg, False)
    cfg.output_dir, cfg.speed.cases = str(tmp_path / "run"), [case]
    df = run_module.run(cfg)
    assert (df["status"] == "ok").all(), df[df["status"] != "ok"]
    assert {"vizbench", "bare"} <= set(df["contender"]) and "vs_bare" in set(df["metric"])
    assert (df.loc[df["metric"] == "images_per_s", "data"] == "image_folder").all()
    (written,) = (tmp_path / "cache").iterdir()
    assert len(list(written.glob("*/*.png"))) == case["images"]


MEMORY_RUN = textwrap.dedent("""
    import resource, sys
    from experiments.data.image_folder import load_image_folder
    from experiments.data.stream import batches
    from experiments.zoo.planted import build_planted
    from methods import top_patches
    from methods.base import Target
    spec = build_planted()
    data = load_image_folder(sys.argv[1], 32, n=int(sys.argv[2]), stream=True, workers=2)
    result = top_patches.visualize(spec.model, batches(data.images, 64, data.workers), Target("conv2", (0, 1)),
                                   normalize=spec.normalizer(), k=9)
    assert result.images_processed == int(sys.argv[2])
    own = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:")).split()[1]
    print(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
""")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc/self/status (Linux)")
def test_streamed_top_patches_memory_is_flat_in_the_image_count(tmp_path: Path) -> None:
    many = 10_000
    root = shapes_folder(many, 32, root=tmp_path)
    peaks = {}
    for n in (many // 10, many):
        out = subprocess.run([sys.executable, "-c", MEMORY_RUN, str(root), str(n)], capture_output=True, text=True,
                             check=True, cwd=Path(__file__).resolve().parents[2])
        peaks[n] = max(int(v) for v in out.stdout.split())  # KiB: the process or its largest loader worker
    # the process's own peak is VmHWM, not its ru_maxrss: that one keeps the peak of the forked pytest before exec
    assert peaks[many] <= 1.1 * peaks[many // 10], peaks
