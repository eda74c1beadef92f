"""The automatic 2AFC (MIS proxy): a synthetic unit that responds to redness, and hand-made embeddings whose answer is known."""
import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from experiments.config import MetricsConf
from experiments.metrics import mis
from experiments.validate import check_metrics


def _data(n: int = 160, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images of two classes (reddish / bluish, half each) with horizontal or vertical stripes that are
    independent of the class; the unit's activation = mean red - mean blue."""
    g = torch.Generator().manual_seed(seed)
    red = torch.arange(n) % 2 == 0
    horizontal = (torch.arange(n) // 2) % 2 == 0
    t = torch.arange(32.0)
    images = []
    for r, h in zip(red, horizontal):
        phase = 6 * torch.rand(1, generator=g)
        stripes = 0.5 + 0.3 * torch.sin(2 * np.pi * (t[:, None] if h else t[None, :]) / 8 + phase)
        stripes = stripes.expand(32, 32)  # in the green channel: the same gray contrast for both classes
        warm, cold = torch.full((32, 32), 0.8), torch.full((32, 32), 0.2)
        rgb = torch.stack([warm, stripes, cold] if r else [cold, stripes, warm])
        images.append((rgb + 0.05 * torch.randn(3, 32, 32, generator=g)).clamp(0, 1))
    images = torch.stack(images)
    return images, images[:, 0].mean((1, 2)) - images[:, 2].mean((1, 2)), horizontal


def _vectors(*rows: list[float]) -> torch.Tensor:
    """'Images' [N, 1, 1, D] that `_identity` embeds as the given vectors."""
    return torch.tensor(rows, dtype=torch.float64)[:, None, None, :]


def _identity(x: torch.Tensor) -> torch.Tensor:
    """An embedding that returns each 'image' as its vector."""
    return x.flatten(1)


def test_references_that_match_the_strong_queries_score_high():
    images, acts, _ = _data()
    order = torch.argsort(acts, descending=True)
    top, bottom = order[:9], order[-9:]
    strong, weak = mis.pick_queries(acts, 60, exclude=torch.cat([top, bottom]), fraction=0.3, seed=0)
    assert not set(top.tolist() + bottom.tolist()) & set(strong.tolist() + weak.tolist())
    both = mis.mis_proxy(images[top], images[strong], images[weak], minima=images[bottom])
    max_only = mis.mis_proxy(images[top], images[strong], images[weak])
    assert both > 0.9 and 0.75 < max_only < both  # measured 0.93 and 0.83: the min references add evidence
    assert mis.mis_proxy(images[top], images[strong], images[weak], temperature=1e-3) == 1.0  # sharp: every task


def test_swapping_max_and_min_references_mirrors_the_score():
    images, acts, _ = _data()
    order = torch.argsort(acts, descending=True)
    top, bottom = images[order[:9]], images[order[-9:]]
    strong, weak = mis.pick_queries(acts, 40, exclude=torch.cat([order[:9], order[-9:]]), fraction=0.3, seed=0)
    right = mis.mis_proxy(top, images[strong], images[weak], minima=bottom)
    swapped = mis.mis_proxy(bottom, images[strong], images[weak], minima=top)
    assert swapped < 0.5 and swapped == pytest.approx(1 - right)  # the difference changes sign in every task


def test_explanation_blind_to_the_unit_scores_chance():
    images, acts, horizontal = _data()
    red = acts > 0
    # balanced colours, all horizontal stripes: it carries the stripes, not what the unit responds to
    expl = torch.cat([torch.nonzero(red & horizontal)[:5, 0], torch.nonzero(~red & horizontal)[:5, 0]])
    strong, weak = mis.pick_queries(acts, 200, exclude=expl, fraction=0.4, seed=1)
    assert mis.mis_proxy(images[expl], images[strong], images[weak]) == pytest.approx(0.5, abs=0.15)


def test_random_references_average_to_chance():
    images, acts, _ = _data()
    scores = []
    for seed in range(10):
        pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:18]
        strong, weak = mis.pick_queries(acts, 40, exclude=pick, fraction=0.3, seed=seed)
        scores.append(mis.mis_proxy(images[pick[:9]], images[strong], images[weak], minima=images[pick[9:]]))
    assert np.mean(scores) == pytest.approx(0.5, abs=0.1)


def test_min_references_decide_where_max_alone_is_ambiguous():
    strong, weak = _vectors([1, 0, 0]), _vectors([0, 1, 0])
    maxima = _vectors([1, 1, 0])  # as similar to both queries
    assert mis.mis_proxy(maxima, strong, weak, embed=_identity) == 0.5
    assert mis.mis_proxy(maxima, strong, weak, minima=_vectors([0, 1, 1]), embed=_identity) > 0.99


def test_sigmoid_of_the_similarity_difference_by_hand():
    maxima, minima = _vectors([1, 0]), _vectors([0, 1])
    strong, weak = _vectors([0.8, 0.6], [1, 0]), _vectors([0.6, 0.8], [0.8, 0.6])
    # task 1: delta(strong) = 0.8 - 0.6, delta(weak) = 0.6 - 0.8, difference 0.4; task 2: 1 - 0.2 = 0.8
    expected = (1 / (1 + math.exp(-0.4 / 0.2)) + 1 / (1 + math.exp(-0.8 / 0.2))) / 2
    got = mis.mis_proxy(maxima, strong, weak, minima=minima, embed=_identity, temperature=0.2)
    assert got == pytest.approx(expected, rel=1e-12)
    assert mis.choice_probability(np.array([0.0, 0.4, -0.4]), 0.2) == pytest.approx([0.5, 0.8807970779778823, 0.1192029220221177])


def test_constant_embedding_scores_exactly_chance():
    images, acts, _ = _data(40)
    strong, weak = mis.pick_queries(acts, 10, fraction=0.25)
    constant = lambda x: torch.ones(len(x), 4)  # noqa: E731
    assert mis.mis_proxy(images[:3], images[strong], images[weak], embed=constant) == 0.5
    assert mis.mis_proxy(images[:3], images[strong], images[weak], minima=images[3:6], embed=constant) == 0.5


def test_custom_embedding_separates_colour():
    images, acts, _ = _data(40)
    strong, weak = mis.pick_queries(acts, 10, fraction=0.25)

    def redness(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x[:, 0].mean((1, 2)) - x[:, 2].mean((1, 2)), torch.full((len(x),), 0.5)], 1)

    assert mis.mis_proxy(images[acts > 0][:3], images[strong], images[weak], embed=redness) > 0.99


