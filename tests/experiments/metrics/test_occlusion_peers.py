"""Occlusion-map metrics against their peers: Quantus 0.6 (Sparseness, Complexity, PointingGame) and the RISE
authors' CausalMetric protocol (re-implemented here from their evaluation.py), equal on tie-free maps; and the
documented departures, asserted as the specific differences they make."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from experiments.metrics import occlusion

SIZE, STEP = 16, 8  # 3x16x16 images; 256 px is a multiple of the step: 32 steps
HW = SIZE * SIZE


def _model() -> nn.Module:
    """A fixed random conv + linear + softmax classifier of 3x16x16 images (linear weights x 20: confident)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * HW, 5),
                          nn.Softmax(dim=1)).eval()
    with torch.no_grad():
        model[3].weight.mul_(20)
    return model


def _images(n: int = 4) -> torch.Tensor:
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def _maps(n: int = 4) -> np.ndarray:
    """Tie-free random maps [n, 1, H, W]."""
    return np.random.default_rng(2).random((n, 1, SIZE, SIZE))


def rise_curve(model: nn.Module, image: torch.Tensor, explanation: np.ndarray, mode: str, step: int,
               substrate: torch.Tensor) -> np.ndarray:
    """CausalMetric.single_run of Petsiuk et al.'s evaluation.py: the top class's probability after each step of
    `step` pixels taken in np.argsort order (reversed), deleted into / inserted from the substrate."""
    with torch.no_grad():
        c = int(model(image[None]).argmax(1))
        hw = image.shape[-1] * image.shape[-2]
        n_steps = (hw + step - 1) // step
        image, substrate = image.contiguous().clone(), substrate.contiguous().clone()
        start, finish = (image, substrate) if mode == "del" else (substrate, image)
        order = np.flip(np.argsort(explanation.reshape(-1, hw), axis=1), axis=-1)
        scores = np.empty(n_steps + 1)
        for i in range(n_steps + 1):
            scores[i] = float(model(start[None])[0, c])
            coords = order[:, step * i:step * (i + 1)]
            start.view(3, hw)[:, coords[0].copy()] = finish.view(3, hw)[:, coords[0].copy()]
    return scores


def rise_auc(arr: np.ndarray) -> float:
    """RISE's auc: (sum - first / 2 - last / 2) / (len - 1)."""
    return float((arr.sum() - arr[0] / 2 - arr[-1] / 2) / (arr.shape[0] - 1))


def _prob(model: nn.Module, image: torch.Tensor):
    """Our score callable: the probability of the image's top class."""
    c = int(model(image[None]).argmax(1))
    return lambda x: model(x)[:, c].detach()


