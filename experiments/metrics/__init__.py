"""Quality metrics as plain functions (tensors / numpy arrays in, a float or a per-unit array out), no config.

Which metric applies to which result, and which direction is better, is declared once per metric in
experiments/scoring/ (the metric registry). Images may have any channel count C (1 = grey, 3 = RGB, or other
bands); a metric that means nothing for some C says so (NaN, and a function telling why, e.g.
`raw_weights.color_undefined`), and `mis.default_embed` documents its choice for C != 3. One module per family:

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
"""
