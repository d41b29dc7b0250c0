"""Error statistics of one output, pure numpy: SNR, cosine, top-1 ranks, histograms, order statistics."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Tuple

import numpy as np

if TYPE_CHECKING:
    from .tolerance import Tolerance

LSB_SNAP = 1.0 / 64
HIST_EDGES = (1, 2, 4, 8, 16, 32)
HIST_LABELS_INT = ("0", "1", "2", "3-4", "5-8", "9-16", "17-32", ">32")
HIST_LABELS_REAL = ("0", "(0,1]", "(1,2]", "(2,4]", "(4,8]", "(8,16]", "(16,32]", ">32")
NONFINITE_BUCKET = "non-finite"
_BUCKET_EDGES = np.array((0.0,) + HIST_EDGES)


def int_abs_diff(a: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Exact |a - e| of two integer/bool arrays of equal signedness, as float64."""
    wide = np.uint64 if (a.dtype.kind == "u" and e.dtype.kind == "u") else np.int64
    a64, e64 = a.astype(wide), e.astype(wide)
    # The difference of the larger minus the smaller fits in uint64 (mod 2**64 wrap is exact).
    diff = np.where(
        a64 >= e64, a64.astype(np.uint64) - e64.astype(np.uint64), e64.astype(np.uint64) - a64.astype(np.uint64)
    )
    return diff.astype(np.float64)


def on_both(x: np.ndarray, both: Optional[np.ndarray]) -> np.ndarray:
    """The elements of ``x`` where ``both`` (finite on both sides; None: every element), flat in C order."""
    return x.reshape(-1) if both is None else x[both]


def zero_outside(x: np.ndarray, both: Optional[np.ndarray]) -> np.ndarray:
    """``x`` with 0 where ``both`` is False (None: ``x`` itself, as ``np.where`` of an all-True mask copies it)."""
    return x if both is None else np.where(both, x, 0.0)


def mean(x: np.ndarray) -> float:
    """``float(np.mean(x))`` of a non-empty float64 array without its Python: np.mean divides ``np.add.reduce`` by
    the count."""
    return float(np.add.reduce(x, axis=None)) / x.size


def stat(values: np.ndarray, tol: Tolerance) -> float:
    if values.size == 0:
        return 0.0
    if tol.stat == "max":
        return float(values.max())
    if tol.stat == "mean":
        return float(values.mean())
    if tol.stat == "median":
        return float(np.median(values))
    return float(np.quantile(values, tol.quantile))


def median(values: np.ndarray, axis: Optional[int] = None) -> Any:
    """``np.median(values, axis)`` of float64 ``values`` for ``axis`` None (a float) or -1 (an array), bit for bit,
    without its ~10 us of Python a call and its copy of the last values for the NaN check: an output is compared on
    every example, and a median of the few values of a classifier's output, or of every window of a small map along
    their last axis, was most of that."""
    if axis is None:
        values = values.reshape(-1)
    n = values.shape[-1]
    if n == 0 or axis not in (None, -1):
        return float(np.median(values)) if axis is None else np.median(values, axis=axis)
    mid = n // 2
    part = _partition(values, [mid, n - 1] if n % 2 else [mid - 1, mid, n - 1])
    middle = part[..., mid : mid + 1] if n % 2 else part[..., mid - 1 : mid + 1]
    result = np.add.reduce(middle, axis=-1) / middle.shape[-1]  # their mean as np.mean takes it (-0.0 comes out 0.0)
    last = part[..., -1]  # NaN sorts last: np.median returns it where there is one
    if axis is None:
        return float(last if last != last else result)
    nan = np.isnan(last)
    return np.where(nan, last, result) if nan.any() else result


def _partition(values: np.ndarray, kth: Any) -> np.ndarray:
    """``np.partition(values, kth)`` (along the last axis) without its Python wrapper: the same copy, partitioned."""
    part = values.copy(order="K")
    part.partition(kth, axis=-1)
    return part


def allowed_count(fraction: float, n: int) -> int:
    return int(math.floor(fraction * n + 1e-9))


def kth_largest(values: np.ndarray, allowed: int) -> float:
    """Smallest v with count(values > v) <= allowed (0 when everything may be outside)."""
    if values.size <= allowed:
        return 0.0
    k = values.size - allowed - 1
    return float(max(_partition(values, k)[k], 0.0))


