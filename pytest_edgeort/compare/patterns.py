"""Shapes of an output error: offsets per group (whole output, slice, head, region), gain, garbage, outliers, noise.

Pure numpy. ``d`` is always the signed error ``actual - expected`` in LSB (or in absolute units for
float outputs), ``e`` the expected output in the same units. Used by the ``bias_lsb`` and ``gain``
rules of :mod:`pytest_edgeort.compare` and by the failure message, which names the pattern.

Groups whose median error is a "bias": the whole output (from ``MIN_WHOLE`` elements); with at least
``MIN_GROUP`` elements each, every slice along one axis that holds at least 5 % of the elements (a
channel of a few-channel map, a column of a detection head ``[1, anchors, 6]``, one example of a
stacked set; any share on an axis a :class:`~.layout.Layout` shows to be channels); per plane of the
last two axes (so per channel of an NCHW map), boxes of 1/5 x 1/5 (stride half a box, and one flush
against each far edge: every element is inside some box; a region covering at least 30 % of both
axes contains a whole box) and bands of 1/20 of the rows or of the columns (stride 1). With a layout
(an output the graph builds by a Concat of heads), every head is a group, and so are its slices and
its windows, on its ``H x W`` grid when the head is a flattened grid. Thin slices (one row of a map)
are not groups: a healthy PP-OCR det text row is up to 61 LSB off (its median, one example), 5-row
bands at most 4. The median, not the mean: deep models err in heavy-tailed bursts (PP-OCR det, 4
examples: a row's mean 14 LSB, its median 0; a box's mean 9.3, its median 4), while an offset moves
the median of every group it covers. Each group's median may exceed ``bias_lsb`` by what noise alone
gives a median of its size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import FrozenSet, Iterator, List, Optional, Tuple

import numpy as np

from . import metrics
from .layout import Head, Layout

MIN_GROUP = 64
#: the whole output is a group from this many elements (a median of fewer values is no statistic)
MIN_WHOLE = 8
#: medians within this many of their standard errors of 0 are what noise does, not an offset
NOISE_Z = 2.0
MIN_FRACTION = 0.05
#: further slices with a similar offset named in a bias's text
MAX_LISTED = 4
BOX_DIVISIONS = 5
BAND_DIVISIONS = 20
OUTLIER_FACTOR = 3.0
#: garbage: a group with at least this share of its elements beyond the floor on each side ...
GARBAGE_SHARE = 0.2
#: ... and an rms this many times the rest's
GARBAGE_FACTOR = 3.0
#: a gain "explains" an error when the rms left after the fit is at most this fraction of the error's rms
GAIN_RESIDUAL = 0.5
WHOLE = "the whole output"
#: pattern kinds that a looser tolerance would accept as if they were noise
SYSTEMATIC = ("constant offset", "channel offset", "head offset", "region offset", "gain", "garbage")


@dataclass(frozen=True)
class Bias:
    """Median error of one group of elements."""

    where: str  # "the whole output", "index 2 on axis 1", "region [0:20, 64:128] of plane (0, 0)"
    size: int
    median: float
    rest_median: Optional[float] = None  # median error of the elements outside this group (slices, heads)
    also: str = ""  # further slices on the same axis offset the same way, "index 5: -59"
    allowance: float = 0.0  # what noise alone moves the median of this many elements by (NOISE_Z sigmas)
    kind: str = "constant offset"  # the pattern an offset of this group is: constant / channel / head / region
    extent: str = ""  # regions: the rows and columns around the window whose median is as far off
    spread: float = 0.0  # regions: the robust spread (1.4826 x MAD) of the errors inside the window

    @property
    def excess(self) -> float:
        """|median| beyond the noise allowance: what ``bias_lsb`` is compared with."""
        return max(abs(self.median) - self.allowance, 0.0)


@dataclass(frozen=True)
class Gain:
    """Least-squares fit ``d = gain * e`` (a scale error about the real zero) and how well it explains ``d``."""

    gain: float
    peak_error: float  # |gain| * max |e|, in the units of d
    residual: float  # rms of d - gain * e, relative to rms of d (0 = the gain explains all)
    offset_residual: float  # the same for the best constant offset (d - median(d))

    def explains(self, floor: float) -> bool:
        """True when the gain moves the largest |e| by more than ``floor``, explains most of the error
        and explains it better than a constant offset would."""
        return self.peak_error > floor and self.residual <= min(GAIN_RESIDUAL, self.offset_residual)


@dataclass(frozen=True)
class Pattern:
    """What the error looks like, for the failure message."""

    kind: str  # "constant offset", "channel offset", "head offset", "region offset", "gain", "garbage", ...
    text: str
    where: str = ""  # the group it names (garbage, offsets)


def _slice_axes(d: np.ndarray, free: FrozenSet[int]) -> Iterator[Tuple[int, int]]:
    """``(axis, elements per slice)`` of the axes whose slices are groups: at least ``MIN_GROUP`` elements and
    ``MIN_FRACTION`` of the output, or any share on a ``free`` axis (one the graph shows to be channels)."""
    for axis in range(d.ndim):
        count = d.shape[axis]
        size = d.size // max(count, 1)
        if count >= 2 and size >= MIN_GROUP and (size >= MIN_FRACTION * d.size or axis in free):
            yield axis, size


def _slices(d: np.ndarray, free: FrozenSet[int] = frozenset()) -> Iterator[Bias]:
    for axis, size in _slice_axes(d, free):
        count = d.shape[axis]
        medians = metrics.median(np.moveaxis(d, axis, 0).reshape(count, -1), axis=-1)
        k = int(np.argmax(np.abs(medians)))
        alike = [
            i
            for i in range(count)
            if i != k and medians[i] * medians[k] > 0 and abs(medians[i]) >= 0.5 * abs(medians[k])
        ]  # further slices offset the same way
        also = ", ".join(f"index {i}: {medians[i]:+.3g}" for i in alike[:MAX_LISTED])
        more = f" and {len(alike) - MAX_LISTED} more" if len(alike) > MAX_LISTED else ""
        rest = np.delete(d, [k, *alike], axis=axis)
        yield Bias(
            f"index {k} on axis {axis}",
            size,
            float(medians[k]),
            metrics.median(rest) if rest.size else None,
            also=also + more,
            kind="channel offset",
        )


def _starts(n: int, size: int, stride: int) -> List[int]:
    """Window starts every ``stride`` and one flush against the far edge: every element is in some window."""
    starts = list(range(0, n - size + 1, stride))
    return starts if starts[-1] == n - size else [*starts, n - size]


def _run(mask: np.ndarray, lo: int, hi: int) -> Tuple[int, int]:
    """The run of True in ``mask`` that overlaps ``[lo, hi)`` most (``(lo, hi)`` when none does)."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    runs = list(zip(edges[::2].tolist(), edges[1::2].tolist()))
    best = max(runs, key=lambda r: min(r[1], hi) - max(r[0], lo), default=None)
    return best if best is not None and min(best[1], hi) > max(best[0], lo) else (lo, hi)


