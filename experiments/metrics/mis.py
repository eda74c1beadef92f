"""mis_proxy: an automatic 2AFC score after Borowski et al. 2021, modelled on the Machine Interpretability Score.

What MIS is (Zimmermann, Klindt & Brendel, "Measuring Per-Unit Interpretability at Scale Without Humans",
NeurIPS 2024; project page brendel-group.github.io/mis): Borowski et al.'s task without humans. Each task shows
K maximally and K minimally activating references of a unit (the explanation method's output for maximizing
and for minimizing the unit; natural exemplars in the paper; K = 9 of each in Borowski et al.'s task, the
default here) and two queries, one strongly and one weakly activating. Images are compared in DreamSim's
embedding (Fu et al. 2023); a hard-coded binary classifier picks a query; MIS is the mean predicted probability of the correct choice over N tasks, with alpha of the
classifier fitted to the human interpretability annotations of IMI (Zimmermann et al. 2023), per the paper's
experiment setup. The classifier, as two public re-implementations we found (not the authors' code) spell it
out: s(q, E) = mean cosine similarity of query q to the K references E; delta(q) = s(q, E_max) - s(q, E_min);
p(correct) = sigmoid(alpha * (delta(q_strong) - delta(q_weak))). Those re-implementations default to
alpha = 0.16 for DreamSim; we could not read the paper's equation to confirm how alpha scales the difference,
and a value fitted for DreamSim does not carry to another embedding anyway, so it is not used here.

How mis_proxy departs from it:
- embedding: the offline HOG + colour histograms of `default_embed` (metrics.mis_embedding=hog_colour) instead of
  DreamSim, whose weights a benchmark run cannot assume; any perceptual model plugs in as module:function.
- temperature: p = sigmoid(difference / temperature), with HOG_COLOUR_TEMPERATURE calibrated for the default
  embedding by `calibrate_temperature` (the spread of the difference when the references say nothing about
  the unit), not fitted to human annotations; HOG_GREY_TEMPERATURE for 1-channel images, and other channel
  counts (no calibration data) must set metrics.mis_temperature.
- references: the same K max (and K min) references in every task of a unit (the explanation as the method gave
  it, at most K images), where MIS draws fresh exemplars per task; a method without a `minimize` option has
  max references only (delta(q) = s(q, E_max)), and its rows say so.
- queries: strong and weak held-out images (never a reference's source), top and bottom 10% of the data, and,
  where the unit sees only part of an image, shown as the unit sees them: `rf_crops` cuts the receptive field
  around a map position (experiments/scoring/mis.py crops each image at the unit's peak).
Range as MIS: 0.5 = chance, 1 = the references always tell the strong query from the weak one.
"""
from __future__ import annotations

import importlib
from typing import Callable

import numpy as np
import torch
from skimage.color import rgb2gray, rgb2hsv
from skimage.feature import hog
from skimage.transform import resize

from methods.base import invalid_choice, one_line
from methods.receptive_field import ReceptiveField, crop

from ._common import ArrayLike, as_numpy

EMBED_SIZE = 64  # side the default embedding resizes every image to
HIST_BINS = 12
REFERENCES = 9  # K, the references per kind (max, min) of a unit, as MIS
# calibrate_temperature(default_embed, make_shapes(n=512, size=64, seed=1234).images): the data the default run uses
HOG_COLOUR_TEMPERATURE = 0.05
# the same on those images' ITU-R 601 luminance (experiments.data.channels.luminance), for 1-channel models: 0.101
HOG_GREY_TEMPERATURE = 0.1


def _unit_norm(v: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, n, out=np.zeros_like(v), where=n > 0)


