"""Top-activating dataset patches: how strong, how class-pure and how complete the k patches of a unit are."""
from __future__ import annotations

import numpy as np

from ._common import ArrayLike, as_numpy


def topk_mean_activation(acts: ArrayLike) -> np.ndarray:
    """Mean activation of each unit's top-k patches: acts [U, k] (or [k]) -> [U] (or a 1-element array)."""
    a = as_numpy(acts)
    return np.atleast_2d(a).mean(1)


def preferred_class(acts: ArrayLike, labels: ArrayLike) -> int:
    """The class the unit is most selective for: the one with the highest mean activation over its images.

    acts: [N] the unit's score per image (scoring passes each image's peak, the statistic the patches are
    ranked by, not the spatial mean); labels: [N] ints (negative = unknown, ignored). A class whose
    mean is NaN ranks last (all NaN: the first class).
    """
    a, y = as_numpy(acts).ravel(), as_numpy(labels).ravel().astype(int)
    if a.shape != y.shape:
        raise ValueError(f"acts and labels must have the same length, got {a.size} and {y.size}")
    known = y >= 0
    if not known.any():
        raise ValueError("no known labels (all < 0): the preferred class is undefined")
    classes = np.unique(y[known])
    means = np.array([a[y == c].mean() for c in classes])
    return int(classes[np.argmax(np.where(np.isnan(means), -np.inf, means))])


def topk_precision(top_labels: ArrayLike, preferred: int) -> float:
    """Share of the top-k patches whose source image's label is the unit's preferred class (`preferred_class`)."""
    y = as_numpy(top_labels).ravel().astype(int)
    return float(np.mean(y == preferred)) if y.size else float("nan")


def label_entropy(top_labels: ArrayLike) -> float:
    """Entropy (nats) of the label distribution of the top-k patches (unknown labels < 0 dropped; NaN if none).

    0 = all from one class; log(m) = spread evenly over m classes.
    """
    y = as_numpy(top_labels).ravel().astype(int)
    y = y[y >= 0]
    if y.size == 0:
        return float("nan")
    p = np.unique(y, return_counts=True)[1] / y.size
    return float(-(p * np.log(p)).sum())


def rf_coverage(boxes: ArrayLike, image_size: tuple[int, int]) -> float:
    """Mean share of each patch's receptive-field box that lies inside the image.

    boxes: [k, 4] as (x0, y0, x1, y1) in pixels, x1/y1 exclusive, UNCLIPPED (a receptive field near the
    border extends past the image); image_size: (H, W). 1 = every patch fully inside.
    """
    b = as_numpy(boxes).reshape(-1, 4)
    h, w = image_size
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    if np.any(area <= 0):
        raise ValueError("boxes must have x1 > x0 and y1 > y0 (format x0, y0, x1, y1)")
    iw = np.clip(np.minimum(b[:, 2], w) - np.maximum(b[:, 0], 0), 0, None)
    ih = np.clip(np.minimum(b[:, 3], h) - np.maximum(b[:, 1], 0), 0, None)
    return float(np.mean(iw * ih / area))
