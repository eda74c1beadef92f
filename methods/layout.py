"""Layer outputs seen as feature maps [N, C, H, W]: channels-last maps (Swin, ConvNeXt blocks) and token sequences
(ViT, DeiT, Swin stages) are permuted or folded back onto the input's grid, so that "channel k" is feature channel k.

Which dims are spatial is read from the shape and the input's (h, w): a map's spatial dims shrink the input by one
common stride (`fits`). `[N, H, W, C]` is channels-last when its (H, W) fits the input's aspect ratio better than
(W, C) does (`misfit`); every other 4-d output is `[N, C, H, W]` (PyTorch's convention, which wins ties). `[N, T, C]` with T = P + h * w,
for a grid (h, w) that tiles the input with one integer stride and P <= 8 leading tokens (class, distillation,
register tokens), is a token sequence: the P leading tokens are dropped (read them through the model's output or the
class kind). `[N, C]` is a vector. Anything else raises one line.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from torch import Tensor

KINDS = ("nchw", "nhwc", "tokens", "vector")
MAX_PREFIX = 8  # leading non-grid tokens tried: class (ViT), + distillation (DeiT), + registers (ViT-reg)


@dataclass(frozen=True)
class Layout:
    """How one layer's per-image output maps onto [C, H, W] (or [C] for vectors)."""

    kind: str
    grid: tuple[int, int] | None = None  # tokens: the (h, w) grid of the tokens after the prefix
    prefix: int = 0  # tokens: leading tokens dropped (class, distillation, registers)

    def map_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The per-image output `shape` as the map's (C, H, W), or (C,) for a vector."""
        if self.kind == "nhwc":
            return (shape[2], shape[0], shape[1])
        if self.kind == "tokens":
            return (shape[1], *self.grid)
        return tuple(shape)

    def to_map(self, out: Tensor) -> Tensor:
        """A batch of outputs [N, ...] as maps [N, C, H, W] (vectors and nchw unchanged)."""
        if self.kind == "nhwc":
            return out.permute(0, 3, 1, 2)
        if self.kind == "tokens":
            return out[:, self.prefix:].transpose(1, 2).unflatten(2, self.grid)
        return out

    def describe(self) -> str:
        """A few words for tables and logs, e.g. 'tokens 14x14 (1 leading token dropped)'."""
        if self.kind == "tokens":
            dropped = f" ({self.prefix} leading token{'s' * (self.prefix != 1)} dropped)" if self.prefix else ""
            return f"tokens {self.grid[0]}x{self.grid[1]}{dropped}"
        return self.kind


def fits(h: int, w: int, input_hw: tuple[int, int]) -> bool:
    """Whether an (h, w) map can be the input's (H, W) shrunk by one stride s, give or take the pixels padding and
    valid convolutions add or lose (H / s in [h - 1, h + 3], the same s for W)."""
    lo, hi = 0.0, float("inf")
    for side, big in zip((h, w), input_hw):
        if not 1 <= side <= big:
            return False
        lo, hi = max(lo, big / (side + 3)), min(hi, big / (side - 1) if side > 1 else hi)
    return lo <= hi


def misfit(h: int, w: int, input_hw: tuple[int, int]) -> float:
    """How far an (h, w) map is from the input shrunk by one stride: |log(H / h) - log(W / w)|, inf if it does not fit."""
    if not fits(h, w, input_hw):
        return math.inf
    return abs(math.log(input_hw[0] / h) - math.log(input_hw[1] / w))


@lru_cache(maxsize=4096)
def detect(shape: tuple[int, ...], input_hw: tuple[int, int]) -> Layout:
    """The layout of a per-image output `shape` (no batch dim) for inputs of `input_hw`; one line if it is none."""
    shape, input_hw = tuple(int(s) for s in shape), (int(input_hw[0]), int(input_hw[1]))
    if len(shape) == 1:
        return Layout("vector")
    if len(shape) == 3:
        first, last = misfit(shape[1], shape[2], input_hw), misfit(shape[0], shape[1], input_hw)
        return Layout("nhwc" if last < first else "nchw")
    if len(shape) == 2:
        tokens = shape[0]
        for prefix in range(min(MAX_PREFIX, (tokens - 1) // 2) + 1):  # more grid tokens than leading ones
            grid = token_grid(tokens - prefix, input_hw)
            if grid is not None:
                return Layout("tokens", grid, prefix)
    raise ValueError(f"a layer output of shape {list(shape)} per image cannot be seen as a feature map of a "
                     f"{input_hw[0]}x{input_hw[1]} input: expected [C, H, W], [H, W, C], [tokens, C] or [C]")


def token_grid(count: int, input_hw: tuple[int, int]) -> tuple[int, int] | None:
    """The (h, w) grid of `count` tokens that tiles the input with one integer patch stride s (h = H / s and
    w = W / s, both rounded down or both up, as patch embeddings and strided convs give), or None."""
    big_h, big_w = input_hw
    for s in range(1, max(big_h, big_w) + 1):
        for h, w in ((big_h // s, big_w // s), (-(-big_h // s), -(-big_w // s))):
            if h * w == count and h >= 1 and w >= 1:
                return h, w
    return None


def as_map(out: object, input_hw: tuple[int, int], batch: int | None = None) -> object:
    """A layer's output batch as [N, C, H, W] maps (or [N, C] vectors); one line where it cannot be, or where it
    does not hold `batch` items (one per input image). Outputs that are not tensors (tuples, dicts) are returned as
    they are, for the caller to refuse."""
    if not isinstance(out, Tensor):
        return out
    if batch is not None and (out.dim() == 0 or out.shape[0] != batch):
        raise ValueError(f"a layer output of shape {list(out.shape)} for {batch} input image{'s' * (batch != 1)} is "
                         "not one map per image (its first dim mixes images with positions, as TNT's inner pixel "
                         "tokens do): pick a layer whose output has one row per image")
    return detect(tuple(out.shape[1:]), tuple(input_hw)).to_map(out)