def nudge_up(value: float, passes: Callable[[float], bool]) -> float:
    """Raise ``value`` by a few ulps until ``passes(value)`` (absorbs float rounding)."""
    for _ in range(64):
        if passes(value):
            return value
        value = math.nextafter(value, math.inf)  # np.nextafter of one float, without the array round trip
    while not passes(value):
        value = value * (1 + 1e-9) + 1e-300
    return value


def _sum(x: np.ndarray) -> Any:
    """``np.sum(x)`` of an ndarray without its Python wrapper: it is ``np.add.reduce(x, axis=None)``."""
    return np.add.reduce(x, axis=None)


def snr_db(a: np.ndarray, e: np.ndarray) -> float:
    return snr_from(np.abs(a - e), e)


def snr_from(err: np.ndarray, e: np.ndarray, step: float = 0.0) -> float:
    """SNR from absolute errors ``err`` against ``e``; with ``step`` > 0, errors within one step do not
    count and the signal power is at least ``e.size * step**2``."""
    if step:
        err = np.maximum(err - step, 0.0)
    noise = float(_sum(err**2))
    signal = max(float(_sum(e**2)), e.size * step * step)
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def cosine(a: np.ndarray, e: np.ndarray) -> float:
    """Cosine similarity of two float64 arrays of the same shape."""
    if a.shape == e.shape and (a == e).all():  # np.array_equal: exactly 1, which rounding in the formula may miss
        return 1.0
    na, ne = _norm(a), _norm(e)
    if na == 0.0 or ne == 0.0:
        return 0.0
    # min/max: np.clip of one float, NaN kept as clip keeps it
    return min(max(float(a.dot(e) / (na * ne)), -1.0), 1.0)


def _norm(x: np.ndarray) -> float:
    """``float(np.linalg.norm(x))`` of a float64 array, as numpy computes it: sqrt(x.dot(x)) of x.ravel("K")."""
    x = x.ravel(order="K")
    return math.sqrt(x.dot(x))


def topk_ranks(a: np.ndarray, e: np.ndarray, tie: float = 0.0) -> np.ndarray:
    """Per row (last axis): rank in ``e`` of the top-1 index of ``a`` (1 = expected's top-1).

    The rank counts expected values greater by more than ``tie``, so ties (and near ties within
    ``tie``) in ``e`` share the better rank; the top-1 of ``a`` is ``argmax`` (first maximum), what
    application code would pick.
    """
    if a.size == 0:
        return np.zeros(0, dtype=np.int64)
    last = a.shape[-1] if a.ndim else 1
    ar, er = a.reshape(-1, last), e.reshape(-1, last)
    top1 = ar.argmax(axis=1)
    ev = er[np.arange(er.shape[0]), top1]
    return np.add.reduce(er > ev[:, None] + tie, axis=1) + 1  # the sum over axis 1, without ndarray.sum's Python


def histogram(units: np.ndarray, integer_labels: bool) -> List[Tuple[str, int]]:
    labels = HIST_LABELS_INT if integer_labels else HIST_LABELS_REAL
    finite = units[np.isfinite(units)]
    # bucket k of a positive value: the first edge it does not exceed ((0, 1] -> 1 ... > 32 -> 7); 0 and below -> 0
    counts = np.bincount(_BUCKET_EDGES.searchsorted(finite.reshape(-1)), minlength=len(labels)).tolist()
    counts[0] = int(np.count_nonzero(finite == 0))  # the "0" bucket: exact zeros only (errors are never negative)
    hist = list(zip(labels, counts))
    nonfinite = units.size - finite.size
    if nonfinite:
        hist.append((NONFINITE_BUCKET, int(nonfinite)))
    return hist


def snap(units: np.ndarray) -> np.ndarray:
    """Round values within ``LSB_SNAP`` of an integer to it (float32 rounding of dequantized values); infinities
    stay (the caller turns numpy's warning for ``inf - inf`` off, as :func:`~.engine.compare_output` does)."""
    near = np.rint(units)
    return np.where(np.abs(units - near) <= LSB_SNAP, near, units)


def float_range(f: np.ndarray) -> float:
    """Output range as ORT's GetDataQuantParams/QuantParams::Compute derive it (includes 0)."""
    fin = f[np.isfinite(f)]
    rmin = float(fin.min()) if fin.size else 0.0
    rmax = float(fin.max()) if fin.size else 0.0
    rmax = max(rmax, rmin + 0.0001)
    return max(rmax, 0.0) - min(rmin, 0.0)
