"""A small CNN with constructed weights, so each planted unit's preferred stimulus is known.

Input: 64 px RGB, normalized with mean 0.5 / std 0.5 (input = 2 * image - 1, so grey 0.5 is 0).
- conv1 (12 filters, 11 px, stride 1): even Gabor line detectors at 4 orientations x 2 polarities (grey, the
  same on R, G, B) and 4 colour-opponent Gaussian blobs; zero-mean, unit norm, no bias.
- relu1, pool1 (max 2x2): conv2 sees a 28 px receptive field.
- conv2 (8 channels, 9x9 on the pooled map, bias -0.25): channel 0 detects crosses, 1 top-left corners, 2 a red
  blob left of a green one, wired from conv1 units at known offsets (see conv2_planted) and scaled to respond 1
  to their ground truth; the other channels hold small seeded random weights.
- relu2, pool2 (global max), fc: the logit of each planted unit's shapes class is that unit's max response
  (the other classes' logits are 0).
Ground truth: conv1, the filter; conv2, the sum of the conv1 filters its positive weights point at, placed at
their offsets (`compose`): a cross, a corner, a red-green pair drawn with Gabor lines / colour blobs.
The shapes data (experiments/data/shapes.py) is drawn so that these units pick out their classes: bright lines
match the Gabor width, gratings are finer than the Gabors pass, red_green is isoluminant.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from skimage.filters import gabor_kernel
from torch import Tensor, nn

from experiments.data.shapes import CLASSES
from experiments.zoo.spec import ModelSpec
from methods.base import invalid_choice

K1, K2 = 11, 9  # conv1 and conv2 kernel sizes
RF2 = 2 * (K2 - 1) + K1 + 1  # conv2 receptive field in input pixels: 28
ORIENTATIONS = {"h": 90.0, "d45": 45.0, "v": 0.0, "d135": 135.0}  # line orientation -> Gabor theta (degrees)
OPPONENTS = {"red-green": (1.0, -1.0, 0.0), "green-red": (-1.0, 1.0, 0.0),
             "blue-yellow": (-0.5, -0.5, 1.0), "yellow-blue": (0.5, 0.5, -1.0)}
FILTERS = tuple(f"{o}{p}" for o in ORIENTATIONS for p in "+-") + tuple(OPPONENTS)
PLANTED2 = ("cross", "corner", "red_green")  # conv2 channels 0, 1, 2 and the shapes class each detects
N2 = 8


def _unit(w: np.ndarray) -> np.ndarray:
    """`w` made zero-mean and scaled to unit norm."""
    w = w - w.mean()
    return w / np.linalg.norm(w)


def _gabor(theta_deg: float) -> np.ndarray:
    """Even (cosine) Gabor line detector, wavelength 8 px, 11x11, zero-mean, unit norm, on R, G and B alike."""
    k = gabor_kernel(1 / 8, theta=math.radians(theta_deg), sigma_x=2.5, sigma_y=3.5, n_stds=3).real
    c, h = k.shape[0] // 2, K1 // 2
    return _unit(np.repeat(k[None, c - h : c + h + 1, c - h : c + h + 1], 3, axis=0))


def _opponent(weights: tuple[float, float, float]) -> np.ndarray:
    """A Gaussian blob (sigma 2.5 px) weighted per channel; the channel weights sum to 0, so grey gives 0."""
    r = np.arange(K1) - K1 // 2
    blob = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 2.5**2))
    w = np.asarray(weights)[:, None, None] * blob[None]
    return w / np.linalg.norm(w)


def conv1_filters() -> Tensor:
    """The conv1 bank [12, 3, 11, 11], in the order of FILTERS."""
    bank = [s * _gabor(theta) for theta in ORIENTATIONS.values() for s in (1, -1)]
    bank += [_opponent(w) for w in OPPONENTS.values()]
    return torch.tensor(np.stack(bank), dtype=torch.float32)


def _wire(terms: list[tuple[str, list[tuple[int, int]], float]]) -> Tensor:
    """conv2 weights [12, 9, 9] from (conv1 filter, pooled offsets (dy, dx) from the centre, weight) terms."""
    w = torch.zeros(len(FILTERS), K2, K2)
    for name, offsets, weight in terms:
        for dy, dx in offsets:
            w[FILTERS.index(name), K2 // 2 + dy, K2 // 2 + dx] += weight
    return w


def conv2_planted() -> Tensor:
    """Weights [3, 12, 9, 9] of the planted conv2 units (cross, corner, red_green), before scaling.

    Offsets are on the pooled map (1 = 2 input px). cross: bright horizontal and vertical lines on all four arms
    2-4 from the centre (the junction itself is left out, as a corner has one too). corner: lines going right and
    down from the centre, minus lines going left and up (so a straight line through the centre gives 0).
    red_green: red-green left of centre and green-red right of it, minus the swapped pair.
    """
    arms = [d for a in (2, 3, 4) for d in (a, -a)]
    cross = _wire([("h+", [(0, d) for d in arms], 1.0), ("v+", [(d, 0) for d in arms], 1.0)])
    out, back = range(0, 5), range(3, 5)
    corner = _wire([("h+", [(0, d) for d in out], 1.0), ("v+", [(d, 0) for d in out], 1.0),
                    ("h+", [(0, -d) for d in back], -len(out) / len(back)),
                    ("v+", [(-d, 0) for d in back], -len(out) / len(back))])
    left = [(dy, -dx) for dy in (-1, 0, 1) for dx in (2, 3, 4)]
    right = [(dy, -dx) for dy, dx in left]
    red_green = _wire([("red-green", left, 1.0), ("green-red", right, 1.0),
                       ("red-green", right, -1.0), ("green-red", left, -1.0)])
    return torch.stack([cross, corner, red_green])


def compose(w2: Tensor, bank: Tensor) -> Tensor:
    """Input-space pattern [3, 28, 28] summing each conv1 filter at its conv2 offset, weighted by the positive weights."""
    out = torch.zeros(3, RF2, RF2)
    for c, dy, dx in torch.nonzero(w2 > 0).tolist():
        y, x = 2 * dy, 2 * dx  # pooled offset -> input pixels (pool stride 2)
        out[:, y : y + K1, x : x + K1] += w2[c, dy, dx] * bank[c]
    return out


class PlantedCNN(nn.Module):
    """conv1 -> relu1 -> pool1 -> conv2 -> relu2 -> pool2 (global max) -> fc; weights set by build_planted."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, len(FILTERS), K1, padding=K1 // 2, bias=False)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(len(FILTERS), N2, K2, padding=K2 // 2)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(N2, len(CLASSES))

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        return self.fc(self.pool2(self.relu2(self.conv2(x))).flatten(1))


