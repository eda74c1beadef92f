"""Channel counts: RGB as drawn or decoded, or its luminance for 1-channel models (other counts: data=arrays)."""
from __future__ import annotations

import torch
from torch import Tensor

# ITU-R 601-2 luma, as PIL's convert("L") (they sum to 1, so a grey pixel keeps its value)
LUMA = (0.299, 0.587, 0.114)


def check_channels(source: str, channels: int) -> int:
    """`channels` if the RGB source `source` can deliver it (1 or 3); one line pointing at data=arrays otherwise."""
    if channels not in (1, 3):
        raise ValueError(f"data={source} gives 1 (grey) or 3 (RGB) channels, not {channels}; "
                         f"for {channels}-channel images use data=arrays data.path=<.npy/.npz/.pt file or folder>")
    return channels


def luminance(rgb: Tensor) -> Tensor:
    """[..., 3, H, W] RGB -> [..., 1, H, W] ITU-R 601-2 luma."""
    weights = torch.tensor(LUMA, dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    return (rgb * weights).sum(-3, keepdim=True)


def as_channels(rgb: Tensor, source: str, channels: int) -> Tensor:
    """RGB images [..., 3, H, W] with `channels` channels: themselves (3) or their luminance (1)."""
    return rgb if check_channels(source, channels) == 3 else luminance(rgb)
