"""Run pictures (experiments.pictures): tiles >= MIN_TILE px upscaled exactly, a title strip and labels, occlusion
maps over the unit's own photos in the right colours with a colour bar, and the context and snapshot files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor

from experiments import pictures
from experiments import run as run_module
from experiments.data.spec import DataSpec
from methods.base import Visualization
from methods.gradient_ascent import Ascent
from methods.occlusion import OcclusionMaps
from methods.raw_weights import Filters
from methods.top_patches import TopPatches

RED, GREEN, BLUE = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)


def constant(colour: tuple[float, ...], k: int = 1, h: int = 7, w: int = 7) -> Tensor:
    """k images [k, C, h, w] of one colour (C = len(colour))."""
    return torch.tensor(colour).view(1, -1, 1, 1).expand(k, -1, h, w).clone()


def read(path: Path) -> np.ndarray:
    """A PNG as an [H, W, 3] uint8 array."""
    return np.asarray(Image.open(path).convert("RGB"))


def box_of(png: np.ndarray, rgb: tuple[int, int, int]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), exclusive, of the pixels of exactly colour `rgb`."""
    rows, cols = np.nonzero((png == np.array(rgb, dtype=np.uint8)).all(-1))
    assert len(rows), f"no pixel of colour {rgb}"
    return rows.min(), cols.min(), rows.max() + 1, cols.max() + 1


def dark(region: np.ndarray) -> bool:
    """Whether a region holds text: some nearly black pixels."""
    return bool((region.max(-1) < 100).any())


def filters(images: Tensor, units: tuple[int, ...] = (0,), layer: str = "conv1") -> Filters:
    """A raw-weights result with these display images."""
    return Filters(images=images, units=units, layer=layer, weights=images)


def test_titles_and_labels() -> None:
    assert pictures.grid_title("occlusion", "default", "") == "occlusion/default · output"
    assert pictures.grid_title("raw_weights", "", "conv1") == "raw_weights · conv1"
    assert pictures.unit_title("top_patches", "default", "layer1.0", 3) == "layer1.0 · unit 3 · top_patches/default"
    assert pictures.tile_labels(4, 1) == ["unit 4"]
    assert pictures.tile_labels(4, 3) == ["unit 4 · 0", "unit 4 · 1", "unit 4 · 2"]


