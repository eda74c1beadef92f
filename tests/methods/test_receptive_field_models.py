"""Receptive fields of torchvision classifiers: the traced and the measured field agree; the methods use `field`."""
from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn

from methods import occlusion, top_patches
from methods.base import Target, layer_shape, truncate
from methods.receptive_field import GlobalField, ReceptiveField, box, empirical_field, receptive_field
from tests.methods.test_receptive_field import Plain, TinyViT, Untraceable, Up


@pytest.fixture(autouse=True)
def seeded() -> None:
    """Fixed random weights: with 4 channels, some draws leave ReLUs dead for every input (a smaller support)."""
    torch.manual_seed(0)


def _model(name: str) -> nn.Module:
    """A torchvision classifier with random weights, in eval mode."""
    kw = dict(aux_logits=False, init_weights=False) if name in ("googlenet", "inception_v3") else {}
    return torchvision.models.get_model(name, weights=None, **kw).eval()


def _canvas(rf: ReceptiveField) -> int:
    """About the smallest square canvas on which the map's centre and its diagonal neighbour see no border."""
    return max(-2 * rf.offset, 2 * (rf.offset + rf.size + rf.stride)) + 2 * rf.stride


def _agree(model: nn.Module, layer: str, size: int, grow: bool = True) -> ReceptiveField:
    """Assert the traced and the measured field give the centre neuron the same clipped box and stride (and, the
    box being measured on a canvas large enough, the same size and offset); global branches left out in both.

    `grow`: measure as `field` does, from `size` up by factors of 2; else on one canvas just large enough (faster).
    """
    try:
        rf, ignore = receptive_field(model, layer, size), False
    except GlobalField:
        rf, ignore = receptive_field(model, layer, size, ignore_global=True), True
    net = truncate(model, layer)
    if grow:
        measured = empirical_field(net, (3, size, size), grow=2 ** max(0, math.ceil(math.log2(_canvas(rf) / size))), ignore_global=ignore)
    else:
        canvas = max(size, 32 * math.ceil(_canvas(rf) / 32))
        measured = empirical_field(net, (3, canvas, canvas), grow=1, ignore_global=ignore)
    h, w = layer_shape(model, layer, size)[-2:]
    assert box(measured, h // 2, w // 2, size)[0] == box(rf, h // 2, w // 2, size)[0]
    assert (measured.size, measured.stride, measured.offset) == (rf.size, rf.stride, rf.offset)
    return rf


@pytest.mark.parametrize("name,layer,size", [
    ("resnet18", "layer2", 64),
    ("shufflenet_v2_x0_5", "stage2", 64),  # channel shuffles: size() reads, view, transpose
    ("convnext_tiny", "features.1", 64),  # permutes to [N, H, W, C] and back, LayerNorm over channels
    ("googlenet", "inception3b", 64),  # functional max pools with ceil_mode, concatenated branches
    ("inception_v3", "Mixed_5b", 96),  # functional avg and max pools
    ("densenet121", "features.transition1", 64),
    ("mobilenet_v3_small", "features.3", 64),  # squeeze-excitation gates: left out in both
])
def test_traced_and_measured_fields_agree(name: str, layer: str, size: int) -> None:
    _agree(_model(name), layer, size)


def _layers(model: nn.Module, size: int) -> list[str]:
    """Layers with a square map larger than 1x1 as output ([N, C, H, W] by the last two dims), in forward order."""
    order: list[tuple[str, tuple]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, o, n=n: order.append((n, tuple(o.shape))) if torch.is_tensor(o) else None)
             for n, m in model.named_modules() if n]
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    first: dict[str, tuple] = {}
    for n, shape in order:
        first.setdefault(n, shape)
    return [n for n, shape in first.items() if len(shape) == 4 and shape[-1] == shape[-2] > 1]


@pytest.mark.slow
@pytest.mark.parametrize("name", torchvision.models.list_models(module=torchvision.models))
@pytest.mark.parametrize("depth", [1 / 3, 2 / 3])
def test_every_classifier_agrees_where_both_apply(name: str, depth: float) -> None:
    model = _model(name)
    size = {"inception_v3": 96, "maxvit_t": 224}.get(name, 224 if name.startswith("vit") else 64)  # the least they take
    layers = _layers(model, size)
    layer = layers[int(len(layers) * depth)]
    try:
        rf = receptive_field(model, layer, size, ignore_global=True)
    except ValueError as err:
        pytest.skip(f"the graph does not apply: {err}")
    if _canvas(rf) > 768:
        pytest.skip(f"{layer}'s {rf.size} px field needs a canvas over 768 px to be measured")
    _agree(model, layer, size, grow=False)


# --- the methods use the field, with its fallback ---------------------------------------------------------------


def test_top_patches_crop_fields_larger_than_the_image_to_it() -> None:
    images = torch.rand(6, 3, 32, 32)
    vis = top_patches.visualize(Plain(), images, Target("conv3", (0, 1), "neuron", position=(2, 2)), k=2)
    assert vis.rf == ReceptiveField(45, 8, -20) and vis.rf_exceeds_image and vis.rf_method == "graph"
    # position (2, 2) sees [-4, 41): clipped, the whole image, shown as it is rather than 32 px inside 45 px of grey
    assert (vis.boxes == torch.tensor([0, 0, 32, 32])).all() and (vis.boxes_unclipped[..., 2] == 41).all()
    for crop, i in zip(vis.images, vis.indices.flatten().tolist()):
        assert torch.equal(crop, images[i])


def test_top_patches_measure_the_field_where_the_graph_cannot() -> None:
    images = torch.rand(4, 3, 32, 32)
    vis = top_patches.visualize(Untraceable(), images, Target("out", (0,)), k=2)
    assert vis.rf == ReceptiveField(45, 8, -20, "gradient") and vis.rf_method == "gradient" and vis.rf_exceeds_image
    vit = top_patches.visualize(TinyViT(32), images, Target("out", (0,)), k=2)
    assert vit.rf.whole_image and vit.rf_method == "gradient" and (vit.boxes == torch.tensor([0, 0, 32, 32])).all()
    assert all(torch.equal(c, images[i]) for c, i in zip(vit.images, vit.indices.flatten().tolist()))


def test_occlusion_skips_windows_outside_the_measured_field() -> None:
    torch.manual_seed(0)
    images = torch.rand(1, 3, 48, 48)
    model, target = Untraceable(), Target("out", (0,), "neuron", position=(1, 1))
    skip = occlusion.visualize(model, images, target, window=8, stride=8)
    full = occlusion.visualize(model, images, target, window=8, stride=8, skip_outside_rf=False)
    # (1, 1) sees [-12, 33): windows starting at 40 are outside; their drop is exactly zero
    assert skip.perturbations == 5 * 5 < full.perturbations == 6 * 6
    torch.testing.assert_close(skip.maps, full.maps, atol=1e-6, rtol=0)
    assert full.maps.abs().max() > 1e-3


def test_occlusion_evaluates_every_window_where_the_field_is_the_whole_image() -> None:
    vis = occlusion.visualize(Up("nearest", 1.5), torch.rand(1, 3, 24, 24), Target("head", (0,), "neuron"), window=4, stride=4)
    assert bool(vis.evaluated.all())  # a field that depends on the position: the whole image, never a wrong box
    vis = occlusion.visualize(TinyViT(24), torch.rand(1, 3, 24, 24), Target("out", (0,), "neuron"), window=4, stride=4)
    assert bool(vis.evaluated.all())  # attention: the field is the whole image, every window is evaluated