@pytest.mark.parametrize("mode", ["del", "ins"])
def test_curve_equals_rise_on_tie_free_maps(mode: str) -> None:
    model, ours_mode = _model(), {"del": "deletion", "ins": "insertion"}[mode]
    worst = 0.0
    for image, m in zip(_images(), _maps()):
        substrate = torch.zeros_like(image) if mode == "del" else occlusion.blurred(image)
        theirs = rise_curve(model, image, m, mode, STEP, substrate)
        x, ours = occlusion.perturbation_curve(_prob(model, image), image, torch.from_numpy(m[0]), ours_mode,
                                               steps=HW // STEP, substrate=substrate)
        assert len(ours) == len(theirs) == HW // STEP + 1
        assert np.allclose(x, np.arange(len(x)) / (len(x) - 1))
        worst = max(worst, np.abs(ours - theirs).max(), abs(occlusion.auc(x, ours) - rise_auc(theirs)))
    assert worst < 1e-6


def test_departure_rise_ties_follow_scan_order_ours_do_not() -> None:
    """On a map constant on 4x4 blocks, mostly 0, RISE's AUC changes when image and map are transposed (argsort
    breaks ties by position); ours does not."""
    model, image = _model(), _images(1)[0]
    g = torch.Generator().manual_seed(3)
    blocks = torch.rand(4, 4, generator=g) * (torch.rand(4, 4, generator=g) > 0.8)
    m = blocks.repeat_interleave(4, 0).repeat_interleave(4, 1).double()
    prob = _prob(model, image)
    model_t = lambda x: model(x.transpose(-1, -2))  # noqa: E731
    zeros = torch.zeros_like(image)
    rise = rise_auc(rise_curve(model, image, m.numpy(), "del", STEP, zeros))
    rise_t = rise_auc(rise_curve(model_t, image.transpose(-1, -2), m.T.numpy(), "del", STEP, zeros))
    ours = occlusion.deletion_auc(prob, image, m, steps=HW // STEP, substrate=0.0)
    ours_t = occlusion.deletion_auc(lambda x: prob(x.transpose(-1, -2)), image.transpose(-1, -2), m.T,
                                    steps=HW // STEP, substrate=0.0)
    assert abs(rise - rise_t) > 0.02
    assert ours == pytest.approx(ours_t, abs=1e-6)


def test_departure_last_short_step_is_weighted_by_its_width() -> None:
    """When H*W is not a multiple of the step, RISE spaces all points 1/n_steps apart though the last step is
    short; ours puts each at its share of pixels. The scores are the same."""
    model, image, m = _model(), _images(1)[0], _maps(1)[0]
    zeros = torch.zeros_like(image)
    theirs = rise_curve(model, image, m, "del", 10, zeros)  # 26 steps, the last of 6 px
    x, ours = occlusion.perturbation_curve(_prob(model, image), image, torch.from_numpy(m[0]), "deletion",
                                           steps=26, substrate=0.0)
    assert np.abs(ours - theirs).max() < 1e-6
    assert x[-2] == pytest.approx(250 / 256)
    assert occlusion.auc(x, ours) == pytest.approx(np.trapezoid(theirs, np.minimum(np.arange(27) * 10, 256) / 256))
    assert occlusion.auc(x, ours) != pytest.approx(rise_auc(theirs), abs=1e-6)


def _quantus():
    quantus = pytest.importorskip("quantus")
    return quantus


def test_sparseness_and_complexity_equal_quantus() -> None:
    quantus = _quantus()
    x, maps = _images().numpy(), _maps()
    y = np.zeros(len(x), dtype=int)
    ours_gini = np.array([occlusion.sparseness(m) for m in maps])
    ours_entropy = np.array([occlusion.complexity(m) for m in maps])
    gini = quantus.Sparseness(normalise=False, disable_warnings=True)(model=None, x_batch=x, y_batch=y,
                                                                       a_batch=maps.copy())
    entropy = quantus.Complexity(normalise=False, disable_warnings=True)(model=None, x_batch=x, y_batch=y,
                                                                          a_batch=maps.copy())
    assert np.abs(ours_gini - gini).max() < 1e-6 and np.abs(ours_entropy - entropy).max() < 1e-6
    # normalise_by_max divides a batch by one shared maximum: one map at a time it is a rescaling, which neither
    # statistic sees
    for i, m in enumerate(maps):
        one = quantus.Sparseness(disable_warnings=True)(model=None, x_batch=x[i:i + 1], y_batch=y[:1],
                                                        a_batch=m[None].copy())
        assert abs(one[0] - ours_gini[i]) < 1e-6


def test_pointing_game_equals_quantus() -> None:
    quantus = _quantus()
    x, maps = _images(8).numpy(), np.random.default_rng(4).random((8, 1, SIZE, SIZE))
    masks = np.zeros_like(maps)
    masks[:, :, 4:12, 2:9] = 1.0
    y = np.zeros(len(x), dtype=int)
    maps[::2, :, 6, 5] = 2.0  # half the maps peak on the object
    tied = maps.copy()
    tied[:, :, 0, 0] = tied.max(axis=(2, 3))  # a tied maximum off the object: still a hit if one is on it
    hits = []
    for batch in (maps, tied):
        theirs = quantus.PointingGame(normalise=False, disable_warnings=True)(
            model=None, x_batch=x, y_batch=y, a_batch=batch.copy(), s_batch=masks)
        ours = np.array([occlusion.pointing_game(m[0], k[0]) for m, k in zip(batch, masks)])
        assert np.abs(ours - np.asarray(theirs, dtype=float)).max() < 1e-6
        hits.append(ours)
    assert hits[0][::2].all() and np.array_equal(hits[0], hits[1])