def _extent(plane: np.ndarray, y0: int, y1: int, x0: int, x1: int, median: float) -> str:
    """The rows and columns around a window whose median error is at least half the window's, the same way."""
    sign, half = math.copysign(1.0, median), abs(median) / 2
    ya, yb = _run(sign * np.median(plane[:, x0:x1], axis=1) >= half, y0, y1)
    xa, xb = _run(sign * np.median(plane[y0:y1, :], axis=0) >= half, x0, x1)
    return f"[{ya}:{yb}, {xa}:{xb}]: median {metrics.median(plane[ya:yb, xa:xb]):+.3g}"


#: region windows' statistics come from per-line counts of their values when those are integers (errors in LSB)
#: and one strip's running counts hold at most this many entries (128 MB of int32: a [1, 25200, 85] detector
#: output whose errors span 1,300 LSB); else the windows' values are copied and sorted
MAX_COUNTS = 1 << 25
#: lines are counted, and windows' statistics computed, this many (line or window, value) entries at a time
COUNT_CHUNK = 1 << 20
#: windows holding fewer values in all are copied: quicker than counting (a [1, 1000] output's boxes: 1,800)
COUNT_FROM_VALUES = 1 << 16
#: naming a failure's pattern copies at most about this many window values in all (~1 s): the windows of an output
#: whose errors cannot be counted (float errors) are then taken at fewer starts. A float detector head [1, 25200, 85]
#: has 2.6G values in its bands of rows at stride 1 (~80 s); at this budget its bands step by ~77 rows, 6 % of a
#: band, and the offset's real extent is still measured row by row. The ``bias_lsb`` rule's own search is never
#: thinned: its verdict is exact
NAMING_COPY_VALUES = 1 << 25
#: copied windows are taken this many values at a time (32 MB of float64): a detector's [1, 25200, 85] output
#: has 23,941 bands of 1,260 rows, 2.6G values in all
COPY_CHUNK_VALUES = 1 << 22


