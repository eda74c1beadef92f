"""An automatic Machine Interpretability Score proxy: a 2AFC task after Borowski et al. 2021 and
Zimmermann et al. (MIS).

Given a unit's explanation (k images: gradient-ascent images or top patches) and pairs of held-out natural
queries (one strongly, one weakly activating the unit), a "simulated participant" picks the query more
similar to the explanation in an embedding space. Accuracy over the tasks: 1 = the explanation tells the
strong query from the weak one every time, 0.5 = chance. Where the unit sees only part of an image, both the
explanation and the queries should be shown as the unit sees them: `rf_crops` cuts the receptive field
around a map position (experiments/scoring/mis.py crops each image at the unit's peak).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from skimage.color import rgb2gray, rgb2hsv
from skimage.feature import hog
from skimage.transform import resize

from methods.receptive_field import ReceptiveField, crop

from ._common import ArrayLike, as_numpy

EMBED_SIZE = 64  # side the default embedding resizes every image to
HIST_BINS = 12


def _unit_norm(v: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, n, out=np.zeros_like(v), where=n > 0)


def default_embed(images: ArrayLike) -> np.ndarray:
    """Model-independent embedding [N, D] of images [N, 3, H, W] in [0, 1]: HOG + HSV colour histograms.

    Each image is resized to 64x64; HOG of its gray version (8x8-pixel cells, 2x2 blocks, 9 orientations)
    and per-channel HSV histograms (12 bins each, divided by the pixel count; each pixel's hue counts with
    its saturation, since the hue of a near-grey pixel is noise) are each scaled to unit norm and
    concatenated, so shape and colour weigh equally.
    """
    x = as_numpy(images)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected RGB images [N, 3, H, W], got shape {tuple(x.shape)}")
    shape, colour = [], []
    for img in np.clip(x, 0, 1).transpose(0, 2, 3, 1):
        img = resize(img, (EMBED_SIZE, EMBED_SIZE), anti_aliasing=True)
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


def mis_proxy(explanation: ArrayLike, strong: ArrayLike, weak: ArrayLike, embed: Callable = default_embed) -> float:
    """Share of 2AFC tasks where the strong query is more similar to the explanation than the weak one.

    explanation: [k, 3, h, w] images explaining the unit; strong, weak: [N, 3, H, W] query pairs (task i
    pairs strong[i] with weak[i]), none of them among the explanation's images (see `pick_queries`).
    embed: images -> [n, D] features (default `default_embed`; any network's features work). Similarity
    of a query = its mean cosine similarity to the k explanation embeddings; ties count 1/2.
    """
    if len(strong) != len(weak) or len(strong) == 0:
        raise ValueError(f"need as many strong as weak queries (>= 1), got {len(strong)} and {len(weak)}")
    ref = _embed(explanation, embed)
    s = (_embed(strong, embed) @ ref.T).mean(1)
    w = (_embed(weak, embed) @ ref.T).mean(1)
    return float(np.mean((s > w) + 0.5 * (s == w)))


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
    """Receptive-field crops [N, 3, side, side] of images [N, 3, H, W] around layer-map positions [N, 2] (row, col).

    Each crop is the full (unclipped) receptive-field box of its position, grey where the box sticks out of the
    image, resized to `side` (default min(rf.size, max(H, W)), the size of top_patches' crops).
    """
    if images.dim() != 4 or positions.shape != (len(images), 2):
        raise ValueError(f"expected images [N, 3, H, W] and positions [N, 2], got {tuple(images.shape)} and {tuple(positions.shape)}")
    side = side or min(rf.size, max(images.shape[-2:]))
    return torch.stack([crop(img, rf, int(r), int(c), side) for img, (r, c) in zip(images, positions.tolist())])
