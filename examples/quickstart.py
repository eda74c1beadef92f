"""Quickstart: the four vizbench methods and two metrics called directly on a torchvision ResNet-18, no Hydra."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch.nn.functional import interpolate
from torchvision.utils import save_image

from experiments.data.photos import load_photos
from experiments.metrics.occlusion import deletion_auc
from experiments.metrics.sanity import randomize, sanity_spearman_abs
from methods import gradient_ascent, occlusion, raw_weights, top_patches
from methods.base import Normalize, Target

SIZE = 128  # input side in pixels: small, so the script runs in seconds on a CPU (ResNet-18 is trained at 224)


def main(out_dir: Path) -> dict[str, Any]:
    """Run the four methods on ResNet-18, score two metrics, save the pictures into `out_dir`, return it all."""
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    # Random init, so nothing is downloaded. With pretrained weights (weights="DEFAULT", from the local torch
    # hub cache) the pictures mean something: Gabor-like filters, textures, object parts.
    model = torchvision.models.resnet18(weights=None).eval()
    normalize = Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))  # methods take images in [0, 1]
    photos = load_photos(size=SIZE, channels=3).images  # [N, 3, 128, 128] in [0, 1]: skimage photos + crops

    # 1. Raw weights: the 64 filters of the first conv, drawn as 7x7 RGB images.
    filters = raw_weights.visualize(model, Target("conv1", units=tuple(range(64))))

    # 2. Gradient ascent: an image that excites each of 4 channels of layer2 (olah2017 knobs, 32 steps).
    units = Target("layer2", units=(0, 1, 2, 3))
    ascent = gradient_ascent.visualize(model, units, input_size=SIZE, normalize=normalize, steps=32, seed=0)

    # 3. Top patches: the photo patches (receptive-field crops) that excite the same channels most.
    patches = top_patches.visualize(model, photos, units, normalize=normalize, k=4)

    # 4. Occlusion: how much a grey 32 px square lowers the probability of the class predicted for photo 0.
    images = photos[:2]
    with torch.no_grad():
        label = int(model(normalize(images[:1])).argmax())
    cls = Target("", units=(label,), kind="class")  # layer "" = the model's output
    maps = occlusion.visualize(model, images, cls, normalize=normalize, window=32, stride=16, output="prob")

    # Metric 1, deletion AUC (Petsiuk et al. 2018): delete pixels (to grey) in map order; lower = more faithful.
    def prob(x: torch.Tensor) -> torch.Tensor:
        return model(normalize(x)).softmax(1)[:, label]

    deletion = [deletion_auc(prob, image, m[0], substrate=0.5) for image, m in zip(images, maps.maps)]

    # Metric 2, model randomization (Adebayo et al. 2018): re-initialize layer4 and above, redo the maps and
    # rank-correlate |maps|; low = the maps depend on the weights, as an explanation should.
    random_maps = occlusion.visualize(randomize(model, "layer4"), images, cls, normalize=normalize,
                                      window=32, stride=16, output="prob")
    sanity = sanity_spearman_abs(maps.maps, random_maps.maps)

    save_image(interpolate(filters.images, scale_factor=4), out_dir / "raw_weights.png", nrow=8)
    save_image(ascent.images, out_dir / "gradient_ascent.png", nrow=4)
    save_image(patches.images, out_dir / "top_patches.png", nrow=patches.images_per_unit)  # a row per unit
    save_image(torch.cat([images, maps.images]), out_dir / "occlusion.png", nrow=len(images))  # photos above maps

    print(f"raw_weights      {len(filters.units)} filters {tuple(filters.weights.shape[1:])}")
    print(f"gradient_ascent  layer2 units {units.units}: activation {ascent.activation.numpy().round(2)}")
    print(f"top_patches      top {patches.images_per_unit} per unit from {patches.images_processed} images, "
          f"crops {tuple(patches.images.shape[-2:])} px")
    print(f"occlusion        class {label} on {len(images)} photos, {maps.perturbations} occluded images")
    print(f"deletion AUC     {', '.join(f'{d:.4f}' for d in deletion)} (lower = more faithful)")
    print(f"sanity |rho|     {sanity:.3f} (low = the maps depend on layer4's weights)")
    print(f"pictures in      {out_dir}")
    return {"filters": filters, "ascent": ascent, "patches": patches, "occlusion": maps,
            "deletion_auc": deletion, "sanity_spearman_abs": sanity}


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results/quickstart"))
