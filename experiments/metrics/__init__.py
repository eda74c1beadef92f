"""Quality metrics that score every visualization method automatically.

Plain functions (tensors / numpy arrays in, a float or a per-unit array out), no config. One module per family:

- `sanity`       model-randomization test (Adebayo et al. 2018): `randomize` a copy of the model, then
                 compare results with SSIM / Spearman / |Spearman| / HOG correlation (low = the method
                 depends on the weights); `seed_ssim` compares two seeds (high = stable).
- `ground_truth` agreement with a planted unit's preferred stimulus or an object mask (Pearson, SSIM).
- `images`       image statistics: high-frequency energy, spectral slope (photos' reference:
                 `photo_slopes`), total variation, diversity of a unit's images.
- `activation`   gradient ascent: activation vs the top natural exemplar, robustness to jitter/scale/
                 rotation, similarity of the activation pattern below the target to the exemplars'.
- `mis`          an automatic 2AFC Machine Interpretability Score proxy (Borowski 2021, Zimmermann).
- `occlusion`    deletion / insertion AUC (Petsiuk 2018), pointing game, mask energy, Gini sparseness,
                 entropy complexity.
- `top_patches`  top-k mean activation, class precision, label entropy, receptive-field coverage.
- `raw_weights`  filter smoothness (TV), colour fraction, Gabor fit.

`METRICS` maps a method name to the `metric` column values that apply to it; `FUNCTIONS` maps each metric
name to the function that computes it ("activation" is reported by the method itself).
"""
from __future__ import annotations

from typing import Callable

from . import activation, ground_truth, images, mis, occlusion, raw_weights, sanity, top_patches

COMMON = ["sanity_ssim", "sanity_spearman", "sanity_spearman_abs", "sanity_hog", "gt_corr", "gt_ssim", "seed_ssim"]

METRICS: dict[str, list[str]] = {
    "raw_weights": COMMON + ["filter_smoothness", "color_fraction", "gabor_fit"],
    "gradient_ascent": COMMON + ["activation", "activation_vs_exemplar", "robustness", "hf_energy", "spectral_slope",
                                 "tv", "diversity", "exemplar_similarity", "mis_proxy"],
    "occlusion": COMMON + ["deletion_auc", "insertion_auc", "pointing_game", "mask_energy", "sparseness", "complexity"],
    "top_patches": COMMON + ["mis_proxy", "topk_mean_activation", "topk_precision", "label_entropy", "rf_coverage"],
}

FUNCTIONS: dict[str, Callable | None] = {
    "sanity_ssim": sanity.sanity_ssim,
    "sanity_spearman": sanity.sanity_spearman,
    "sanity_spearman_abs": sanity.sanity_spearman_abs,
    "sanity_hog": sanity.sanity_hog,
    "seed_ssim": sanity.seed_ssim,
    "gt_corr": ground_truth.gt_corr,
    "gt_ssim": ground_truth.gt_ssim,
    "activation": None,
    "activation_vs_exemplar": activation.activation_vs_exemplar,
    "robustness": activation.robustness,
    "exemplar_similarity": activation.exemplar_similarity,
    "hf_energy": images.hf_energy,
    "spectral_slope": images.spectral_slope,
    "tv": images.tv,
    "diversity": images.diversity,
    "mis_proxy": mis.mis_proxy,
    "deletion_auc": occlusion.deletion_auc,
    "insertion_auc": occlusion.insertion_auc,
    "pointing_game": occlusion.pointing_game,
    "mask_energy": occlusion.mask_energy,
    "sparseness": occlusion.sparseness,
    "complexity": occlusion.complexity,
    "topk_mean_activation": top_patches.topk_mean_activation,
    "topk_precision": top_patches.topk_precision,
    "label_entropy": top_patches.label_entropy,
    "rf_coverage": top_patches.rf_coverage,
    "filter_smoothness": raw_weights.filter_smoothness,
    "color_fraction": raw_weights.color_fraction,
    "gabor_fit": raw_weights.gabor_fit,
}

# which direction is better, for reports: +1 higher is better, -1 lower is better, 0 descriptive only
BETTER: dict[str, int] = {
    "sanity_ssim": -1, "sanity_spearman": -1, "sanity_spearman_abs": -1, "sanity_hog": -1, "seed_ssim": 1,
    "gt_corr": 1, "gt_ssim": 1, "activation": 1, "activation_vs_exemplar": 1, "robustness": 1,
    "exemplar_similarity": 1, "hf_energy": -1, "spectral_slope": 0, "tv": -1, "diversity": 0, "mis_proxy": 1,
    "deletion_auc": -1, "insertion_auc": 1, "pointing_game": 1, "mask_energy": 1, "sparseness": 0,
    "complexity": 0, "topk_mean_activation": 1, "topk_precision": 1, "label_entropy": -1, "rf_coverage": 1,
    "filter_smoothness": -1, "color_fraction": 0, "gabor_fit": 1,
}
