"""Shapes of an output error: offsets per group (whole output, slice, region), gain, outliers, noise.

Pure numpy. ``d`` is always the signed error ``actual - expected`` in LSB (or in absolute units for
float outputs), ``e`` the expected output in the same units. Used by the ``bias_lsb`` and ``gain``
rules of :mod:`pytest_edgeort.compare` and by the failure message, which names the pattern.

Groups whose median error is a "bias": the whole output (from ``MIN_WHOLE`` elements); with at least
``MIN_GROUP`` elements each, every slice along one axis that holds at least 5 % of the elements (a
channel of a few-channel map, a column of a detection head ``[1, anchors, 6]``, one example of a
stacked set); per plane of the last two axes (so per channel of an NCHW map), boxes of 1/5 x 1/5
(stride half a box: a region covering at least 30 % of both axes contains a whole box) and bands of
1/20 of the rows or of the columns (stride 1: a band of >= 5 % of the rows contains one). Thin
slices (one row of a map) are not groups: a healthy PP-OCR det text row is up to 61 LSB off (its
median, one example), 5-row bands at most 4. The median, not the mean: deep models err in heavy-
tailed bursts (PP-OCR det, 4 examples: a row's mean 14 LSB, its median 0; a box's mean 9.3, its
median 4), while an offset moves the median of every group it covers. Each group's median may exceed
``bias_lsb`` by what noise alone gives a median of its size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterator, List, Optional, Tuple

import numpy as np

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
#: pattern kinds that a looser tolerance would accept as if they were noise
#: a gain "explains" an error when the rms left after the fit is at most this fraction of the error's rms
GAIN_RESIDUAL = 0.5
WHOLE = "the whole output"
SYSTEMATIC = ("constant offset", "channel offset", "region offset", "gain")


@dataclass(frozen=True)
class Bias:
    """Median error of one group of elements."""

    where: str  # "the whole output", "index 2 on axis 1", "region [0:20, 64:128] of plane (0, 0)"
    size: int
    median: float
    rest_median: Optional[float] = None  # median error of the elements outside these slices (slices only)
    also: str = ""  # further slices on the same axis offset the same way, "index 5: -59"
    allowance: float = 0.0  # what noise alone moves the median of this many elements by (NOISE_Z sigmas)

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

    kind: str  # "constant offset", "channel offset", "region offset", "gain", "outliers", "noise", "none"
    text: str


def _slices(d: np.ndarray) -> Iterator[Bias]:
    for axis in range(d.ndim):
        count = d.shape[axis]
        size = d.size // max(count, 1)
        if count < 2 or size < MIN_GROUP or size < MIN_FRACTION * d.size:
            continue
        medians = np.median(np.moveaxis(d, axis, 0).reshape(count, -1), axis=1)
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
            float(np.median(rest)) if rest.size else None,
            also=also + more,
        )


def _window(d: np.ndarray, h: int, w: int, stride_h: int, stride_w: int) -> Optional[Bias]:
    """The h x w window of the last two axes (every plane, given strides) with the largest |median|."""
    rows, cols = d.shape[-2:]
    if h * w < MIN_GROUP or (h == rows and w == cols):
        return None
    planes = d.reshape(-1, rows, cols)
    view = np.lib.stride_tricks.sliding_window_view(planes, (h, w), axis=(1, 2))[:, ::stride_h, ::stride_w]
    medians = np.median(view.reshape(*view.shape[:3], -1), axis=-1)
    p, y, x = np.unravel_index(int(np.argmax(np.abs(medians))), medians.shape)
    y0, x0 = int(y) * stride_h, int(x) * stride_w
    plane = tuple(int(i) for i in np.unravel_index(int(p), d.shape[:-2])) if d.ndim > 2 else ()
    where = f"region [{y0}:{y0 + h}, {x0}:{x0 + w}]" + (f" of plane {plane}" if plane else "")
    return Bias(where, h * w, float(medians[p, y, x]))


def _windows(d: np.ndarray) -> Iterator[Bias]:
    """Boxes of 1/5 x 1/5 (stride half a box) and bands of 1/20 of the rows or columns (stride 1)."""
    if d.ndim < 2:
        return
    rows, cols = d.shape[-2:]
    h, w = -(-rows // BOX_DIVISIONS), -(-cols // BOX_DIVISIONS)
    for found in (
        _window(d, h, w, max(h // 2, 1), max(w // 2, 1)),
        _window(d, -(-rows // BAND_DIVISIONS), cols, 1, 1),
        _window(d, rows, -(-cols // BAND_DIVISIONS), 1, 1),
    ):
        if found is not None:
            yield found


def biases(d: np.ndarray) -> List[Bias]:
    """The largest-|median| group of each kind (whole output, each axis's slices, windows), each with the
    allowance noise earns it: ``NOISE_Z * 1.2533 * sigma / sqrt(size)``, the spread of a median of
    ``size`` values, sigma from the median absolute deviation of all of ``d`` (0 for a mostly exact output;
    an offset does not change it)."""
    if d.size == 0:
        return []
    sigma = 1.4826 * float(np.median(np.abs(d - np.median(d))))
    whole = [Bias(WHOLE, int(d.size), float(np.median(d)))] if d.size >= MIN_WHOLE else []
    return [
        replace(b, allowance=NOISE_Z * 1.2533 * sigma / math.sqrt(b.size)) for b in (*whole, *_slices(d), *_windows(d))
    ]


def worst_bias(d: np.ndarray) -> Optional[Bias]:
    """The group whose median error is farthest beyond its noise allowance (None: no group)."""
    found = biases(d)
    return max(found, key=lambda b: b.excess) if found else None


def fit_gain(d: np.ndarray, e: np.ndarray) -> Gain:
    """Least-squares ``d = gain * e``; ``gain = 0`` when ``e`` is all 0 (or ``d`` is not finite)."""
    d, e = d.reshape(-1).astype(np.float64), e.reshape(-1).astype(np.float64)
    d_max = float(np.abs(d).max()) if d.size else 0.0
    e_max = float(np.abs(e).max()) if e.size else 0.0
    if d_max == 0.0 or not math.isfinite(d_max) or not math.isfinite(e_max):
        return Gain(0.0, 0.0, 1.0, 1.0)
    dn = d / d_max  # normalized: the squares cannot overflow
    total = float(np.sqrt(np.mean(dn**2)))
    if e_max == 0.0:
        return Gain(0.0, 0.0, 1.0, float(np.sqrt(np.mean((dn - np.median(dn)) ** 2))) / total)
    en = e / e_max
    slope = float(np.dot(en, dn) / np.dot(en, en))
    residual = float(np.sqrt(np.mean((dn - slope * en) ** 2))) / total
    offset_residual = float(np.sqrt(np.mean((dn - np.median(dn)) ** 2))) / total
    gain = slope * d_max / e_max
    return Gain(gain, abs(gain) * e_max, residual, offset_residual)


def _where(index: Tuple[int, ...]) -> str:
    return str(index) if index else "()"


def describe(d: np.ndarray, e: np.ndarray, unit: str, offset_floor: float) -> Pattern:
    """Name the pattern of the error ``d`` (against the expected ``e``), with its numbers.

    In order: a gain (the error grows with |expected| and the fit explains most of it), an offset
    (whole output, a slice, a region: a group median beyond ``offset_floor``), a few outliers (at most
    3 or 1 % of the elements beyond ``OUTLIER_FACTOR`` x the 90th percentile), else noise.
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
    bias = worst_bias(d)
    whole = float(np.median(d))
    if bias is not None and bias.excess > offset_floor:
        if bias.where == WHOLE or abs(whole) > offset_floor:
            return Pattern(
                "constant offset", f"constant offset: median error {whole:+.4g}{u} over all {d.size} elements"
            )
        kind = "region offset" if bias.where.startswith("region") else "channel offset"
        also = f"; also {bias.also}{u}" if bias.also else ""
        rest = "" if bias.rest_median is None else f"; elsewhere median {bias.rest_median:+.3g}{u}"
        return Pattern(
            kind, f"{kind}: median error {bias.median:+.4g}{u} on {bias.where} ({bias.size} elements){also}{rest}"
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