def default_embed(images: ArrayLike) -> np.ndarray:
    """Model-independent embedding [N, D] of images [N, C, H, W] in [0, 1]: HOG + colour histograms.

    Each image is resized to 64x64; HOG of its gray version (8x8-pixel cells, 2x2 blocks, 9 orientations)
    and histograms of 12 bins each (divided by the pixel count) are each scaled to unit norm and concatenated,
    so shape and colour weigh equally. C = 3 (RGB): HOG of rgb2gray, histograms of H, S and V, each pixel's hue
    counting with its saturation, since the hue of a near-grey pixel is noise. C = 1: HOG of the image and its
    intensity histogram. Any other C (channels are not colours): HOG of the channel mean and one intensity
    histogram per channel.
    """
    x = as_numpy(images)
    if x.ndim != 4:
        raise ValueError(f"expected images [N, C, H, W], got shape {tuple(x.shape)}")
    shape, colour = [], []
    for img in np.clip(x, 0, 1).transpose(0, 2, 3, 1):
        img = resize(img, (EMBED_SIZE, EMBED_SIZE), anti_aliasing=True)
        if x.shape[1] != 3:
            shape.append(hog(img.mean(2), orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2)))
            colour.append(np.concatenate([np.histogram(img[..., c], HIST_BINS, (0, 1))[0] / img[..., c].size
                                          for c in range(x.shape[1])]))
            continue
        shape.append(hog(rgb2gray(img), orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2)))
        hsv = rgb2hsv(img).reshape(-1, 3)
        weights = (hsv[:, 1], None, None)
        colour.append(np.concatenate([np.histogram(hsv[:, c], HIST_BINS, (0, 1), weights=weights[c])[0] / len(hsv)
                                      for c in range(3)]))
    return np.hstack([_unit_norm(np.array(shape)), _unit_norm(np.array(colour))])


def _embed(images: ArrayLike, embed: Callable) -> np.ndarray:
    """Embeddings [N, D] as unit-norm float64 rows, from a callable returning an array or tensor."""
    with torch.inference_mode():
        e = embed(images)
    e = as_numpy(e)
    return _unit_norm(e.reshape(len(e), -1))


EMBEDDINGS: dict[str, Callable] = {"hog_colour": default_embed}
# (embedding, image channels) -> calibrated temperature; default_embed has no calibration data for other channel counts
TEMPERATURES = {("hog_colour", 3): HOG_COLOUR_TEMPERATURE, ("hog_colour", 1): HOG_GREY_TEMPERATURE}


def embedding(name: str) -> Callable:
    """The embedding `name` names: a key of EMBEDDINGS, or module:function (images [N, C, H, W] in [0, 1] -> [N, D])."""
    if name in EMBEDDINGS:
        return EMBEDDINGS[name]
    module, sep, attr = name.partition(":")
    if not sep or not module or not attr:
        raise invalid_choice("metrics.mis_embedding", name, [*EMBEDDINGS, "module:function"])
    try:
        fn = getattr(importlib.import_module(module), attr)
    except Exception as err:  # noqa: BLE001 - whatever the user's module raises on import, one line before work
        raise ValueError(f"metrics.mis_embedding={name!r} does not import ({one_line(err)}); "
                         f"valid: {', '.join(EMBEDDINGS)} or module:function") from None
    if not callable(fn):
        raise ValueError(f"metrics.mis_embedding={name!r} is a {type(fn).__name__}, not a function")
    return fn


def temperature_for(name: str, temperature: float | None, channels: int = 3) -> float:
    """The sigmoid's temperature: as set, else the calibrated value of a built-in embedding on images of `channels`
    channels (a user's embedding, or a channel count without calibration data, must set one)."""
    if temperature is not None:
        if not temperature > 0:
            raise ValueError(f"metrics.mis_temperature={temperature} must be > 0")
        return float(temperature)
    if (name, channels) not in TEMPERATURES:
        what = f"on {channels}-channel images " if name in EMBEDDINGS else ""
        raise ValueError(f"metrics.mis_embedding={name!r} {what}needs metrics.mis_temperature (its scale is unknown; "
                         "experiments.metrics.mis.calibrate_temperature measures one on your images)")
    return TEMPERATURES[name, channels]


def evidence(queries: np.ndarray, maxima: np.ndarray, minima: np.ndarray | None) -> np.ndarray:
    """delta(q) [N] of unit-norm query embeddings: mean cosine similarity to the max references minus to the min ones."""
    e = (queries @ maxima.T).mean(1)
    return e if minima is None else e - (queries @ minima.T).mean(1)


def choice_probability(difference: np.ndarray, temperature: float) -> np.ndarray:
    """sigmoid(difference / temperature): the simulated participant's probability of picking the strong query."""
    return 0.5 * (1 + np.tanh(np.asarray(difference, dtype=np.float64) / (2 * temperature)))


