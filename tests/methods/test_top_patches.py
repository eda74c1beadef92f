"""Top patches: streaming top-k equals brute force, per_image caps, crops are the receptive-field boxes."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
import yaml
from torch import Tensor, nn

from methods import top_patches
from methods.base import Target, truncate
from tests.conftest import small_net

CONF = Path(__file__).resolve().parents[2] / "conf" / "method" / "top_patches.yaml"
UNITS = (0, 3, 5)


@pytest.fixture
def data() -> Tensor:
    torch.manual_seed(3)
    return torch.rand(13, 3, 16, 16)


def _all_acts(model: nn.Module, images: Tensor, layer: str = "conv2") -> Tensor:
    """Brute force: every activation [N, U, h, w] of the units."""
    with torch.no_grad():
        return truncate(model, layer)(images)[:, list(UNITS)]


def _brute(acts: Tensor, k: int, per_image: int | None) -> list[list[tuple[float, int, int]]]:
    """Per unit, the k best (value, image, flat position) taking at most per_image per image."""
    n, u, h, w = acts.shape
    out = []
    for j in range(u):
        ranked = sorted(((acts[i, j].flatten()[p].item(), i, p) for i in range(n) for p in range(h * w)), reverse=True)
        taken, count = [], {}
        for v, i, p in ranked:
            if per_image is None or count.get(i, 0) < per_image:
                taken.append((v, i, p))
                count[i] = count.get(i, 0) + 1
            if len(taken) == k:
                break
        out.append(taken)
    return out


def _as_list(vis, w: int) -> list[list[tuple[float, int, int]]]:
    """The visualization's winners in the brute-force format."""
    a, i, p = vis.activations, vis.indices, vis.positions
    return [[(a[u, j].item(), int(i[u, j]), int(p[u, j, 0] * w + p[u, j, 1])) for j in range(a.shape[1])] for u in range(a.shape[0])]


@pytest.mark.parametrize("mode,per_image,k", [("max", 1, 5), ("location", 1, 5), ("location", 3, 7), ("location", None, 6)])
def test_topk_equals_brute_force(data: Tensor, mode: str, per_image: int | None, k: int) -> None:
    model = small_net()
    vis = top_patches.visualize(model, data, Target("conv2", UNITS), k=k, per_image=per_image, mode=mode, batch_size=4)
    expected = _brute(_all_acts(model, data), k, per_image)
    got = _as_list(vis, 8)
    for e, g in zip(expected, got):
        assert [x[1:] for x in g] == [x[1:] for x in e]
        torch.testing.assert_close(torch.tensor([x[0] for x in g]), torch.tensor([x[0] for x in e]))
    torch.testing.assert_close(vis.values["topk_mean_activation"], vis.activations.mean(1))


def test_per_image_caps_winners_per_image(data: Tensor) -> None:
    vis = top_patches.visualize(small_net(), data, Target("conv2", UNITS), k=9, per_image=2, mode="location")
    for row in vis.indices:
        assert torch.bincount(row).max() <= 2
    distinct = top_patches.visualize(small_net(), data, Target("conv2", UNITS), k=9)
    for row in distinct.indices:
        assert len(set(row.tolist())) == 9


def test_stream_equals_tensor(data: Tensor) -> None:
    target = Target("conv2", UNITS)
    whole = top_patches.visualize(small_net(), data, target, k=4, batch_size=100)
    stream = top_patches.visualize(small_net(), ((b, None) for b in data.split(3)), target, k=4)
    for key in ("indices", "positions", "boxes", "boxes_unclipped", "context"):
        assert torch.equal(getattr(whole, key), getattr(stream, key)), key
    assert torch.equal(whole.images, stream.images)
    assert stream.images_processed == len(data)


def test_crops_equal_the_box_region(data: Tensor) -> None:
    vis = top_patches.visualize(small_net(), data, Target("conv2", UNITS), k=6, mode="location", per_image=None)
    rf = vis.rf
    assert (rf.size, rf.stride, rf.offset) == (8, 2, -3)
    assert vis.images.shape == (len(UNITS) * 6, 3, 8, 8)
    boxes, full, idx = vis.boxes.flatten(0, 1), vis.boxes_unclipped.flatten(0, 1), vis.indices.flatten()
    assert (boxes != full).any(dim=1).sum() >= 3  # some crops stick out of the image and are padded
    for crop, (t, l, b, r), (ft, fl, fb, fr), i in zip(vis.images, boxes.tolist(), full.tolist(), idx.tolist()):
        expected = torch.full((3, fb - ft, fr - fl), 0.5)
        expected[:, t - ft:b - ft, l - fl:r - fl] = data[i][:, t:b, l:r]
        assert torch.equal(crop, expected)


def test_rectangular_field_boxes_and_square_crops(data: Tensor) -> None:
    # a 3x5 kernel: every box is 3 rows by 5 columns, each crop that box padded grey above and below to 5x5
    model = nn.Sequential(nn.Conv2d(3, 6, (3, 5), padding=(1, 2)))
    vis = top_patches.visualize(model, data, Target("0", UNITS), k=4, mode="location", per_image=None)
    full = vis.boxes_unclipped.flatten(0, 1)
    assert vis.rf.sizes == (3, 5) and ((full[:, 2] - full[:, 0]) == 3).all() and ((full[:, 3] - full[:, 1]) == 5).all()
    assert vis.images.shape == (len(UNITS) * 4, 3, 5, 5)
    for crop, (t, l, b, r), (ft, fl, fb, fr), i in zip(vis.images, vis.boxes.flatten(0, 1).tolist(), full.tolist(), vis.indices.flatten().tolist()):
        expected = torch.full((3, 5, 5), 0.5)
        expected[:, 1 + t - ft:1 + b - ft, l - fl:r - fl] = data[i][:, t:b, l:r]
        assert torch.equal(crop, expected)