def _median_of_counts(counts: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """``np.median`` of every last-axis distribution: ``counts[..., j]`` copies of ``values[..., j]`` (ascending
    along the last axis), ``n`` values in each: the middle one, or the mean of the middle two."""
    cumulative = np.cumsum(counts, axis=-1)
    values = np.broadcast_to(values, counts.shape)

    def kth(k: int) -> np.ndarray:
        return np.take_along_axis(values, np.argmax(cumulative > k, axis=-1)[..., None], axis=-1)[..., 0]

    return kth(n // 2) if n % 2 else (kth(n // 2 - 1) + kth(n // 2)) / 2


def _stats_of_counts(counts: np.ndarray, values: np.ndarray, n: int) -> Tuple[np.ndarray, np.ndarray]:
    """The median and 1.4826 x the median absolute deviation of distributions given as counts of ``values``."""
    median = _median_of_counts(counts, values, n)
    distances = np.abs(values - median[..., None])
    order = np.argsort(distances, axis=-1, kind="stable")
    deviations = np.take_along_axis(distances, order, axis=-1)
    return median, 1.4826 * _median_of_counts(np.take_along_axis(counts, order, axis=-1), deviations, n)


def _counted_stats(
    planes: np.ndarray, h: int, w: int, ys: List[int], xs: List[int]
) -> Optional[Tuple[np.ndarray, ...]]:
    """:func:`_window_stats` without copying any window (a 640 x 640 map's 609 bands of rows hold 12.5M values):
    per strip of columns ``[x, x + w)`` (or of rows, whichever has fewer starts) each row's values are counted,
    and a window's counts are the difference of two running sums over the rows. Exactly ``np.median``'s results;
    None unless the errors are integers of a small enough range."""
    if planes.dtype != np.float64 or not planes.size:
        return None
    low, high = float(planes.min()), float(planes.max())
    along_rows = len(xs) <= len(ys)
    lines = planes if along_rows else planes.transpose(0, 2, 1)
    strips, width, starts, size = (xs, w, ys, h) if along_rows else (ys, h, xs, w)
    count, length = lines.shape[:2]
    if not (math.isfinite(low) and math.isfinite(high)) or count * (length + 1) * (high - low + 1) > MAX_COUNTS:
        return None
    if not np.array_equal(planes, np.rint(planes)):
        return None
    span, ends = int(high - low) + 1, np.asarray(starts) + size
    values, n = low + np.arange(span, dtype=np.float64), size * width
    at_once = max(1, COUNT_CHUNK // (count * span))
    tally = np.int32 if planes.size < 2**31 else np.int64
    medians, spreads = [], []
    for strip in strips:
        running = np.zeros((count, length + 1, span), tally)  # counts of each value in lines [0, i)
        for first in range(0, length, at_once):
            part = lines[:, first : first + at_once, strip : strip + width]
            codes = (part - low).astype(np.int64) + span * np.arange(count * part.shape[1]).reshape(count, -1, 1)
            per_line = np.bincount(codes.reshape(-1), minlength=codes.shape[0] * codes.shape[1] * span)
            block = running[:, first + 1 : first + 1 + part.shape[1]]
            np.cumsum(per_line.reshape(count, -1, span), axis=1, out=block)
            block += running[:, first : first + 1]
        found = [
            _stats_of_counts(running[:, last] - running[:, last - size], values, n)
            for last in (ends[i : i + at_once] for i in range(0, len(ends), at_once))
        ]
        medians.append(np.concatenate([median for median, _ in found], axis=1))
        spreads.append(np.concatenate([spread for _, spread in found], axis=1))
    stacked = np.stack(medians, axis=-1), np.stack(spreads, axis=-1)  # (planes, starts, strips)
    return stacked if along_rows else tuple(np.swapaxes(a, 1, 2) for a in stacked)


def _window_stats(
    planes: np.ndarray, h: int, w: int, ys: List[int], xs: List[int], budget: Optional[int] = None
) -> Tuple[np.ndarray, np.ndarray, List[int], List[int]]:
    """The median and robust spread (1.4826 x the median absolute deviation) of every ``h x w`` window at rows
    ``ys`` and columns ``xs`` of every plane, each an array ``(planes, len(ys), len(xs))``, and the starts they
    are for. Windows that have to be copied and would hold more than ``budget`` values in all are taken at
    fewer starts (:func:`_thinned`)."""
    in_windows = len(planes) * len(ys) * len(xs) * h * w
    counted = _counted_stats(planes, h, w, ys, xs) if in_windows > COUNT_FROM_VALUES else None
    if counted is not None:
        return (*counted, ys, xs)
    if budget is not None and in_windows > budget:
        ys, xs = _thinned(ys, xs, h, w, math.ceil(in_windows / budget))
    return (*_copied_stats(planes, h, w, ys, xs), ys, xs)


def _thinned(ys: List[int], xs: List[int], h: int, w: int, factor: int) -> Tuple[List[int], List[int]]:
    """About ``factor`` times fewer window starts: every k-th on the axis with more of them (then on the other,
    if that is not enough), never more than a window apart and the last one kept, so every element is still in
    some window."""

    def every(starts: List[int], size: int, k: int) -> List[int]:
        stride = starts[1] - starts[0] if len(starts) > 1 else 1
        kept = starts[:: max(1, min(k, size // stride))]
        return kept if kept[-1] == starts[-1] else [*kept, starts[-1]]

    rows_first = len(ys) >= len(xs)
    (first, size), (second, other) = ((ys, h), (xs, w)) if rows_first else ((xs, w), (ys, h))
    fewer = every(first, size, factor)
    rest = every(second, other, math.ceil(factor * len(fewer) / len(first)))
    return (fewer, rest) if rows_first else (rest, fewer)


def _copied_stats(planes: np.ndarray, h: int, w: int, ys: List[int], xs: List[int]) -> Tuple[np.ndarray, ...]:
    """:func:`_window_stats` from a copy of the windows' values, ``COPY_CHUNK_VALUES`` at a time."""
    windows = np.lib.stride_tricks.sliding_window_view(planes, (h, w), axis=(1, 2))
    per_window = planes.shape[0] * h * w
    xs_at_once = max(1, min(len(xs), COPY_CHUNK_VALUES // per_window))
    ys_at_once = max(1, COPY_CHUNK_VALUES // (per_window * xs_at_once))
    starts_y, starts_x = np.asarray(ys), np.asarray(xs)
    medians, spreads = [], []
    for y in range(0, len(ys), ys_at_once):
        row_medians, row_spreads = [], []
        for x in range(0, len(xs), xs_at_once):
            # both starts in one indexing (``[:, ys][:, :, xs]`` copied every column start of the chosen rows)
            view = windows[:, starts_y[y : y + ys_at_once, None], starts_x[None, x : x + xs_at_once]]
            values = view.reshape(*view.shape[:3], -1)
            median = metrics.median(values, axis=-1)
            row_medians.append(median)
            row_spreads.append(1.4826 * metrics.median(np.abs(values - median[..., None]), axis=-1))
        medians.append(np.concatenate(row_medians, axis=2))
        spreads.append(np.concatenate(row_spreads, axis=2))
    return np.concatenate(medians, axis=1), np.concatenate(spreads, axis=1)


def _window(
    d: np.ndarray, h: int, w: int, stride_h: int, stride_w: int, budget: Optional[int] = None
) -> Optional[Bias]:
    """The h x w window of the last two axes (every plane, given strides, up to every edge) whose |median|
    is farthest beyond the spread of the errors inside it, with its real extent (``budget``: see
    :func:`_window_stats`)."""
    rows, cols = d.shape[-2:]
    if h * w < MIN_GROUP or (h == rows and w == cols):
        return None
    planes = d.reshape(-1, rows, cols)
    ys, xs = _starts(rows, h, stride_h), _starts(cols, w, stride_w)
    medians, spreads, ys, xs = _window_stats(planes, h, w, ys, xs, budget)
    p, y, x = np.unravel_index(int(np.argmax(np.abs(medians) - spreads)), medians.shape)
    y0, x0, median = ys[int(y)], xs[int(x)], float(medians[p, y, x])
    plane = tuple(int(i) for i in np.unravel_index(int(p), d.shape[:-2])) if d.ndim > 2 else ()
    where = f"region [{y0}:{y0 + h}, {x0}:{x0 + w}]" + (f" of plane {plane}" if plane else "")
    extent = _extent(planes[p], y0, y0 + h, x0, x0 + w, median) if median else ""
    return Bias(where, h * w, median, kind="region offset", extent=extent, spread=float(spreads[p, y, x]))


def _windows(d: np.ndarray, budget: Optional[int] = None) -> Iterator[Bias]:
    """Boxes of 1/5 x 1/5 (stride half a box) and bands of 1/20 of the rows or columns (stride 1); ``budget``:
    see :func:`_window_stats`."""
    if d.ndim < 2:
        return
    rows, cols = d.shape[-2:]
    h, w = -(-rows // BOX_DIVISIONS), -(-cols // BOX_DIVISIONS)
    for found in (
        _window(d, h, w, max(h // 2, 1), max(w // 2, 1), budget),
        _window(d, -(-rows // BAND_DIVISIONS), cols, 1, 1, budget),
        _window(d, rows, -(-cols // BAND_DIVISIONS), 1, 1, budget),
    ):
        if found is not None:
            yield found


def _free_axes(ndim: int, axis: Optional[int], layout: Optional[Layout]) -> FrozenSet[int]:
    """Axes of one example other than the concat axis: the graph shows them to be channels (any share)."""
    if layout is None or axis is None:
        return frozenset()
    return frozenset(range(ndim - layout.ndim, ndim)) - {axis}


def _head_part(d: np.ndarray, axis: int, head: Head) -> np.ndarray:
    return d[(slice(None),) * axis + (slice(head.start, head.stop),)]


def _head_name(i: int, axis: int, head: Head) -> str:
    return f"head {i} [{head.start}:{head.stop}] on axis {axis}"


def _heads(d: np.ndarray, layout: Layout, budget: Optional[int]) -> Iterator[Bias]:
    """Per head: the head itself, its slices and its windows (on its ``H x W`` grid when it is one)."""
    axis = layout.axis_of(d.ndim)
    if axis is None or len(layout.heads) < 2:
        return
    free = _free_axes(d.ndim, axis, layout)
    for i, head in enumerate(layout.heads):
        part, name = _head_part(d, axis, head), _head_name(i, axis, head)
        if part.size >= MIN_GROUP:
            rest = np.delete(d, np.s_[head.start : head.stop], axis=axis)
            rest_median = metrics.median(rest) if rest.size else None
            yield Bias(name, int(part.size), metrics.median(part), rest_median, kind="head offset")
        inner = list(_slices(part, free))
        if head.grid is not None:
            grid = np.moveaxis(part, axis, -1)
            grid = grid.reshape(*grid.shape[:-1], *head.grid)
            inner += [
                replace(b, where=f"{b.where} of its {head.grid[0]}x{head.grid[1]} grid") for b in _windows(grid, budget)
            ]
        else:
            inner += list(_windows(part, budget))
        yield from (replace(b, where=f"{b.where} of {name}") for b in inner)


def biases(d: np.ndarray, layout: Optional[Layout] = None, budget: Optional[int] = None) -> List[Bias]:
    """The largest-|median| group of each kind (whole output, each axis's slices, windows, and with a
    ``layout`` every head with its own slices and windows), each with the allowance noise earns it:
    ``NOISE_Z * 1.2533 * sigma / sqrt(size)``, the spread of a median of ``size`` values, sigma from the
    median absolute deviation of all of ``d`` (0 for a mostly exact output; an offset does not change it);
    a region at least its own spread (1.4826 x the MAD inside it): a deep net's healthy errors come in
    spatial bursts (PP-OCR det's photo crop: a text region at median 6 LSB with a spread of 5.9), while an
    offset moves a region's median and leaves its spread as it was. ``budget``: see :func:`_window_stats`."""
    if d.size == 0:
        return []
    middle = metrics.median(d)
    sigma = 1.4826 * metrics.median(np.abs(d - middle))
    groups = [Bias(WHOLE, int(d.size), middle)] if d.size >= MIN_WHOLE else []
    axis = layout.axis_of(d.ndim) if layout is not None else None
    if d.size >= MIN_GROUP:  # slices and windows hold at least MIN_GROUP elements: a smaller output has none
        groups += _slices(d, _free_axes(d.ndim, axis, layout))
        if layout is None or len(layout.heads) < 2 or axis is None or axis < d.ndim - 2:
            # windows across the heads of a concat axis are no region: each head has its own
            groups += _windows(d, budget)
    if layout is not None:
        groups += list(_heads(d, layout, budget))
    return [replace(b, allowance=max(NOISE_Z * 1.2533 * sigma / math.sqrt(b.size), b.spread)) for b in groups]


def worst_bias(d: np.ndarray, layout: Optional[Layout] = None, budget: Optional[int] = None) -> Optional[Bias]:
    """The group whose median error is farthest beyond its noise allowance (None: no group)."""
    found = biases(d, layout, budget)
    return max(found, key=lambda b: b.excess) if found else None


def _rms(x: np.ndarray) -> float:
    """``float(np.sqrt(np.mean(x**2)))`` of a flat float64 array, bit for bit, without np.mean's Python."""
    return math.sqrt(metrics.mean(x**2))


def fit_gain(d: np.ndarray, e: np.ndarray) -> Gain:
    """Least-squares ``d = gain * e``; ``gain = 0`` when ``e`` is all 0 (or ``d`` is not finite)."""
    d, e = d.reshape(-1).astype(np.float64, copy=False), e.reshape(-1).astype(np.float64, copy=False)
    d_max = float(np.abs(d).max()) if d.size else 0.0
    e_max = float(np.abs(e).max()) if e.size else 0.0
    if d_max == 0.0 or not math.isfinite(d_max) or not math.isfinite(e_max):
        return Gain(0.0, 0.0, 1.0, 1.0)
    dn = d / d_max  # normalized: the squares cannot overflow
    total = _rms(dn)
    offset_residual = _rms(dn - metrics.median(dn)) / total
    if e_max == 0.0:
        return Gain(0.0, 0.0, 1.0, offset_residual)
    en = e / e_max
    slope = float(en.dot(dn) / en.dot(en))
    residual = _rms(dn - slope * en) / total
    gain = slope * d_max / e_max
    return Gain(gain, abs(gain) * e_max, residual, offset_residual)


def _where(index: Tuple[int, ...]) -> str:
    return str(index) if index else "()"


def _garbage_rows(rows: np.ndarray, floor: float) -> Optional[Tuple[int, float, float, float, float]]:
    """Among the rows of ``rows`` (each a group), the one spread both ways beyond ``floor`` (at least
    ``GARBAGE_SHARE`` of it on each side) and ``GARBAGE_FACTOR`` x rougher than the other rows:
    ``(row, rms, rest rms, share below, share above)``."""
    if rows.shape[0] < 2:
        return None
    below, above = np.mean(rows < -floor, axis=1), np.mean(rows > floor, axis=1)
    square = np.sum(rows**2, axis=1)
    rms = np.sqrt(square / rows.shape[1])
    rest = np.sqrt((square.sum() - square) / (rows.size - rows.shape[1]))
    ok = (np.minimum(below, above) >= GARBAGE_SHARE) & (rms > GARBAGE_FACTOR * rest)
    if not ok.any():
        return None
    k = int(np.argmax(np.where(ok, rms, -1.0)))
    return k, float(rms[k]), float(rest[k]), float(below[k]), float(above[k])


def _garbage(d: np.ndarray, floor: float, layout: Optional[Layout], unit: str) -> Optional[Pattern]:
    """Zero-mean garbage confined to a slice (a channel) or a head: its median says nothing, its spread does."""
    axis = layout.axis_of(d.ndim) if layout is not None else None
    free = _free_axes(d.ndim, axis, layout)
    found = []
    for ax, _ in _slice_axes(d, free):
        rows = np.moveaxis(d, ax, 0).reshape(d.shape[ax], -1)
        hit = _garbage_rows(rows, floor)
        if hit is not None:
            found.append((f"index {hit[0]} on axis {ax}", rows.shape[1], *hit[1:]))
    if axis is not None and layout is not None and len(layout.heads) > 1:
        parts = [_head_part(d, axis, h).reshape(-1) for h in layout.heads]
        width = min(p.size for p in parts)
        if width >= MIN_GROUP:  # heads as rows of equal size: an even share of each head's elements
            rows = np.stack([p[np.linspace(0, p.size - 1, width).astype(int)] for p in parts])
            hit = _garbage_rows(rows, floor)
            if hit is not None:
                i = hit[0]
                found.append((_head_name(i, axis, layout.heads[i]), parts[i].size, *hit[1:]))
    if not found:
        return None
    where, size, rms, rest, below, above = max(found, key=lambda f: f[2] / max(f[3], 1e-12))
    return Pattern(
        "garbage",
        where=where,
        text=f"garbage on {where} ({size} elements): spread both ways, rms {rms:.3g}{unit} ({below:.0%} below "
        f"-{floor:g}{unit}, {above:.0%} above +{floor:g}{unit}); elsewhere rms {rest:.3g}{unit}",
    )


def describe(
    d: np.ndarray,
    e: np.ndarray,
    unit: str,
    offset_floor: float,
    layout: Optional[Layout] = None,
    bias: Optional[Bias] = None,
) -> Pattern:
    """Name the pattern of the error ``d`` (against the expected ``e``), with its numbers; ``bias``: the worst
    group the ``bias_lsb`` rule found, else it is searched here (within ``NAMING_COPY_VALUES``).

    In order: a gain (the error grows with |expected| and the fit explains most of it), garbage (a slice
    or head spread both ways, far rougher than the rest), an offset (whole output, a slice, a head, a
    region with its real extent: a group median beyond ``offset_floor``), a few outliers (at most 3 or
    1 % of the elements beyond ``OUTLIER_FACTOR`` x the 90th percentile), else noise.
    """
    u = f" {unit}" if unit else ""
    mag = np.abs(d)
    if d.size == 0 or not mag.any():
        return Pattern("none", "no error")
    gain = fit_gain(d, e)
    if gain.explains(offset_floor):
        return Pattern(
            "gain",
            f"gain: the error grows with the expected value, actual ~ {1 + gain.gain:.4g} x "
            f"expected ({gain.gain:+.2%}, {gain.peak_error:.3g}{u} at the largest |expected|)",
        )
    garbage = _garbage(d, offset_floor, layout, u)
    bias = bias if bias is not None else worst_bias(d, layout, NAMING_COPY_VALUES)
    whole = metrics.median(d)
    if garbage is not None and (bias is None or bias.excess <= offset_floor or bias.where.startswith(garbage.where)):
        return garbage  # a two-sided group's median (or its head's part's) is no offset; one inside a head is
    if bias is not None and bias.excess > offset_floor:
        if bias.where == WHOLE or abs(whole) > offset_floor:
            return Pattern(
                "constant offset", f"constant offset: median error {whole:+.4g}{u} over all {d.size} elements"
            )
        also = f"; also {bias.also}{u}" if bias.also else ""
        rest = "" if bias.rest_median is None else f"; elsewhere median {bias.rest_median:+.3g}{u}"
        extent = f"; off around it: {bias.extent}{u}" if bias.extent else ""
        return Pattern(
            bias.kind,
            f"{bias.kind}: median error {bias.median:+.4g}{u} on {bias.where} ({bias.size} elements)"
            f"{extent}{also}{rest}",
        )
    typical = float(np.quantile(mag, 0.9, method="lower"))
    flat = mag.reshape(-1)
    big = np.flatnonzero(flat > max(OUTLIER_FACTOR * typical, offset_floor))
    if 0 < big.size <= max(3, d.size // 100):
        first = tuple(int(i) for i in np.unravel_index(int(big[np.argmax(flat[big])]), d.shape))
        return Pattern(
            "outliers",
            f"{big.size} outlier element{'s' if big.size != 1 else ''} (largest "
            f"{float(mag.max()):.4g}{u} at {_where(first)}); 90 % of elements "
            f"within {typical:.3g}{u}",
        )
    rms = float(np.sqrt(np.mean(d**2)))
    return Pattern(
        "noise",
        f"noise-like spread: rms {rms:.3g}{u}, 90 % within {typical:.3g}{u}, "
        f"no offset (largest group median {0.0 if bias is None else bias.median:+.3g}{u}) "
        f"and no gain ({gain.gain:+.2%})",
    )