@pytest.mark.parametrize("side", [7, 28])
@pytest.mark.parametrize("colour", [(0.4,), (0.2, 0.6, 1.0), (0.0, 0.2, 0.6, 1.0)])
def test_tiles_are_at_least_min_tile_and_keep_their_colour(side: int, colour: tuple[float, ...]) -> None:
    (tile,) = pictures.tiles(constant(colour, h=side, w=side))
    f = -(-pictures.MIN_TILE // side)  # whole nearest-neighbour factor
    c = len(colour)
    panels = 1 if c in (1, 3) else c
    assert tile.size == (panels * f * side + (panels - 1), f * side) and min(tile.size) >= pictures.MIN_TILE
    arr = np.asarray(tile.convert("RGB"))
    if c == 3:
        assert (arr == np.round(255 * np.array(colour))).all()
    else:  # grey, and for C = 4 one grey panel per channel, left to right, 1 px white apart
        for i, v in enumerate(colour):
            panel = arr[:, i * (f * side + 1): i * (f * side + 1) + f * side]
            assert (panel == round(255 * v)).all()
            if i:
                assert (arr[:, i * (f * side + 1) - 1] == 255).all()


def test_checker_upscales_to_blocks_under_a_title_and_over_a_label(tmp_path: Path) -> None:
    checker = torch.zeros(1, 3, 2, 2)
    checker[0, :, 0, 0] = checker[0, :, 1, 1] = torch.tensor(RED)
    checker[0, :, 0, 1] = checker[0, :, 1, 0] = torch.tensor(GREEN)
    pictures.save_result_pictures(tmp_path, "raw_weights", filters(checker, (5,)), preset="default")
    png = read(tmp_path / "units" / "raw_weights__conv1__5.png")
    top, left, bottom, right = box_of(png, (255, 0, 0))
    assert (bottom - top, right - left) == (192, 192)  # the 2 x 2 checker upscaled x 96
    tile = png[top:bottom, left:right]
    assert (tile[:96, :96] == (255, 0, 0)).all() and (tile[96:, 96:] == (255, 0, 0)).all()
    assert (tile[:96, 96:] == (0, 255, 0)).all() and (tile[96:, :96] == (0, 255, 0)).all()
    assert top > pictures.TITLE_SIZE and dark(png[:top]) and not (png[:top] == tile[0, 0]).all(-1).all()
    assert dark(png[bottom:])  # the label under the tile


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("side", [7, 28])
def test_grid_and_unit_pictures_for_any_channels(tmp_path: Path, channels: int, side: int) -> None:
    images = torch.rand(3, channels, side, side)
    written = pictures.save_result_pictures(tmp_path, "raw_weights", filters(images, (0, 1, 2), ""), preset="p")
    names = sorted(p.relative_to(tmp_path).as_posix() for p in written)
    assert names == ["grids/raw_weights__output.png"] + [f"units/raw_weights__output__{u}.png" for u in range(3)]
    panels = 1 if channels in (1, 3) else channels
    f = -(-pictures.MIN_TILE // side)
    grid = read(tmp_path / "grids" / "raw_weights__output.png")
    assert grid.shape[1] >= 3 * (panels * f * side) and grid.shape[0] >= f * side + pictures.TITLE_SIZE
    unit = read(tmp_path / "units" / "raw_weights__output__1.png")
    assert unit.shape[0] > f * side + pictures.TITLE_SIZE + pictures.LABEL_SIZE and unit.shape[1] >= panels * f * side


def occlusion_result() -> tuple[OcclusionMaps, DataSpec]:
    """Units 3 and 7 mapped on data images 2 and 5 (image k is the constant grey k / 10); unit 3 owns image 2, unit
    7 image 5. Unit 7's map of image 5: +1 on the top-left 8 x 8 quadrant, -0.5 on the bottom-right one, 0 elsewhere;
    of image 2 (not its own): -3 everywhere."""
    data = DataSpec(name="greys", images=(torch.arange(8.0) / 10).view(8, 1, 1, 1).expand(8, 3, 16, 16).clone(),
                    labels=torch.full((8,), -1), masks=None, class_names=())
    maps = torch.zeros(2, 2, 16, 16)
    maps[1, 1, :8, :8], maps[1, 1, 8:, 8:], maps[0, 1] = 1.0, -0.5, -3.0
    maps[:, 0] = torch.randn(2, 16, 16)
    return OcclusionMaps(images=torch.rand(4, 3, 16, 16), units=(3, 7), layer="conv2", images_per_unit=2, maps=maps,
                         perturbations=0, windows=(torch.arange(4), torch.arange(4)),
                         evaluated=torch.ones(4, 4, dtype=torch.bool), image_indices=torch.tensor([2, 5]),
                         unit_sources=torch.tensor([[2], [5]])), data


def test_occlusion_is_red_where_hiding_lowers_the_unit_over_its_own_photo(tmp_path: Path) -> None:
    result, data = occlusion_result()
    pictures.save_result_pictures(tmp_path, "occlusion", result, data, "default")
    png = read(tmp_path / "units" / "occlusion__conv2__7.png")
    layout = pictures.occlusion_layout(1, 16, 16, pictures.unit_title("occlusion", "default", "conv2", 7))
    assert png.shape[:2] == layout.size[::-1]
    (left, top, right, bottom), = layout.panels
    assert (right - left, bottom - top) == (192, 192)  # 16 px maps x 12
    panel = png[top:bottom, left:right].astype(int)
    r, g, b = panel[48, 48]  # the positive quadrant: hiding it lowers the unit
    assert r > b + 50 and r > g + 50  # RdBu_r at +max: dark red
    r, g, b = panel[144, 144]  # the negative quadrant: hiding it raises the unit
    assert b > r + 40 and b > g
    assert (abs(panel[48, 144] - round(0.5 * 255)) <= 1).all()  # where the map is 0: its own photo, image 5 (grey 0.5)
    bar = png[top:bottom, right:]  # a colour bar beside the panel, from blue to red
    assert png.shape[1] > right + pictures.OCC_BAR_W
    reds = (bar[..., 0].astype(int) - bar[..., 2] > 100).any()
    blues = (bar[..., 2].astype(int) - bar[..., 0] > 100).any()
    assert reds and blues and dark(png[bottom:])  # and the caption under the panel


def test_occlusion_without_data_is_the_labelled_grid_of_its_images(tmp_path: Path) -> None:
    result, _ = occlusion_result()
    pictures.save_result_pictures(tmp_path, "occlusion", result, None, "default")
    expected = pictures.sheet(pictures.tiles(result.images[2:]), ["unit 7 · 0", "unit 7 · 1"],
                              "conv2 · unit 7 · occlusion/default", 2)
    assert (read(tmp_path / "units" / "occlusion__conv2__7.png") == np.asarray(expected)).all()
    assert (tmp_path / "grids" / "occlusion__conv2.png").exists()


def test_top_patches_write_a_context_picture(tmp_path: Path) -> None:
    k = 2
    result = TopPatches(images=constant(RED, 2 * k, 5, 5), units=(1, 4), layer="conv2", images_per_unit=k,
                        indices=torch.tensor([[3, 0], [1, 2]]), activations=torch.tensor([[2.0, 1.0], [0.5, 0.25]]),
                        positions=torch.zeros(2, k, 2), boxes=torch.zeros(2, k, 4),
                        boxes_unclipped=torch.zeros(2, k, 4),
                        rf=None, rf_ignores_global=False, rf_method="graph", rf_exceeds_image=False,
                        context=constant(BLUE, 2 * k, 16, 16), images_processed=4)
    written = pictures.save_result_pictures(tmp_path, "top_patches", result, preset="default")
    assert sorted(p.name for p in written if p.parent.name == "units") == [
        "top_patches__conv2__1.png", "top_patches__conv2__1__context.png",
        "top_patches__conv2__4.png", "top_patches__conv2__4__context.png"]
    context = read(tmp_path / "units" / "top_patches__conv2__4__context.png")
    top, left, bottom, right = box_of(context, (0, 0, 255))
    assert bottom - top == 192 and right - left >= 2 * 192  # both context images, full size, side by side
    assert not ((context == (255, 0, 0)).all(-1)).any()  # no crop in it
    crops = read(tmp_path / "units" / "top_patches__conv2__4.png")
    assert box_of(crops, (255, 0, 0))[2] - box_of(crops, (255, 0, 0))[0] >= 192


def ascent(snapshots: dict[int, float], steps: int, k: int = 1) -> Ascent:
    """Two units' ascent result whose images are the red step / 10 (no green, no blue: no text pixel has that colour)
    after each snapshot step and at the end."""
    red = lambda s: constant((s / 10, 0.0, 0.0), 2 * k)  # noqa: E731
    return Ascent(images=red(steps), units=(0, 6), layer="conv2", images_per_unit=k, activation=torch.zeros(2),
                  snapshots={s: red(s) for s in snapshots}, steps=steps)


def test_ascent_snapshots_are_a_strip_ending_at_the_last_step(tmp_path: Path) -> None:
    written = pictures.save_result_pictures(tmp_path, "gradient_ascent", ascent({5: 0, 2: 0}, 8), preset="quick")
    assert sorted(p.name for p in written if p.parent.name == "units") == [
        "gradient_ascent__conv2__0.png", "gradient_ascent__conv2__0__snapshots.png",
        "gradient_ascent__conv2__6.png", "gradient_ascent__conv2__6__snapshots.png"]
    strip = read(tmp_path / "units" / "gradient_ascent__conv2__6__snapshots.png")
    lefts = [box_of(strip, (v, 0, 0))[1] for v in (round(255 * 0.2), round(255 * 0.5), round(255 * 0.8))]
    assert lefts == sorted(lefts) and lefts[1] - lefts[0] >= 196  # steps 2, 5 and the final 8, left to right
    assert box_of(strip, (51, 0, 0))[0] == box_of(strip, (204, 0, 0))[0]  # in one row


def test_ascent_snapshots_do_not_repeat_the_last_step_and_need_snapshots(tmp_path: Path) -> None:
    result = ascent({4: 0, 8: 0}, 8, k=2)
    pictures.save_result_pictures(tmp_path, "gradient_ascent", result)
    strip = read(tmp_path / "units" / "gradient_ascent__conv2__0__snapshots.png")
    frames = torch.cat([result.snapshots[4][:2], result.snapshots[8][:2]])[[0, 2, 1, 3]]  # a row per image
    expected = pictures.sheet(pictures.tiles(frames),
                              ["step 4 · 0", "step 8 · 0", "step 4 · 1", "step 8 · 1"],
                              "conv2 · unit 0 · gradient_ascent · snapshots", 2)
    assert (strip == np.asarray(expected)).all()
    (tmp_path / "units").rename(tmp_path / "before")
    pictures.save_result_pictures(tmp_path, "random_baseline", ascent({}, 0))  # the random floor: no snapshots
    assert not any("snapshots" in p.name for p in (tmp_path / "units").iterdir())


def reddish(region: np.ndarray) -> bool:
    """Whether a region holds flag text: some strongly red pixels."""
    r, g, b = (region[..., i].astype(int) for i in range(3))
    return bool(((r > 150) & (g < 80) & (b < 80)).any())


def test_a_flagged_unit_says_so_under_its_tile_and_in_its_title(tmp_path: Path) -> None:
    result = Ascent(images=constant((0.5, 0.5, 0.5), 2), units=(0, 6), layer="conv2", activation=torch.tensor([-0.2, 1.0]),
                    snapshots={}, steps=4, start=torch.tensor([0.1, 0.0]), grey=torch.tensor([0.0, 0.0]))
    assert result.flags == {"activation": {0: "flagged: objective ended below its start (-0.2 < 0.1)"}}
    assert pictures.unit_flags(result) == {0: "objective ended below its start"}
    pictures.save_result_pictures(tmp_path, "gradient_ascent", result, preset="quick")
    grid = read(tmp_path / "grids" / "gradient_ascent__conv2.png")
    top, _, bottom, _ = box_of(grid, (128, 128, 128))
    tiles_left = np.nonzero((grid[top] == 128).all(-1))[0]
    split = (tiles_left.min() + tiles_left.max()) // 2  # unit 0's tile on the left, unit 6's on the right
    assert reddish(grid[bottom:, :split]) and not reddish(grid[bottom:, split:]) and not reddish(grid[:top])
    own = read(tmp_path / "units" / "gradient_ascent__conv2__0.png")
    other = read(tmp_path / "units" / "gradient_ascent__conv2__6.png")
    own_top, other_top = box_of(own, (128, 128, 128))[0], box_of(other, (128, 128, 128))[0]
    assert reddish(own[:own_top]) and not reddish(other[:other_top]) and not reddish(other)
    plain = pictures.sheet(pictures.tiles(result.images[1:]), ["unit 6"], pictures.unit_title("gradient_ascent", "quick", "conv2", 6), 1)
    assert (other == np.asarray(plain)).all()  # an unflagged unit's picture is what it was without flags


def test_save_pictures_keeps_the_arrays(tmp_path: Path) -> None:
    result, data = occlusion_result()
    run_module.save_pictures(tmp_path, "occlusion", result, data, "default")
    arrays = torch.load(tmp_path / "arrays" / "occlusion__conv2.pt")
    torch.testing.assert_close(arrays["maps"], result.maps)
    assert arrays["units"] == (3, 7) and "mean_drop" in arrays["values"]
    units = sorted(p.name for p in (tmp_path / "units").iterdir())
    assert units == ["occlusion__conv2__3.png", "occlusion__conv2__7.png"]
    run_module.save_pictures(tmp_path / "plain", "v", Visualization(torch.rand(1, 3, 4, 4), (0,), "x"))
    assert (tmp_path / "plain" / "grids" / "v__x.png").exists()


def test_an_occlusion_map_with_nan_drops_is_still_drawn(tmp_path):
    """A NaN drop (a NaN score) is drawn as the photo alone; the finite drops keep their colours and limits."""
    from experiments.pictures import save_occlusion
    maps = torch.zeros(1, 16, 16)
    maps[0, :4, :4] = float("nan")
    maps[0, 8:, 8:] = 1.0
    path = save_occlusion(torch.full((1, 3, 16, 16), 0.5), maps, tmp_path / "nan.png", "t", ["image 0"])
    assert path.exists()
    nothing = save_occlusion(torch.full((1, 3, 16, 16), 0.5), torch.full((1, 16, 16), float("nan")),
                             tmp_path / "all_nan.png", "t", ["image 0"])
    assert nothing.exists()
