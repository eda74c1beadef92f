"""examples/quickstart.py runs end to end: every method's result has its shape, the metrics are in range."""
from __future__ import annotations

import math
from pathlib import Path

from examples.quickstart import SIZE, main


def test_quickstart(tmp_path: Path) -> None:
    """The Python API example without Hydra: four methods, two metrics, four pictures."""
    out = main(tmp_path)
    assert out["filters"].images.shape == (64, 3, 7, 7)
    assert out["ascent"].images.shape == (4, 3, SIZE, SIZE)
    assert out["ascent"].activation.isfinite().all()
    patches = out["patches"]
    assert patches.images.shape[:2] == (4 * patches.images_per_unit, 3) and patches.images_per_unit >= 2
    assert out["occlusion"].maps.shape == (2, 1, SIZE, SIZE) and out["occlusion"].maps.abs().sum() > 0
    for result in ("filters", "ascent", "patches", "occlusion"):
        images = out[result].images
        assert images.isfinite().all() and 0 <= images.min() and images.max() <= 1, result
    assert len(out["deletion_auc"]) == 2 and all(0 <= d <= 1 for d in out["deletion_auc"])  # NaN fails too
    assert -1 <= out["sanity_spearman_abs"] <= 1 and math.isfinite(out["sanity_spearman_abs"])
    for name in ("raw_weights", "gradient_ascent", "top_patches", "occlusion"):
        assert (tmp_path / f"{name}.png").stat().st_size > 0
