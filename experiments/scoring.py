"""Wire the quality metrics to a run: which metric reads what from a method's Visualization, model and data."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import Tensor, nn

from experiments import metrics as M
from experiments.adapters import RunOptions, call_method
from experiments.data.spec import DataSpec
from experiments.metrics import activation, ground_truth, images, mis, occlusion, raw_weights, sanity, top_patches
from experiments.zoo.spec import ModelSpec
from methods.base import Normalize, Target, Visualization, read_out
from methods.graph import fast_forward
from methods.receptive_field import ReceptiveField, receptive_field

Row = dict[str, Any]


@dataclass
class Scoring:
    """Everything a metric may need about one (method, target) result."""

    method: str
    spec: ModelSpec
    data: DataSpec
    target: Target
    params: dict[str, Any]
    opts: RunOptions
    enabled: set[str] = field(default_factory=lambda: {"all"})
    randomization: str | None = "cascading"  # None = skip the model randomization test
    mis_tasks: int = 20
    auc_steps: int = 50
    _cuts: dict[tuple[str, bool], nn.Module] = field(default_factory=dict, init=False, repr=False)

    def wants(self, metric: str) -> bool:
        """Whether the run asked for `metric` (and it applies to this method)."""
        return metric in M.METRICS[self.method] and ("all" in self.enabled or metric in self.enabled)

    @cached_property
    def device(self) -> torch.device:
        return next(self.spec.model.parameters()).device

    @cached_property
    def normalize(self) -> Normalize:
        return Normalize(self.spec.mean, self.spec.std).to(self.device)

    def cut(self, layer: str, normalized: bool = True) -> nn.Module:
        """The model cut at `layer`, as the methods run it (methods.graph.fast_forward, the run's layout), built
        once per layer for all the metrics and units of this result; `normalized`: it takes [0, 1] images."""
        key = (layer, normalized)
        if key not in self._cuts:
            self._cuts[key] = fast_forward(self.spec.model, layer, self.normalize if normalized else None,
                                           self.opts.channels_last)
        return self._cuts[key]

    def scorer(self, layer: str | None = None, unit_index: int | None = None) -> Callable[[Tensor], Tensor]:
        """images [B, 3, H, W] in [0, 1] -> [B] score of one target unit (or [B, U] for all units)."""
        trunc = self.cut(self.target.layer if layer is None else layer)

        def score(x: Tensor) -> Tensor:
            with torch.inference_mode():
                out = read_out(trunc(x.to(self.device)), self.target).float().cpu()
            return out if unit_index is None else out[:, unit_index]

        return score

    @cached_property
    def natural(self) -> Tensor:
        """[N, U] target scores of every data image."""
        score = self.scorer()
        return torch.cat([score(self.data.images[i:i + 128]) for i in range(0, len(self.data.images), 128)])


def unit_results(method: str, vis: Visualization) -> list[Tensor]:
    """One array per unit that stands for the method's result on it (compared by the sanity metrics)."""
    n = len(vis.units)
    if method == "raw_weights":
        return list(vis.extras["weights"])
    if method == "occlusion":
        return [vis.extras["maps"][:, i] for i in range(n)]
    per_unit = len(vis.images) // n
    return [vis.images[i * per_unit:(i + 1) * per_unit].flatten(0, 1) for i in range(n)]


def rows_for(vis: Visualization, metric: str, values: Iterable[float]) -> list[Row]:
    """One row per unit."""
    return [{"unit": u, "metric": metric, "value": float(v)} for u, v in zip(vis.units, values)]


def sanity_rows(s: Scoring, vis: Visualization) -> list[Row]:
    """Model randomization test: same method and seed on a randomized copy, compared unit by unit."""
    rand = sanity.randomize(s.spec.model, s.target.layer or vis.extras.get("layer", ""), mode=s.randomization,
                            seed=s.opts.seed + 1)
    other = call_method(s.method, s.spec, s.data, s.target, s.params, s.opts, model=rand)
    rows = []
    for name in ("sanity_ssim", "sanity_spearman", "sanity_spearman_abs", "sanity_hog"):
        if s.wants(name):
            fn = M.FUNCTIONS[name]
            rows += rows_for(vis, name, [fn(a, b) for a, b in zip(unit_results(s.method, vis), unit_results(s.method, other))])
    return rows


def seed_rows(s: Scoring, vis: Visualization) -> list[Row]:
    """Stability: SSIM between the results of two seeds."""
    opts = RunOptions(**{**s.opts.__dict__, "seed": s.opts.seed + 1})
    other = call_method(s.method, s.spec, s.data, s.target, s.params, opts)
    pairs = zip(unit_results(s.method, vis), unit_results(s.method, other))
    return rows_for(vis, "seed_ssim", [sanity.seed_ssim(a, b) for a, b in pairs])


def neuron_box(s: Scoring, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Unclipped input box (top, left, bottom, right) of the target neuron's receptive field."""
    from methods.receptive_field import box, receptive_field
    rf = receptive_field(s.spec.model, s.target.layer, size)
    h, w = layer_hw(s, size)
    r, c = s.target.position if s.target.position is not None else (h // 2, w // 2)
    return box(rf, r, c, size)[1]


def layer_hw(s: Scoring, size: tuple[int, int]) -> tuple[int, int]:
    """Spatial size of the target layer's map for inputs of `size`."""
    from methods.base import layer_shape
    return tuple(layer_shape(s.spec.model, s.target.layer, size[0])[-2:])


def truth_window(s: Scoring, result: Tensor, truth: Tensor) -> Tensor:
    """The window of `result` compared with the ground truth: a neuron's receptive field, else where it matches best."""
    if s.target.kind == "neuron":
        top, left, bottom, right = neuron_box(s, tuple(result.shape[-2:]))
        pad = max(0, -top, -left, bottom - result.shape[-2], right - result.shape[-1])
        padded = torch.nn.functional.pad(result, (pad,) * 4, value=0.5)
        return padded[:, top + pad:bottom + pad, left + pad:right + pad]
    from skimage.feature import match_template
    r, t = result.float().numpy(), truth.float().numpy()
    ncc = match_template(r.transpose(1, 2, 0), t.transpose(1, 2, 0))[..., 0]
    top, left = np.unravel_index(np.nanargmax(ncc), ncc.shape)
    return result[:, top:top + t.shape[1], left:left + t.shape[2]]


def ground_truth_rows(s: Scoring, vis: Visualization) -> list[Row]:
    """Agreement with the planted unit's preferred stimulus (occlusion: with the object mask)."""
    layer = s.target.layer or vis.extras.get("layer", "")
    rows: list[Row] = []
    if s.method == "occlusion":
        if s.data.masks is None:
            return []
        source = vis.extras["source_indices"].tolist()
        for i, unit in enumerate(vis.units):
            own = [source.index(idx) for idx in vis.extras["unit_images"][i].tolist()]
            maps = vis.extras["maps"][own, i]
            masks = s.data.masks[vis.extras["unit_images"][i]].float()
            rows.append({"unit": unit, "metric": "gt_corr", "value": np.nanmean([ground_truth.gt_corr(m, k) for m, k in zip(maps, masks)])})
            rows.append({"unit": unit, "metric": "gt_ssim", "value": np.nanmean([ground_truth.gt_ssim(m, k) for m, k in zip(maps, masks)])})
        return rows
    results = unit_results(s.method, vis)
    for unit, result in zip(vis.units, results):
        truth = s.spec.ground_truth(layer, unit)
        if s.method == "raw_weights":
            windows = [vis.images[vis.units.index(unit)]]
        else:
            per = result.view(-1, 3, *result.shape[-2:])
            windows = [truth_window(s, img, truth) for img in per]
        rows.append({"unit": unit, "metric": "gt_corr", "value": np.nanmean([ground_truth.gt_corr(w, truth) for w in windows])})
        rows.append({"unit": unit, "metric": "gt_ssim", "value": np.nanmean([ground_truth.gt_ssim(w, truth) for w in windows])})
    return rows


def gradient_ascent_rows(s: Scoring, vis: Visualization) -> list[Row]:
    """Naturalness, robustness and faithfulness of feature visualizations."""
    k = len(vis.images) // len(vis.units)
    rows: list[Row] = []
    per_unit = [vis.images[i * k:(i + 1) * k] for i in range(len(vis.units))]
    if s.wants("activation_vs_exemplar"):
        rows += rows_for(vis, "activation_vs_exemplar", activation.activation_vs_exemplar(vis.values["activation"], s.natural))
    for name, fn in (("hf_energy", images.hf_energy), ("spectral_slope", images.spectral_slope), ("tv", images.tv)):
        if s.wants(name):
            rows += rows_for(vis, name, [np.mean([fn(img) for img in imgs]) for imgs in per_unit])
    if s.wants("diversity") and k > 1:
        rows += rows_for(vis, "diversity", [images.diversity(imgs) for imgs in per_unit])
    if s.wants("robustness"):
        rows += rows_for(vis, "robustness", [activation.robustness(s.scorer(unit_index=i), imgs[0], seed=s.opts.seed)
                                             for i, imgs in enumerate(per_unit)])
    if s.wants("exemplar_similarity") and s.target.layer:
        feats = below_target(s)
        with torch.inference_mode():
            top = s.natural.topk(min(9, len(s.natural)), dim=0).indices  # [9, U]
            values = [activation.exemplar_similarity(feats(imgs[:1].to(s.device))[0].cpu(),
                                                     feats(s.data.images[top[:, i]].to(s.device)).cpu())
                      for i, imgs in enumerate(per_unit)]
        rows += rows_for(vis, "exemplar_similarity", values)
    if s.wants("mis_proxy"):
        rows += mis_rows(s, vis, per_unit, [[] for _ in per_unit], crop=True)
    return rows


def below_target(s: Scoring) -> Callable[[Tensor], Tensor]:
    """The model up to the layer below the target (the normalized input itself for a first layer)."""
    try:
        return s.cut(activation.layer_below(s.spec.model, s.target.layer))
    except ValueError:
        return s.normalize


MIS_BATCH = 128


def unit_peaks(s: Scoring, images: Tensor) -> tuple[Tensor, Tensor | None]:
    """Each target unit's peak on each image: scores [N, U] and layer-map positions [N, U, 2] (row, col).

    Channel targets on a spatial map: the spatial max and where it is. Neuron targets: the value at the
    target's position. Any other target (class, layer, direction kinds, or a layer without a spatial map):
    the run's read-out and no positions (None).
    """
    trunc = s.cut(s.target.layer)
    units = list(s.target.units)
    values, positions = [], []
    with torch.inference_mode():
        for start in range(0, len(images), MIS_BATCH):
            acts = trunc(images[start:start + MIS_BATCH].to(s.device))
            if s.target.kind not in ("channel", "neuron") or acts.dim() != 4:
                values.append(read_out(acts, s.target).float().cpu())
                continue
            maps = acts[:, units].flatten(2).float().cpu()  # [B, U, h * w]
            h, w = acts.shape[-2:]
            if s.target.kind == "neuron":
                r, c = s.target.position if s.target.position is not None else (h // 2, w // 2)
                flat = torch.full(maps.shape[:2], r * w + c)
                values.append(maps[..., r * w + c])
            else:
                top, flat = maps.max(2)
                values.append(top)
            positions.append(torch.stack([flat // w, flat % w], -1))
    return torch.cat(values), torch.cat(positions) if positions else None


def mis_field(s: Scoring, size: tuple[int, int]) -> ReceptiveField:
    """The target layer's receptive field for images of `size` (without global branches where they make it the whole image)."""
    try:
        return receptive_field(s.spec.model, s.target.layer, size)
    except ValueError:
        return receptive_field(s.spec.model, s.target.layer, size, ignore_global=True)


def mis_rows(s: Scoring, vis: Visualization, explanations: list[Tensor], excludes: list[list[int]], crop: bool) -> list[Row]:
    """mis_proxy of each unit's explanation, both explanation and queries shown as the unit sees them.

    Queries: held-out data images (never those in the unit's `excludes`, its explanation's sources); strong
    and weak ones are the top and bottom 10% by the unit's peak score (`unit_peaks`: spatial max for channels,
    the target position for neurons), `s.mis_tasks` pairs drawn with the run's seed. Each query is cropped to
    the receptive field around its own peak position (the strong query's strongest location, and the weak
    query's strongest location too, so both are treated alike). With `crop`, each explanation image (e.g. a
    gradient-ascent image) is cropped the same way around its own peak; without it the explanation is used
    as given (top_patches' receptive-field crops). Targets without positions (class, layer, direction kinds)
    compare whole images. A unit whose receptive field cannot be traced gets a failed row.
    """
    values, positions = unit_peaks(s, s.data.images)
    try:
        rf = mis_field(s, tuple(s.data.images.shape[-2:])) if positions is not None else None
    except ValueError as err:
        return [{"unit": u, "metric": "mis_proxy", "value": float("nan"), "status": f"failed: {err}"} for u in vis.units]
    own_rf = mis_field(s, tuple(explanations[0].shape[-2:])) if rf is not None and crop else None
    rows = []
    for i, (unit, expl, exclude) in enumerate(zip(vis.units, explanations, excludes)):
        strong, weak = mis.pick_queries(values[:, i], s.mis_tasks, exclude=np.asarray(exclude, dtype=int), seed=s.opts.seed)
        queries = [s.data.images[strong], s.data.images[weak]]
        if rf is not None:
            queries = [mis.rf_crops(q, positions[idx, i], rf) for q, idx in zip(queries, (strong, weak))]
        if own_rf is not None:
            expl = mis.rf_crops(expl, unit_peaks(s, expl)[1][:, i], own_rf)
        rows.append({"unit": unit, "metric": "mis_proxy", "value": mis.mis_proxy(expl, *queries)})
    return rows


def top_patches_rows(s: Scoring, vis: Visualization) -> list[Row]:
    """Class precision, label spread, receptive-field coverage and MIS proxy of dataset exemplars."""
    rows: list[Row] = []
    indices = vis.extras["indices"]
    labels = s.data.labels
    known = bool((labels >= 0).any())
    for i, unit in enumerate(vis.units):
        top_labels = labels[indices[i]]
        if known and s.wants("topk_precision"):  # a planted unit's class is known; otherwise its most selective one
            planted = s.spec.unit_classes.get((s.target.layer, unit))
            preferred = (s.data.class_names.index(planted) if planted in s.data.class_names
                         else top_patches.preferred_class(s.natural[:, i], labels))
            rows.append({"unit": unit, "metric": "topk_precision", "value": top_patches.topk_precision(top_labels, preferred)})
        if known and s.wants("label_entropy"):
            rows.append({"unit": unit, "metric": "label_entropy", "value": top_patches.label_entropy(top_labels)})
        if s.wants("rf_coverage"):
            t, l, b, r = vis.extras["boxes_unclipped"][i].unbind(-1)
            size = tuple(s.data.images.shape[-2:])
            rows.append({"unit": unit, "metric": "rf_coverage", "value": top_patches.rf_coverage(torch.stack([l, t, r, b], -1), size)})
    if s.wants("mis_proxy"):  # the receptive-field crops, unit-major, k per unit
        k = len(vis.images) // len(vis.units)
        rows += mis_rows(s, vis, [vis.images[i * k:(i + 1) * k] for i in range(len(vis.units))],
                         [indices[i].tolist() for i in range(len(vis.units))], crop=False)
    return rows


def occlusion_scorer(s: Scoring, unit_index: int) -> Callable[[Tensor], Tensor]:
    """Model-input images -> the occluded score of one unit, read out as the occlusion run read it."""
    from methods.occlusion import score as occlusion_score
    trunc = s.cut(s.target.layer, normalized=False)
    reduce, output = s.params.get("reduce", "mean"), s.params.get("output", "logit")

    def score(x: Tensor) -> Tensor:
        with torch.inference_mode():
            return occlusion_score(trunc(x.to(s.device)), s.target, reduce, output)[:, unit_index].float().cpu()

    return score


def occlusion_rows(s: Scoring, vis: Visualization) -> list[Row]:
    """Faithfulness (deletion/insertion), localization (pointing game, mask energy) and map statistics.

    Deletion and insertion work in the model's input space, so deleted pixels are 0 there (the normalization
    mean colour, e.g. grey for planted), not black, which would itself excite edge detectors.
    """
    rows: list[Row] = []
    source = vis.extras["source_indices"].tolist()
    for i, unit in enumerate(vis.units):
        score = occlusion_scorer(s, i)
        for idx in vis.extras["unit_images"][i].tolist():  # only the images that excite this unit
            m = vis.extras["maps"][source.index(idx), i]
            image = s.normalize(s.data.images[idx:idx + 1].to(s.device))[0].cpu()
            found: dict[str, float] = {}
            if s.wants("deletion_auc"):
                found["deletion_auc"] = occlusion.deletion_auc(score, image, m, steps=s.auc_steps)
            if s.wants("insertion_auc"):
                found["insertion_auc"] = occlusion.insertion_auc(score, image, m, steps=s.auc_steps)
            if s.data.masks is not None:
                if s.wants("pointing_game"):
                    found["pointing_game"] = occlusion.pointing_game(m, s.data.masks[idx], tolerance=s.params.get("stride", 0))
                if s.wants("mask_energy"):
                    found["mask_energy"] = occlusion.mask_energy(m, s.data.masks[idx])
            if s.wants("sparseness"):
                found["sparseness"] = occlusion.sparseness(m)
            if s.wants("complexity"):
                found["complexity"] = occlusion.complexity(m)
            rows += [{"unit": unit, "image": idx, "metric": k, "value": v} for k, v in found.items()]
    return rows


def raw_weights_rows(s: Scoring, vis: Visualization) -> list[Row]:
    """Smoothness, colour and Gabor-likeness of first-layer filters."""
    w = vis.extras["weights"]
    rows: list[Row] = []
    if s.wants("filter_smoothness"):
        rows += rows_for(vis, "filter_smoothness", raw_weights.filter_smoothness(w))
    if s.wants("color_fraction"):
        rows.append({"unit": None, "metric": "color_fraction", "value": float(raw_weights.color_fraction(w))})
    if s.wants("gabor_fit"):
        rows += rows_for(vis, "gabor_fit", raw_weights.gabor_fit(w))
    return rows


METHOD_ROWS = {"raw_weights": raw_weights_rows, "gradient_ascent": gradient_ascent_rows,
               "occlusion": occlusion_rows, "top_patches": top_patches_rows}
STOCHASTIC = {"gradient_ascent"}


def score(s: Scoring, vis: Visualization) -> list[Row]:
    """All quality-metric rows the run asked for; a family that fails gives a failed row, not a lost target."""
    families: list[tuple[str, Callable[[Scoring, Visualization], list[Row]]]] = []
    if s.randomization and any(s.wants(m) for m in ("sanity_ssim", "sanity_spearman", "sanity_spearman_abs", "sanity_hog")):
        families.append(("sanity", sanity_rows))
    if s.method in STOCHASTIC and s.wants("seed_ssim"):
        families.append(("seed_ssim", seed_rows))
    if s.spec.ground_truth is not None and s.wants("gt_corr"):
        families.append(("ground_truth", ground_truth_rows))
    families.append((s.method, METHOD_ROWS[s.method]))
    rows: list[Row] = []
    for name, family in families:
        try:
            rows += family(s, vis)
        except Exception as err:  # noqa: BLE001 - recorded in the table
            reason = f"{type(err).__name__}: {err}".splitlines()[0]
            rows.append({"unit": None, "metric": f"{name}_error", "value": float("nan"), "status": f"failed: {reason}"})
    return rows
