"""The automatic 2AFC (MIS proxy) on a synthetic unit that responds to redness."""
import numpy as np
import pytest
import torch

from experiments.metrics import mis


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


def test_explanation_of_strongest_images_beats_chance():
    images, acts, _ = _data()
    top = torch.argsort(acts, descending=True)[:9]
    strong, weak = mis.pick_queries(acts, 60, exclude=top, fraction=0.3, seed=0)
    assert not set(top.tolist()) & set(strong.tolist() + weak.tolist())
    assert mis.mis_proxy(images[top], images[strong], images[weak]) > 0.9


def test_explanation_blind_to_the_unit_scores_chance():
    images, acts, horizontal = _data()
    red = acts > 0
    # balanced colours, all horizontal stripes: it carries the stripes, not what the unit responds to
    expl = torch.cat([torch.nonzero(red & horizontal)[:5, 0], torch.nonzero(~red & horizontal)[:5, 0]])
    strong, weak = mis.pick_queries(acts, 200, exclude=expl, fraction=0.4, seed=1)
    assert mis.mis_proxy(images[expl], images[strong], images[weak]) == pytest.approx(0.5, abs=0.15)


def test_random_explanations_average_to_chance():
    images, acts, _ = _data()
    scores = []
    for seed in range(10):
        expl = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:9]
        strong, weak = mis.pick_queries(acts, 40, exclude=expl, fraction=0.3, seed=seed)
        scores.append(mis.mis_proxy(images[expl], images[strong], images[weak]))
    assert np.mean(scores) == pytest.approx(0.5, abs=0.2)


def test_custom_embedding_and_ties():
    images, acts, _ = _data(40)
    strong, weak = mis.pick_queries(acts, 10, fraction=0.25)
    def redness(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x[:, 0].mean((1, 2)) - x[:, 2].mean((1, 2)), torch.full((len(x),), 0.5)], 1)

    assert mis.mis_proxy(images[acts > 0][:3], images[strong], images[weak], embed=redness) == 1.0
    constant = lambda x: torch.ones(len(x), 4)  # noqa: E731
    assert mis.mis_proxy(images[:3], images[strong], images[weak], embed=constant) == 0.5


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