def test_box_contains_gradient_support(data: Tensor) -> None:
    model = small_net()
    vis = top_patches.visualize(model, data, Target("conv2", UNITS), k=3)
    net = truncate(model, "conv2")
    for u, unit in enumerate(UNITS):
        for j in range(3):
            i, (r, c) = int(vis.indices[u, j]), vis.positions[u, j].tolist()
            x = data[i:i + 1].clone().requires_grad_(True)
            net(x)[0, unit, r, c].backward()
            support = x.grad[0].abs().sum(0) > 0
            t, l, b, rr = vis.boxes[u, j].tolist()
            inside = torch.zeros_like(support)
            inside[t:b, l:rr] = True
            assert support.any() and not (support & ~inside).any()


def test_context_outlines_box_in_grey(data: Tensor) -> None:
    vis = top_patches.visualize(small_net(), data, Target("conv2", (1,)), k=2)
    for ctx, (t, l, b, r), i in zip(vis.context, vis.boxes[0].tolist(), vis.indices[0].tolist()):
        assert (ctx[:, t, l:r] == 0.5).all() and (ctx[:, b - 1, l:r] == 0.5).all() and (ctx[:, t:b, l] == 0.5).all()
        outside = torch.ones(16, 16, dtype=torch.bool)
        outside[t:b, l:r] = False
        assert torch.equal(ctx[:, outside], data[i][:, outside])


def test_neuron_target_competes_at_its_position(data: Tensor) -> None:
    vis = top_patches.visualize(small_net(), data, Target("conv2", (2,), "neuron", position=(1, 6)), k=4)
    assert (vis.positions == torch.tensor([1, 6])).all()
    acts = truncate(small_net(), "conv2")(data)[:, 2, 1, 6].detach()
    torch.testing.assert_close(vis.activations[0], acts.topk(4).values)


def test_fewer_candidates_than_k_and_crop_size(data: Tensor) -> None:
    vis = top_patches.visualize(small_net(), data[:2], Target("conv2", UNITS), k=9, crop_size=24)
    assert vis.indices.shape == (3, 2) and vis.images.shape == (6, 3, 24, 24)
    assert vis.images.min() >= 0 and vis.images.max() <= 1


@pytest.mark.parametrize("target,kw,match", [
    (Target("conv2", (0,), "class"), {}, "kind"),
    (Target("conv2", (0,)), dict(mode="avg"), "unknown mode 'avg'"),
    (Target("conv2", (0,)), dict(per_image=2), "per_image=2"),
    (Target("conv2", (9,)), {}, "unit index 9"),
    (Target("fc", (0,)), {}, "conv layer"),
    (Target("conv2", (0,)), dict(k=0), "k=0"),
    (Target("conv2", (0,), "neuron", position=(8, 0)), {}, "position"),
])
def test_bad_arguments_raise_one_line(data: Tensor, target: Target, kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        top_patches.visualize(small_net(), data, target, **kw)


def test_config_params_are_keyword_arguments() -> None:
    cfg = yaml.safe_load(CONF.read_text())
    assert cfg["name"] == "top_patches" and cfg["preset"] == "default"
    kwargs = {k for k, p in inspect.signature(top_patches.visualize).parameters.items() if p.kind is p.KEYWORD_ONLY}
    assert set(cfg["params"]) <= kwargs


@pytest.mark.parametrize("mode,per_image", [("max", 1), ("location", 2)])
def test_nan_activations_rank_last(data: Tensor, mode: str, per_image: int) -> None:
    data = data.clone()
    data[4] = float("nan")  # every activation of image 4 is NaN; torch.topk would rank it first
    vis = top_patches.visualize(small_net(), data, Target("conv2", UNITS), k=5, mode=mode, per_image=per_image, batch_size=4)
    assert 4 not in vis.indices.tolist()[0] and torch.isfinite(vis.activations).all()
    clean = top_patches.visualize(small_net(), data[torch.arange(13) != 4], Target("conv2", UNITS), k=5, mode=mode,
                                  per_image=per_image)
    torch.testing.assert_close(vis.activations, clean.activations)


@pytest.mark.parametrize("mode,per_image", [("max", 1), ("location", 2)])
def test_minimize_returns_the_k_lowest_activations(data: Tensor, mode: str, per_image: int) -> None:
    model = small_net()
    vis = top_patches.visualize(model, data, Target("conv2", UNITS), k=5, per_image=per_image, mode=mode, minimize=True)
    acts = _all_acts(model, data)
    expected = _brute(-acts, 5, per_image)  # the k best of the negated activations
    for e, g in zip(expected, _as_list(vis, 8)):
        assert [x[1:] for x in g] == [x[1:] for x in e]
        torch.testing.assert_close(torch.tensor([x[0] for x in g]), -torch.tensor([x[0] for x in e]))  # raw values
    top = top_patches.visualize(model, data, Target("conv2", UNITS), k=5, per_image=per_image, mode=mode)
    assert (vis.activations.max(1).values < top.activations.min(1).values).all()
    assert vis.images.shape == top.images.shape  # crops at the lowest positions, as for the highest