def mis_proxy(maxima: ArrayLike, strong: ArrayLike, weak: ArrayLike, minima: ArrayLike | None = None,
              embed: Callable = default_embed, temperature: float = HOG_COLOUR_TEMPERATURE) -> float:
    """Mean probability, over 2AFC tasks, of picking the strong query: mean_i sigmoid((delta(strong_i) - delta(weak_i)) / T).

    maxima: [k, C, h, w] maximally activating references of the unit; minima: [k', C, h, w] minimally activating
    ones (None: max references only, delta(q) = s(q, maxima)); strong, weak: [N, C, H, W] query pairs (task i
    pairs strong[i] with weak[i]), none of them a reference's source (see `pick_queries`). embed: images ->
    [n, D] features (default `default_embed`); s(q, E) = mean cosine similarity of q to the references E.
    """
    if len(strong) != len(weak) or len(strong) == 0:
        raise ValueError(f"need as many strong as weak queries (>= 1), got {len(strong)} and {len(weak)}")
    hi = _embed(maxima, embed)
    lo = None if minima is None else _embed(minima, embed)
    d = evidence(_embed(strong, embed), hi, lo) - evidence(_embed(weak, embed), hi, lo)
    return float(choice_probability(d, temperature).mean())


def calibrate_temperature(embed: Callable, images: ArrayLike, k: int = REFERENCES, n_tasks: int = 500,
                          seed: int = 0) -> float:
    """The spread (std) of delta(q1) - delta(q2) over tasks whose 2k references and 2 queries are random images.

    Such references say nothing about which query is which, so the difference is the embedding's chance
    fluctuation; dividing by it puts one chance spread of evidence at sigmoid(1) = 0.73, whatever the
    embedding's scale. images: [M, C, H, W] with M >= 2k + 2, embedded once.
    """
    e = _embed(images, embed)
    if len(e) < 2 * k + 2:
        raise ValueError(f"need at least {2 * k + 2} images to draw {k} + {k} references and 2 queries, got {len(e)}")
    rng = np.random.default_rng(seed)
    d = []
    for _ in range(n_tasks):
        pick = rng.permutation(len(e))[:2 * k + 2]
        hi, lo, q = e[pick[:k]], e[pick[k:2 * k]], e[pick[2 * k:]]
        d.append(float(np.subtract(*evidence(q, hi, lo))))
    return float(np.std(d))


def pick_queries(acts: ArrayLike, n_tasks: int, exclude: ArrayLike = (), fraction: float = 0.1,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (strong [n_tasks], weak [n_tasks]) of query images for `mis_proxy`.

    acts: [M] the unit's activation on each image of the data source; exclude: indices never used as
    queries (the explanation's own source images). Images whose activation is not finite (NaN, inf) are
    excluded too: they are neither strong nor weak. Of the remaining images, the top `fraction` by
    activation form the strong pool and the bottom `fraction` the weak pool (at least one image each);
    n_tasks pairs are drawn at random from the pools (without replacement while the pool lasts).
    """
    a = as_numpy(acts).ravel()
    unusable = np.union1d(as_numpy(exclude).astype(int), np.flatnonzero(~np.isfinite(a)))
    keep = np.setdiff1d(np.arange(a.size), unusable)
    pool = max(1, int(fraction * keep.size))
    if 2 * pool > keep.size:
        raise ValueError(f"only {keep.size} images left after excluding {a.size - keep.size} (explanation sources or "
                         "activations that are not finite): too few for strong and weak pools")
    ranked = keep[np.argsort(-a[keep], kind="stable")]
    rng = np.random.default_rng(seed)

    def draw(candidates: np.ndarray) -> np.ndarray:
        reps = -(-n_tasks // candidates.size)
        return np.concatenate([rng.permutation(candidates) for _ in range(reps)])[:n_tasks]

    return draw(ranked[:pool]), draw(ranked[-pool:])


def rf_crops(images: torch.Tensor, positions: torch.Tensor, rf: ReceptiveField, side: int | None = None) -> torch.Tensor:
    """Receptive-field crops [N, C, side, side] of images [N, C, H, W] around layer-map positions [N, 2] (row, col),
    cut as top_patches cuts its crops (`methods.receptive_field.crop`).

    Each crop is the full (unclipped) receptive-field box of its position, grey where the box sticks out of the
    image; where the field is larger than the image, the box clipped to the image. Resized to `side` (default
    min(longer field side, max(H, W)), the size of top_patches' crops).
    """
    if images.dim() != 4 or positions.shape != (len(images), 2):
        raise ValueError(f"expected images [N, C, H, W] and positions [N, 2], got {tuple(images.shape)} and {tuple(positions.shape)}")
    side = side or min(max(rf.sizes), max(images.shape[-2:]))
    clip = rf.exceeds_image(tuple(images.shape[-2:]))
    return torch.stack([crop(img, rf, int(r), int(c), side, clip=clip) for img, (r, c) in zip(images, positions.tolist())])