def place_at_centre(layer: str, image: Tensor, size: int = 64) -> Tensor:
    """A grey [3, size, size] display image with `image` [3, h, w] where `layer`'s centre unit sees it.

    The centre unit is (size // 2, size // 2) on conv1's map and (size // 4, size // 4) on conv2's map.
    """
    starts = {"conv1": size // 2 - K1 // 2, "conv2": 2 * (size // 4) - 2 * (K2 // 2) - K1 // 2}
    if layer not in starts:
        raise invalid_choice("planted layer", layer, starts, " (the layers with a planted receptive field)")
    canvas = torch.full((3, size, size), 0.5)
    top = starts[layer]
    canvas[:, top : top + image.shape[1], top : top + image.shape[2]] = image
    return canvas


def _centre_response(model: PlantedCNN, image: Tensor) -> Tensor:
    """Pre-ReLU conv2 responses [8] at the centre of the map to a display image [3, 28, 28] on grey."""
    x = place_at_centre("conv2", image)[None] * 2 - 1
    return model.conv2(model.pool1(model.relu1(model.conv1(x))))[0, :, 16, 16]


def _display(pattern: Tensor) -> Tensor:
    """Input-space pattern mapped to a [0, 1] image with grey 0.5 = zero input, scaled to fill the range."""
    return 0.5 + 0.5 * pattern / pattern.abs().max()


def build_planted() -> ModelSpec:
    """The planted CNN with its ground truth, planted units (default_targets) and the class each conv2 unit detects."""
    model = PlantedCNN()
    bank = conv1_filters()
    planted = conv2_planted()
    g = torch.Generator().manual_seed(0)
    w2 = torch.cat([planted, 0.01 * torch.randn(N2 - len(planted), *planted.shape[1:], generator=g)])
    with torch.no_grad():
        model.conv1.weight.copy_(bank)
        model.conv2.weight.copy_(w2)
        model.conv2.bias.zero_()
        gt2 = [_display(compose(w, bank)) for w in planted]
        peak = torch.stack([_centre_response(model, image)[u] for u, image in enumerate(gt2)])
        model.conv2.weight[: len(planted)] /= peak.view(-1, 1, 1, 1)  # each planted unit gives 1 on its ground truth
        model.conv2.bias[: len(planted)] = -0.25
        model.fc.weight.zero_()
        model.fc.bias.zero_()
        for u, name in enumerate(PLANTED2):
            model.fc.weight[CLASSES.index(name), u] = 1.0

    def ground_truth(layer: str, unit: int) -> Tensor:
        """Preferred stimulus [3, h, w] in [0, 1] over the unit's receptive field."""
        if layer == "conv1" and 0 <= unit < len(FILTERS):
            return _display(bank[unit])
        if layer == "conv2" and 0 <= unit < len(PLANTED2):
            return gt2[unit]
        raise ValueError(f"no ground truth for {layer!r} unit {unit}; planted: conv1 0..{len(FILTERS) - 1}, "
                         f"conv2 0..{len(PLANTED2) - 1}")

    return ModelSpec(
        name="planted", model=model.eval(), weights="built-in", input_size=64, mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5), default_targets={"conv1": list(range(len(FILTERS))), "conv2": list(range(len(PLANTED2)))},
        ground_truth=ground_truth, num_classes=len(CLASSES),
        unit_classes={("conv2", u): name for u, name in enumerate(PLANTED2)},
    )
