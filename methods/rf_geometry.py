"""What a receptive field is: one (size, stride, offset) per axis, the input box of each map position, and the two
ways a field can be undecidable from the graph (methods.receptive_field computes them)."""
from __future__ import annotations

from dataclasses import dataclass

from methods.base import pair


class Undecided(ValueError):
    """The traced graph cannot decide the field: torch.fx fails, or an op is unknown or mixes positions."""


class GlobalField(ValueError):
    """The layer depends on the whole image through a global op (pooling, normalization over the map, a gate)."""


@dataclass(frozen=True)


class ReceptiveField:
    """Output position (r, c) sees input rows [offset + r*stride, offset + r*stride + size), and columns the same
    with `cols` = (size, stride, offset) across the columns where those differ (a 1x7 convolution): `along(axis)`.

    `method`: "graph" (read off the traced graph) or "gradient" (measured by `empirical_field`). `whole_image`:
    every position sees the whole image (global ops, or a model that takes no larger input while its field fills
    the image): then size is the longer image side, stride 0 and offset 0, so each box is the image.
    """

    size: int
    stride: int
    offset: int  # input coordinate of the first pixel seen by position 0 (negative where padding is seen)
    method: str = "graph"
    whole_image: bool = False
    cols: tuple[int, int, int] | None = None  # (size, stride, offset) across the columns; None: as down the rows

    def along(self, axis: int) -> tuple[int, int, int]:
        """(size, stride, offset) down the rows (axis 0) or across the columns (axis 1)."""
        return self.cols if axis == 1 and self.cols is not None else (self.size, self.stride, self.offset)

    @property
    def sizes(self) -> tuple[int, int]:
        """(height, width) of the field in input pixels."""
        return self.along(0)[0], self.along(1)[0]

    def centre(self, index: int, axis: int = 0) -> float:
        """Input coordinate of the centre of output position `index` along one axis."""
        size, stride, offset = self.along(axis)
        return offset + index * stride + (size - 1) / 2

    def exceeds_image(self, input_size: int | tuple[int, int]) -> bool:
        """Whether the field is larger than an image of `input_size` along either side (so boxes get clipped)."""
        return self.whole_image or any(s > n for s, n in zip(self.sizes, pair(input_size)))

    def __str__(self) -> str:
        """The size as tables show it: '35', or '35x47' (rows x columns) where it is not square."""
        h, w = self.sizes
        return str(h) if h == w else f"{h}x{w}"


Box = tuple[int, int, int, int]  # (top, left, bottom, right), bottom and right exclusive


def box(rf: ReceptiveField, row: int, col: int, input_size: int | tuple[int, int]) -> tuple[Box, Box]:
    """(clipped, unclipped) input box of output position (row, col); clipped lies inside the image."""
    h, w = pair(input_size)
    (size_h, stride_h, offset_h), (size_w, stride_w, offset_w) = rf.along(0), rf.along(1)
    top, left = offset_h + row * stride_h, offset_w + col * stride_w
    full = (top, left, top + size_h, left + size_w)
    clipped = (max(top, 0), max(left, 0), min(full[2], h), min(full[3], w))
    return clipped, full
