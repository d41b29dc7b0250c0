"""How an output is laid out, as the graph shows it: heads concatenated along one axis, each maybe a flat grid.

Pure data, read from the model by :mod:`pytest_edgeort.model.info` and used by :mod:`.patterns` to judge
every head as a group of its own (a fault confined to the last head of a detector is no small share of
the whole output there) and a flattened ``H x W`` grid as the 2-D map it was before the Reshape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple


@dataclass(frozen=True)
class Head:
    """One input of the Concat: its span ``[start, stop)`` of the axis, and ``(H, W)`` when that span is a
    flattened ``H x W`` grid (a Reshape of ``[..., H, W]``, as detectors flatten their anchor grids)."""

    start: int
    stop: int
    grid: Optional[Tuple[int, int]] = None


@dataclass(frozen=True)
class Layout:
    """An output made of ``heads`` along ``axis`` of one example's shape (rank ``ndim``)."""

    axis: int
    heads: Tuple[Head, ...]
    ndim: int

    def axis_of(self, ndim: int) -> Optional[int]:
        """The concat axis in an array of rank ``ndim``: examples stacked on new leading axes shift it;
        None when the array has fewer axes than one example (it is not this output)."""
        return None if ndim < self.ndim else self.axis + ndim - self.ndim
