"""Top-patch metrics: class precision, label spread and receptive-field coverage of dataset exemplars."""
from __future__ import annotations

import torch

from experiments.metrics import top_patches
from experiments.scoring.context import Row, Scoring, rows_for
from experiments.scoring.mis import data_peaks
from experiments.scoring.registry import metric
from methods.top_patches import TopPatches


@metric("topk_precision", TopPatches, "higher", needs=("labels",))
def topk_precision(s: Scoring, result: TopPatches) -> list[Row]:
    """Share of the top k from the unit's class: its planted class where known, else the class with the highest
    mean peak (spatial max for channels, the position's value for neurons: the statistic the patches are ranked by)."""
    values = []
    for i, unit in enumerate(result.units):
        planted = s.spec.unit_classes.get((s.target.layer, unit))
        preferred = (s.data.class_names.index(planted) if planted in s.data.class_names
                     else top_patches.preferred_class(data_peaks(s)[0][:, i], s.data.labels))
        values.append(top_patches.topk_precision(s.data.labels[result.indices[i]], preferred))
    return rows_for(result, "topk_precision", values)


@metric("label_entropy", TopPatches, "lower", needs=("labels",))
def label_entropy(s: Scoring, result: TopPatches) -> list[Row]:
    """Entropy of the labels of each unit's top k."""
    return rows_for(result, "label_entropy", [top_patches.label_entropy(s.data.labels[idx]) for idx in result.indices])


@metric("rf_coverage", TopPatches, "higher")
def rf_coverage(s: Scoring, result: TopPatches) -> list[Row]:
    """Mean share of each patch's receptive field inside its image."""
    size = tuple(s.data.images.shape[-2:])
    values = []
    for boxes in result.boxes_unclipped:
        t, l, b, r = boxes.unbind(-1)
        values.append(top_patches.rf_coverage(torch.stack([l, t, r, b], -1), size))
    return rows_for(result, "rf_coverage", values)