def test_default_temperature_is_the_calibrated_chance_spread():
    from experiments.data.shapes import make_shapes
    images = make_shapes(n=160, size=64, seed=1234).images
    measured = mis.calibrate_temperature(mis.default_embed, images, n_tasks=200)
    assert measured == pytest.approx(mis.HOG_COLOUR_TEMPERATURE, rel=0.3)  # 0.054 on the default run's 512 images
    with pytest.raises(ValueError, match="at least 20 images"):
        mis.calibrate_temperature(mis.default_embed, images[:10])
    grey = (images * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)  # ITU-R 601 luma
    measured = mis.calibrate_temperature(mis.default_embed, grey, n_tasks=200)
    assert measured == pytest.approx(mis.HOG_GREY_TEMPERATURE, rel=0.3)  # 0.101 on the default run's 512 images
    assert not measured == pytest.approx(mis.HOG_COLOUR_TEMPERATURE, rel=0.3)  # the RGB value does not carry over


HOG = 1764  # HOG features of a 64x64 image: 7 x 7 blocks x 2 x 2 cells x 9 orientations


def test_grey_embedding_is_hog_and_an_intensity_histogram():
    g = torch.Generator().manual_seed(0)
    grey = torch.rand(4, 1, 40, 40, generator=g)
    one, rgb = mis.default_embed(grey), mis.default_embed(grey.expand(-1, 3, -1, -1))
    assert one.shape == (4, HOG + mis.HIST_BINS)
    np.testing.assert_allclose(one[:, :HOG], rgb[:, :HOG], atol=1e-6)  # rgb2gray of a grey RGB image is the image
    flat = mis.default_embed(torch.full((1, 1, 24, 40), 0.3))  # no gradients; every pixel in bin floor(0.3 * 12)
    assert np.all(flat[0, :HOG] == 0) and flat[0, HOG:].tolist() == [0, 0, 0, 1] + [0] * 8


def test_four_channel_embedding_has_a_histogram_per_channel_and_tells_bands_apart():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(40, 4, 32, 32, generator=g)
    bright = torch.arange(40) % 2 == 0  # band 3 (say near-infrared) bright and band 0 dark, or the other way round:
    images[:, 0], images[:, 3] = torch.where(bright, 0.1, 0.9)[:, None, None], torch.where(bright, 0.9, 0.1)[:, None, None]
    e = mis.default_embed(images)  # the same channel mean either way, so only the bands' own histograms tell them apart
    assert e.shape == (40, HOG + 4 * mis.HIST_BINS)
    np.testing.assert_allclose(e[:, :HOG], mis.default_embed(images.mean(1, keepdim=True))[:, :HOG], atol=1e-6)
    acts = images[:, 3].mean((1, 2)) - images[:, 0].mean((1, 2))
    strong, weak = mis.pick_queries(acts, 20, exclude=torch.arange(6), fraction=0.4)
    refs = images[:6][bright[:6]]
    assert mis.mis_proxy(refs, images[strong], images[weak], temperature=0.05) > 0.9
    with pytest.raises(ValueError, match="'hog_colour' on 4-channel images needs metrics.mis_temperature"):
        mis.temperature_for("hog_colour", None, channels=4)
    assert mis.temperature_for("hog_colour", None, channels=1) == mis.HOG_GREY_TEMPERATURE


