"""The planted CNN: its planted units prefer their ground truth, and top shapes images of conv2 units match their class."""
import pytest
import torch

from experiments.data.shapes import CLASSES, make_shapes
from experiments.zoo.planted import FILTERS, PLANTED2, RF2, build_planted, place_at_centre
from methods.base import Normalize, truncate


@pytest.fixture(scope="module")
def spec():
    return build_planted()


def _centre(spec, layer: str, images: torch.Tensor) -> torch.Tensor:
    """Pre-ReLU responses [N, C] of `layer`'s centre unit to display images [N, 3, 64, 64]."""
    with torch.no_grad():
        acts = truncate(spec.model, layer, Normalize(spec.mean, spec.std))(images)
    return acts[:, :, acts.shape[2] // 2, acts.shape[3] // 2]


def _as_display(pattern: torch.Tensor) -> torch.Tensor:
    """Input-space pattern -> display image under the model's mean 0.5 / std 0.5."""
    return 0.5 + 0.5 * pattern


def test_spec_fields(spec):
    assert spec.input_size == 64 and spec.mean == (0.5, 0.5, 0.5) and spec.std == (0.5, 0.5, 0.5)
    assert spec.default_targets == {"conv1": list(range(len(FILTERS))), "conv2": list(range(len(PLANTED2)))}
    assert spec.unit_classes == {("conv2", 0): "cross", ("conv2", 1): "corner", ("conv2", 2): "red_green"}
    assert spec.model(torch.zeros(2, 3, 64, 64)).shape == (2, len(CLASSES)) == (2, spec.num_classes)
    for layer, units in spec.default_targets.items():
        for u in units:
            gt = spec.ground_truth(layer, u)
            assert gt.shape == ((3, 11, 11) if layer == "conv1" else (3, RF2, RF2))
            assert gt.min() >= 0 and gt.max() <= 1 and gt.std() > 0.05
    with pytest.raises(ValueError, match="no ground truth"):
        spec.ground_truth("conv2", 5)


def test_conv1_filters_zero_mean_unit_norm(spec):
    w = spec.model.conv1.weight.detach()
    assert torch.allclose(w.flatten(1).norm(dim=1), torch.ones(len(FILTERS)), atol=1e-5)
    assert w.flatten(1).sum(1).abs().max() < 1e-5
    grey = torch.full((1, 3, 64, 64), 0.7)
    assert _centre(spec, "conv1", grey).abs().max() < 1e-4  # every filter ignores uniform grey


def test_conv1_own_filter_is_the_maximum(spec):
    """By Cauchy-Schwarz each unit's own unit-norm filter maximizes its centre response over unit-norm inputs."""
    w = spec.model.conv1.weight.detach()
    own = torch.stack([place_at_centre("conv1", _as_display(f)) for f in w])
    resp_own = _centre(spec, "conv1", own)
    assert torch.allclose(resp_own.diagonal(), torch.ones(len(FILTERS)), atol=1e-4)
    off_diag = resp_own - torch.eye(len(FILTERS)) * 10
    assert off_diag.max() < 1 - 1e-3  # other filters, also unit norm, score less
    noise = torch.randn(256, *w.shape[1:], generator=torch.Generator().manual_seed(0))
    noise = noise / noise.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    resp_noise = _centre(spec, "conv1", torch.stack([place_at_centre("conv1", _as_display(x)) for x in noise]))
    assert resp_noise.max() < 0.5


def test_conv1_ground_truth_is_the_filter(spec):
    for u in range(len(FILTERS)):
        gt = spec.ground_truth("conv1", u) * 2 - 1
        w = spec.model.conv1.weight[u].detach()
        assert torch.nn.functional.cosine_similarity(gt.flatten(), w.flatten(), dim=0) > 0.999


def test_conv2_prefers_its_ground_truth(spec):
    """Each planted conv2 unit: own ground truth > other planted units' ground truths > random, all at equal norm."""
    patterns = torch.stack([spec.ground_truth("conv2", u) * 2 - 1 for u in range(len(PLANTED2))])
    norm = patterns.flatten(1).norm(dim=1).mean()
    patterns = patterns / patterns.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * norm
    noise = torch.randn(128, 3, RF2, RF2, generator=torch.Generator().manual_seed(0))
    noise = noise / noise.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * norm
    show = lambda ps: torch.stack([place_at_centre("conv2", _as_display(p)) for p in ps])  # noqa: E731
    resp = _centre(spec, "conv2", show(patterns))[:, : len(PLANTED2)]
    resp_noise = _centre(spec, "conv2", show(noise))[:, : len(PLANTED2)]
    for u in range(len(PLANTED2)):
        others = torch.cat([resp[:u, u], resp[u + 1 :, u]])
        assert resp[u, u] > others.max() + 0.1, (PLANTED2[u], resp[:, u])
        assert resp[u, u] > resp_noise[:, u].max() + 0.1, (PLANTED2[u], resp_noise[:, u].max())


@pytest.mark.parametrize("seed", [0, 1])
def test_conv2_top9_shapes_are_its_class(spec, seed):
    """The check top-patch methods are held to: a planted unit's 9 best shapes images (max over space) are its class."""
    data = make_shapes(512, seed=seed)
    with torch.no_grad():
        acts = truncate(spec.model, "relu2", Normalize(spec.mean, spec.std))(data.images)
    best = acts.flatten(2).amax(2)
    for (layer, unit), name in spec.unit_classes.items():
        top = best[:, unit].topk(9).indices
        assert (data.labels[top] == CLASSES.index(name)).sum() >= 8, (name, data.labels[top])
        assert best[top, unit].min() > 0


def test_fc_logit_of_planted_class_is_unit_max(spec):
    data = make_shapes(64, seed=3)
    with torch.no_grad():
        logits = spec.model(data.images * 2 - 1)
        relu2 = truncate(spec.model, "relu2")(data.images * 2 - 1).flatten(2).amax(2)
    for u, name in enumerate(PLANTED2):
        assert torch.allclose(logits[:, CLASSES.index(name)], relu2[:, u])