def test_embedding_names_resolve_or_fail_in_one_line():
    assert mis.embedding("hog_colour") is mis.default_embed
    assert mis.embedding(f"{__name__}:_identity") is _identity
    for name, match in (("hogcolour", "did you mean hog_colour"), ("nosuch_module_x:f", "No module named"),
                        (f"{__name__}:nosuch", "nosuch"), (f"{__name__}:math", "not a function")):
        with pytest.raises(ValueError, match=match) as err:
            mis.embedding(name)
        assert "\n" not in str(err.value) and repr(name) in str(err.value)
    assert mis.temperature_for("hog_colour", None) == mis.HOG_COLOUR_TEMPERATURE
    assert mis.temperature_for(f"{__name__}:_identity", 0.1) == 0.1
    with pytest.raises(ValueError, match="needs metrics.mis_temperature"):
        mis.temperature_for(f"{__name__}:_identity", None)
    with pytest.raises(ValueError, match="mis_temperature=0"):
        mis.temperature_for("hog_colour", 0)


@pytest.mark.parametrize("settings,match", [({"mis_embedding": "hogcolour"}, "'hogcolour'"),
                                            ({"mis_embedding": "nosuch_module_x:embed"}, "nosuch_module_x"),
                                            ({"mis_references": 0}, "mis_references=0"),
                                            ({"mis_temperature": -1.0}, "mis_temperature=-1.0")])
def test_run_validation_refuses_bad_mis_settings(settings, match):
    with pytest.raises(ValueError, match=match):
        check_metrics(OmegaConf.structured(MetricsConf(**settings)))
    check_metrics(OmegaConf.structured(MetricsConf()))


def test_pick_queries_pools_and_errors():
    acts = np.arange(100.0)
    strong, weak = mis.pick_queries(acts, 30, exclude=[99, 98], fraction=0.1, seed=0)
    assert set(strong) <= set(range(89, 98)) and set(weak) <= set(range(9))  # pools of int(0.1 * 98) = 9
    assert len(strong) == len(weak) == 30 and len(set(strong[:9])) == 9
    with pytest.raises(ValueError, match="too few"):
        mis.pick_queries(np.arange(3.0), 5, exclude=[0, 1])
    with pytest.raises(ValueError, match="as many strong as weak"):
        mis.mis_proxy(torch.rand(2, 3, 8, 8), torch.rand(3, 3, 8, 8), torch.rand(2, 3, 8, 8))


def test_rf_crops_cut_the_field_and_pad_grey_outside():
    from methods.receptive_field import ReceptiveField
    rf = ReceptiveField(size=4, stride=2, offset=-1)  # position (r, c) sees rows [2r - 1, 2r + 3)
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8) / 1000
    crops = mis.rf_crops(images, torch.tensor([[1, 2], [0, 0]]), rf)
    assert crops.shape == (2, 3, 4, 4)
    assert torch.equal(crops[0], images[0, :, 1:5, 3:7])
    assert torch.equal(crops[1, :, 1:, 1:], images[1, :, 0:3, 0:3])
    assert (crops[1, :, 0] == 0.5).all() and (crops[1, :, :, 0] == 0.5).all()
    assert mis.rf_crops(images, torch.tensor([[1, 2], [0, 0]]), rf, side=8).shape == (2, 3, 8, 8)
    with pytest.raises(ValueError, match="positions"):
        mis.rf_crops(images, torch.tensor([1, 2]), rf)
    # a field larger than the image is cut as top_patches cuts it: the image itself, not a small image in grey
    whole = mis.rf_crops(images[:1], torch.tensor([[0, 0]]), ReceptiveField(size=12, stride=1, offset=-2))
    assert torch.equal(whole[0], images[0])


def test_hue_of_grey_pixels_does_not_count():
    grey = torch.full((1, 3, 16, 16), 0.5)
    tinted = grey.clone()
    tinted[:, 0] += 0.01  # barely reddish and barely bluish greys: opposite hues, both near saturation 0
    bluish = grey.clone()
    bluish[:, 2] += 0.01
    a, b = mis.default_embed(tinted), mis.default_embed(bluish)
    assert np.allclose(a, b, atol=0.05)  # unweighted, their hue histograms fill different bins


def test_pick_queries_never_draws_an_image_whose_activation_is_nan():
    acts = np.arange(100.0)
    acts[[95, 3]] = np.nan  # np.argsort puts NaN last, among the weakest: it must be in neither pool
    strong, weak = mis.pick_queries(acts, 50, fraction=0.1, seed=0)
    assert not {95, 3} & (set(strong) | set(weak))
    assert set(strong) == set(range(90, 100)) - {95} and set(weak) == set(range(10)) - {3}  # pools of int(0.1 * 98) = 9
    with pytest.raises(ValueError, match="too few"):
        mis.pick_queries(np.full(10, np.nan), 5)
