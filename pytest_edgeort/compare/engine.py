"""Pure comparison of model outputs (provider under test vs reference), no pytest / onnxruntime.

``compare_output`` checks one output against a :class:`~pytest_edgeort.tolerance.Tolerance` and
collects everything a user needs to judge a failure: error statistics, SNR, cosine, top-k agreement,
the worst elements, a histogram of errors in LSB and the smallest tolerance that would have passed.

Conventions:

- dtypes must match exactly (kind, width and signedness); shapes must match.
- Integer and bool outputs are compared as integers (exact, via 64-bit arithmetic); one LSB is one
  integer unit, whatever ``scale`` says.
- Float outputs with a quantization ``scale`` are compared in LSB units: ``|a - e| / scale`` is
  snapped to the nearest integer when within 1/64 LSB, which absorbs float32 rounding of
  dequantized values. Every bound compares that snapped error (``err_lsb * scale``), so ``lsb=k``
  behaves exactly like ``atol=k*scale``.
- NaN at the same positions on both sides, and infinities of the same sign, compare equal. A
  non-finite value on one side only is always a failure; such elements count as outside every bound.
  SNR, cosine, max/mean error are computed over the elements that are finite on both sides.
- ``snr_q_db`` is the SNR that ``min_snr_db`` checks: errors within one step (the quantization scale,
  else ``atol``) do not count as noise, and the signal power is at least ``N * step**2``, so a
  near-zero reference (a detector's empty map) does not turn a 1-LSB difference into -inf dB.
  ``snr_db`` is the plain SNR, for information.
- ``bias_lsb`` and ``gain`` work on the signed error in LSB, groups as in :mod:`~pytest_edgeort.patterns`.
- A failed output names the pattern of its error (``pattern``: offset, channel offset, region offset,
  gain, outliers, noise) with its numbers.
- ``smallest_passing`` holds, for every rule that is set, the smallest value of that key which would
  have passed with all other rules unchanged (``min_*`` keys: the largest passing value).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple

import numpy as np

from ..reporting.jsonreport import json_safe
from .patterns import describe, fit_gain, worst_bias
from .tolerance import Tolerance

WORST_COUNT = 5
LSB_SNAP = 1.0 / 64
#: the gain rule only fires when the fitted gain moves the largest |expected| by more than this (LSB)
GAIN_VISIBLE_LSB = 2.0
HIST_EDGES = (1, 2, 4, 8, 16, 32)
HIST_LABELS_INT = ("0", "1", "2", "3-4", "5-8", "9-16", "17-32", ">32")
HIST_LABELS_REAL = ("0", "(0,1]", "(1,2]", "(2,4]", "(4,8]", "(8,16]", "(16,32]", ">32")
NONFINITE_BUCKET = "non-finite"


class WorstElement(NamedTuple):
    """One of the largest deviations: index, actual, expected, |actual - expected|, error in LSB."""

    index: Tuple[int, ...]
    actual: Any
    expected: Any
    abs_err: float
    err_lsb: Optional[float]


@dataclass
class OutputComparison:
    """Result and diagnostics of comparing one output."""

    name: str
    passed: bool
    failures: List[str]
    actual_shape: Tuple[int, ...]
    expected_shape: Tuple[int, ...]
    actual_dtype: str
    expected_dtype: str
    tolerance: Tolerance
    scale: Optional[float] = None
    size: int = 0
    max_abs: Optional[float] = None
    mean_abs: Optional[float] = None
    max_lsb: Optional[float] = None
    frac_within: Optional[float] = None
    snr_db: Optional[float] = None
    snr_q_db: Optional[float] = None
    cosine: Optional[float] = None
    topk_agreement: Optional[float] = None
    bias: Optional[Dict[str, Any]] = None
    gain: Optional[float] = None
    pattern: Optional[str] = None
    pattern_text: Optional[str] = None
    nan_actual: int = 0
    nan_expected: int = 0
    inf_actual: int = 0
    inf_expected: int = 0
    nonfinite_mismatch: int = 0
    worst: List[WorstElement] = field(default_factory=list)
    histogram: List[Tuple[str, int]] = field(default_factory=list)
    histogram_unit: str = "LSB"
    smallest_passing: Dict[str, float] = field(default_factory=dict)
    vs_float: Optional[Dict[str, float]] = None

    def to_dict(self) -> Dict[str, Any]:
        """JSON-friendly dict; non-finite floats become the strings "inf", "-inf", "nan"."""
        d = asdict(self)
        d["tolerance"] = asdict(self.tolerance)
        d["actual_shape"] = list(self.actual_shape)
        d["expected_shape"] = list(self.expected_shape)
        d["worst"] = [w._asdict() | {"index": list(w.index)} for w in self.worst]
        d["histogram"] = [[label, count] for label, count in self.histogram]
        return json_safe(d)


@dataclass
class Comparison:
    """Result of comparing all outputs of one inference."""

    outputs: List[OutputComparison]
    missing: List[str] = field(default_factory=list)
    extra: List[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when no expected output is missing and every output passed."""
        return not self.missing and all(o.passed for o in self.outputs)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-friendly dict (see :meth:`OutputComparison.to_dict`)."""
        return {
            "passed": self.passed,
            "missing": list(self.missing),
            "extra": list(self.extra),
            "outputs": [o.to_dict() for o in self.outputs],
        }


def _category(dtype: np.dtype) -> str:
    if dtype.kind == "b":
        return "bool"
    if dtype.kind in "iu":
        return "integer"
    if dtype.kind == "f":
        return "float"
    return "other"


def _int_abs_diff(a: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Exact |a - e| of two integer/bool arrays of equal signedness, as float64."""
    wide = np.uint64 if (a.dtype.kind == "u" and e.dtype.kind == "u") else np.int64
    a64, e64 = a.astype(wide), e.astype(wide)
    # The difference of the larger minus the smaller fits in uint64 (mod 2**64 wrap is exact).
    diff = np.where(a64 >= e64, a64.astype(np.uint64) - e64.astype(np.uint64),
                    e64.astype(np.uint64) - a64.astype(np.uint64))
    return diff.astype(np.float64)


def _stat(values: np.ndarray, tol: Tolerance) -> float:
    if values.size == 0:
        return 0.0
    if tol.stat == "max":
        return float(values.max())
    if tol.stat == "mean":
        return float(values.mean())
    if tol.stat == "median":
        return float(np.median(values))
    return float(np.quantile(values, tol.quantile))


def _allowed_count(fraction: float, n: int) -> int:
    return int(math.floor(fraction * n + 1e-9))


def _kth_largest(values: np.ndarray, allowed: int) -> float:
    """Smallest v with count(values > v) <= allowed (0 when everything may be outside)."""
    if values.size <= allowed:
        return 0.0
    k = values.size - allowed - 1
    return float(max(np.partition(values, k)[k], 0.0))


def _nudge_up(value: float, passes: Callable[[float], bool]) -> float:
    """Raise ``value`` by a few ulps until ``passes(value)`` (absorbs float rounding)."""
    for _ in range(64):
        if passes(value):
            return value
        value = float(np.nextafter(value, math.inf))
    while not passes(value):
        value = value * (1 + 1e-9) + 1e-300
    return value


def _snr_db(a: np.ndarray, e: np.ndarray) -> float:
    return _snr_from(np.abs(a - e), e)


def _snr_from(err: np.ndarray, e: np.ndarray, step: float = 0.0) -> float:
    """SNR from absolute errors ``err`` against ``e``; with ``step`` > 0, errors within one step do not
    count and the signal power is at least ``e.size * step**2``."""
    if step:
        err = np.maximum(err - step, 0.0)
    noise = float(np.sum(err ** 2))
    signal = max(float(np.sum(e ** 2)), e.size * step * step)
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def _cosine(a: np.ndarray, e: np.ndarray) -> float:
    if np.array_equal(a, e):  # exactly 1, which rounding in the formula may miss
        return 1.0
    na, ne = float(np.linalg.norm(a)), float(np.linalg.norm(e))
    if na == 0.0 or ne == 0.0:
        return 0.0
    return float(np.clip(np.dot(a, e) / (na * ne), -1.0, 1.0))


def _topk_ranks(a: np.ndarray, e: np.ndarray, tie: float = 0.0) -> np.ndarray:
    """Per row (last axis): rank in ``e`` of the top-1 index of ``a`` (1 = expected's top-1).

    The rank counts expected values greater by more than ``tie``, so ties (and near ties within
    ``tie``) in ``e`` share the better rank; the top-1 of ``a`` is ``argmax`` (first maximum), what
    application code would pick.
    """
    if a.size == 0:
        return np.zeros(0, dtype=np.int64)
    last = a.shape[-1] if a.ndim else 1
    ar, er = a.reshape(-1, last), e.reshape(-1, last)
    top1 = np.argmax(ar, axis=1)
    ev = er[np.arange(er.shape[0]), top1]
    return (er > ev[:, None] + tie).sum(axis=1) + 1


def _histogram(units: np.ndarray, integer_labels: bool) -> List[Tuple[str, int]]:
    labels = HIST_LABELS_INT if integer_labels else HIST_LABELS_REAL
    finite = units[np.isfinite(units)]
    counts = [int(np.count_nonzero(finite == 0))]
    lo = 0.0
    for hi in HIST_EDGES:
        counts.append(int(np.count_nonzero((finite > lo) & (finite <= hi))))
        lo = hi
    counts.append(int(np.count_nonzero(finite > lo)))
    hist = list(zip(labels, counts))
    nonfinite = units.size - finite.size
    if nonfinite:
        hist.append((NONFINITE_BUCKET, int(nonfinite)))
    return hist


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def compare_output(
    name: str,
    actual: np.ndarray,
    expected: np.ndarray,
    tol: Tolerance,
    scale: Optional[float] = None,
    float_expected: Optional[np.ndarray] = None,
) -> OutputComparison:
    """Compare one output of the provider under test (``actual``) against the reference.

    ``scale`` is the output's quantization step (for LSB units); ``float_expected`` is the float
    model's output, used by the ``vs_float`` rule.
    """
    a, e = np.asarray(actual), np.asarray(expected)
    res = OutputComparison(
        name=name, passed=False, failures=[], actual_shape=tuple(a.shape),
        expected_shape=tuple(e.shape), actual_dtype=str(a.dtype), expected_dtype=str(e.dtype),
        tolerance=tol, scale=scale, size=int(e.size),
    )
    fail = res.failures.append
    cat_a, cat_e = _category(a.dtype), _category(e.dtype)
    if a.dtype != e.dtype:
        kinds = "" if cat_a == cat_e else f" ({cat_a} vs {cat_e})"
        fail(f"dtype mismatch: actual {a.dtype} vs expected {e.dtype}{kinds}")
    if a.shape != e.shape:
        fail(f"shape mismatch: actual {tuple(a.shape)} vs expected {tuple(e.shape)}")
    if "other" in (cat_a, cat_e) or a.shape != e.shape:
        if "other" in (cat_a, cat_e):
            fail(f"unsupported dtype for comparison: {a.dtype if cat_a == 'other' else e.dtype}")
        return res

    integer = cat_a != "float" and cat_e != "float"
    same_sign = integer and (a.dtype.kind == "u") == (e.dtype.kind == "u")
    af, ef = a.astype(np.float64), e.astype(np.float64)
    if integer:
        res.scale = lsb_size = 1.0
    else:
        lsb_size = float(scale) if scale else None

    nan_a, nan_e = np.isnan(af), np.isnan(ef)
    inf_a, inf_e = np.isinf(af), np.isinf(ef)
    res.nan_actual, res.nan_expected = int(nan_a.sum()), int(nan_e.sum())
    res.inf_actual, res.inf_expected = int(inf_a.sum()), int(inf_e.sum())
    both = ~(nan_a | inf_a | nan_e | inf_e)
    matched = (nan_a & nan_e) | (inf_a & inf_e & (af == ef))
    mismatch = ~both & ~matched
    res.nonfinite_mismatch = int(mismatch.sum())
    if res.nonfinite_mismatch:
        plural = "s" if res.nonfinite_mismatch != 1 else ""
        fail(f"non-finite values differ at {res.nonfinite_mismatch} position{plural} (actual: "
             f"{res.nan_actual} NaN, {res.inf_actual} Inf; expected: {res.nan_expected} NaN, "
             f"{res.inf_expected} Inf)")

    if same_sign:
        raw_err = _int_abs_diff(a, e)
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            raw_err = np.where(both, np.abs(af - ef), 0.0)
    raw_err[mismatch] = math.inf
    if lsb_size:
        units = _snap(raw_err / lsb_size)
        err = units * lsb_size
    else:
        units, err = None, raw_err
    abs_e = np.where(both, np.abs(ef), 0.0)
    fin_raw, fin_a, fin_e = raw_err[both], af[both], ef[both]

    res.max_abs = float(fin_raw.max()) if fin_raw.size else 0.0
    res.mean_abs = float(fin_raw.mean()) if fin_raw.size else 0.0
    if units is not None:
        res.max_lsb = float(units[both].max()) if fin_raw.size else 0.0
    peak = max(float(np.abs(fin_a).max()), float(np.abs(fin_e).max())) if fin_a.size else 0.0
    if peak > 0:  # SNR and cosine are scale-free; normalizing avoids overflow in the squares
        fin_a, fin_e = fin_a / peak, fin_e / peak
    res.snr_db = _snr_db(fin_a, fin_e)
    step = lsb_size or tol.atol or 0.0
    if step and peak > 0:  # on the snapped errors, normalized like the plain SNR
        res.snr_q_db = _snr_from(err[both] / peak, fin_e, step / peak)
    else:
        res.snr_q_db = res.snr_db
    res.cosine = _cosine(fin_a, fin_e)
    _worst(res, a, e, raw_err, units)
    if units is not None:
        res.histogram, res.histogram_unit = _histogram(units, True), "LSB"
    elif tol.atol:
        with np.errstate(over="ignore"):
            res.histogram, res.histogram_unit = _histogram(raw_err / tol.atol, False), "atol"
    else:
        res.histogram, res.histogram_unit = _histogram(raw_err, False), "abs"

    _check_bound(res, tol, err, abs_e, both, lsb_size)
    if tol.min_snr_db is not None:
        res.smallest_passing["min_snr_db"] = res.snr_q_db
        if res.snr_q_db < tol.min_snr_db:
            fail(f"SNR {res.snr_q_db:.1f} dB{_snr_note(res, step, lsb_size)} < min_snr_db {tol.min_snr_db:g}")
    if tol.min_cosine is not None:
        res.smallest_passing["min_cosine"] = res.cosine
        if res.cosine < tol.min_cosine:
            fail(f"cosine {res.cosine:.6f} < min_cosine {tol.min_cosine:g}")
    if tol.topk is not None:
        _check_topk(res, tol, af, ef, lsb_size)
    if tol.vs_float is not None:
        _check_vs_float(res, tol, af, ef, integer, float_expected)
    if tol.bias_lsb is not None or tol.gain is not None or res.failures:
        _check_systematic(res, tol, af, ef, both, lsb_size)
    res.passed = not res.failures
    return res


def _check_systematic(res: OutputComparison, tol: Tolerance, af: np.ndarray, ef: np.ndarray, both: np.ndarray,
                      lsb_size: Optional[float]) -> None:
    """``bias_lsb`` and ``gain`` on the signed error in LSB; on failure, name the error's pattern."""
    unit = lsb_size or 1.0
    with np.errstate(invalid="ignore", over="ignore"):
        signed = _snap(np.where(both, (af - ef) / unit, 0.0))
        e_units = np.where(both, ef / unit, 0.0)
    if tol.bias_lsb is not None:
        _check_bias(res, tol, signed, lsb_size)
    if tol.gain is not None:
        _check_gain(res, tol, signed, e_units, "LSB" if lsb_size else "")
    if res.failures:
        floor = tol.bias_lsb if tol.bias_lsb is not None else (2.0 if lsb_size else tol.atol or 0.0)
        found = describe(signed, e_units, "LSB" if lsb_size else "", floor)
        res.pattern, res.pattern_text = found.kind, found.text


def _snap(units: np.ndarray) -> np.ndarray:
    """Round values within ``LSB_SNAP`` of an integer to it (float32 rounding of dequantized values)."""
    near = np.rint(units)
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(units - near) <= LSB_SNAP, near, units)


def _snr_note(res: OutputComparison, step: float, lsb_size: Optional[float]) -> str:
    if not step or res.snr_q_db == res.snr_db:
        return ""
    within = "1 LSB" if lsb_size else f"atol {_fmt(step)}"
    return f" (errors within {within} not counted; plain SNR {res.snr_db:.1f} dB)"


def _check_bias(res: OutputComparison, tol: Tolerance, signed: np.ndarray, lsb_size: Optional[float]) -> None:
    """No group (whole output, slice along an axis, region) may have a median error beyond ``bias_lsb``
    plus the allowance its size earns from the output's noise (see :func:`~pytest_edgeort.patterns.biases`)."""
    if not lsb_size:
        res.failures.append("bias_lsb tolerance needs a quantized output; this output has no quantization scale")
        return
    worst = worst_bias(signed)
    if worst is None:
        return
    res.bias = {"where": worst.where, "size": worst.size, "median_lsb": worst.median,
                "noise_allowance_lsb": worst.allowance}
    res.smallest_passing["bias_lsb"] = worst.excess
    if worst.excess > tol.bias_lsb:
        noise = f" + {worst.allowance:.2g} for noise" if worst.allowance >= 0.005 else ""
        res.failures.append(f"systematic offset: median error {worst.median:+.4g} LSB on {worst.where} "
                            f"({worst.size} elements) > bias_lsb {tol.bias_lsb:g}{noise}")


def _check_gain(res: OutputComparison, tol: Tolerance, signed: np.ndarray, e_units: np.ndarray,
                unit: str) -> None:
    """The fitted gain ``actual - expected ~ gain * expected`` must stay within ``gain``; it counts only when
    it explains most of the error (better than an offset) and moves the largest |expected| by more than
    ``bias_lsb`` (else ``GAIN_VISIBLE_LSB``): otherwise it is rounding, offsets or outliers, judged by
    the other rules."""
    fit = fit_gain(signed, e_units)
    res.gain = fit.gain
    counts = fit.explains(tol.bias_lsb if tol.bias_lsb is not None else GAIN_VISIBLE_LSB)
    res.smallest_passing["gain"] = abs(fit.gain) if counts else 0.0
    if abs(fit.gain) > tol.gain and counts:
        res.failures.append(f"gain {fit.gain:+.2%} (actual ~ {1 + fit.gain:.4g} x expected, {fit.peak_error:.3g}"
                            f"{' ' + unit if unit else ''} at the largest |expected|) > gain {tol.gain:g}")


def _worst(res: OutputComparison, a: np.ndarray, e: np.ndarray, raw_err: np.ndarray,
           units: Optional[np.ndarray]) -> None:
    flat = raw_err.reshape(-1)
    nonzero = np.flatnonzero(flat > 0)
    if nonzero.size > WORST_COUNT:
        part = np.argpartition(-flat[nonzero], WORST_COUNT - 1)[:WORST_COUNT]
        nonzero = nonzero[part]
    order = nonzero[np.lexsort((nonzero, -flat[nonzero]))]
    for i in order:
        idx = tuple(int(x) for x in np.unravel_index(int(i), a.shape)) if a.ndim else ()
        res.worst.append(WorstElement(
            index=idx, actual=a.reshape(-1)[i].item(), expected=e.reshape(-1)[i].item(),
            abs_err=float(flat[i]),
            err_lsb=None if units is None else float(units.reshape(-1)[i]),
        ))


def _bound_text(tol: Tolerance, lsb_size: Optional[float]) -> str:
    parts = []
    if tol.atol is not None or tol.rtol is not None:
        text = _fmt(tol.atol or 0.0)
        if tol.rtol:
            text += f" + {_fmt(tol.rtol)}*|expected|"
        parts.append(text)
    if tol.lsb is not None and lsb_size:
        parts.append(f"{tol.lsb:g} LSB ({_fmt(tol.lsb * lsb_size)})")
    return parts[0] if len(parts) == 1 else "max(" + ", ".join(parts) + ")"


def _bound(tol: Tolerance, mag: np.ndarray, lsb_size: Optional[float]) -> np.ndarray:
    """Allowed |err| per element: the largest of ``atol + rtol*|e|`` and ``lsb*scale`` given."""
    b = np.full(np.shape(mag), -math.inf)
    if tol.atol is not None or tol.rtol is not None:
        b = np.maximum(b, (tol.atol or 0.0) + (tol.rtol or 0.0) * mag)
    if tol.lsb is not None and lsb_size:
        b = np.maximum(b, tol.lsb * lsb_size)
    return b


def _outside(tol: Tolerance, err: np.ndarray, mag: np.ndarray, lsb_size: Optional[float]) -> int:
    return int(np.count_nonzero(~(err <= _bound(tol, mag, lsb_size))))


def _smallest_bound(key: str, tol: Tolerance, err: np.ndarray, mag: np.ndarray,
                    lsb_size: Optional[float], allowed: int) -> float:
    """Smallest value of ``key`` (lsb, atol or rtol), other rules unchanged, that leaves at most
    ``allowed`` elements of ``err`` outside the bound."""
    covered = err <= _bound(replace(tol, **{key: None}), mag, lsb_size)
    with np.errstate(divide="ignore", invalid="ignore"):
        if key == "lsb":
            need = err / lsb_size
        elif key == "atol":
            need = err - (tol.rtol or 0.0) * mag
        else:
            need = np.where(err == 0, 0.0, err / mag)
    need = np.where(covered, 0.0, need)
    value = _kth_largest(need.reshape(-1), allowed)
    if not math.isfinite(value):
        return math.inf

    def passes(v: float) -> bool:
        return _outside(replace(tol, **{key: v}), err, mag, lsb_size) <= allowed

    nearest = float(round(value))
    if abs(nearest - value) <= 1e-9 * max(1.0, value) and passes(nearest):
        return nearest
    return _nudge_up(value, passes)


def _check_bound(res: OutputComparison, tol: Tolerance, err: np.ndarray, abs_e: np.ndarray,
                 both: np.ndarray, lsb_size: Optional[float]) -> None:
    """Elementwise / statistic bound from atol, rtol and lsb (largest given bound wins)."""
    if not tol.has_bound:
        return
    if tol.lsb is not None and not lsb_size:
        res.failures.append(
            "lsb tolerance needs a quantized output; this output has no quantization scale")
        if tol.atol is None and tol.rtol is None:
            return
    # Keys to report as "smallest passing": lsb when usable; atol (rtol if only rtol is set).
    keys = ["lsb"] if tol.lsb is not None and lsb_size else []
    if tol.atol is not None or tol.rtol is not None:
        keys.append("rtol" if tol.atol is None else "atol")
    n = res.size
    outside = _outside(tol, err, abs_e, lsb_size)
    res.frac_within = 1.0 - outside / n if n else 1.0
    text = _bound_text(tol, lsb_size)
    if tol.stat == "elemwise":
        allowed = _allowed_count(tol.max_mismatch, n)
        if outside > allowed:
            extra = f", max_mismatch allows {allowed}" if tol.max_mismatch else ""
            res.failures.append(f"{outside} of {n} elements ({outside / n:.2%}) outside "
                                f"|err| <= {text}{extra}")
        if n and (tol.max_mismatch or outside > allowed):
            res.smallest_passing["max_mismatch"] = outside / n
        stat_err, stat_mag = err, abs_e
    else:
        allowed = 0
        stat_err = np.array([_stat(err[both], tol)])
        stat_mag = np.array([_stat(abs_e[both], tol)])
        limit = float(_bound(tol, stat_mag, lsb_size)[0])
        label = f"quantile({tol.quantile:g})" if tol.stat == "quantile" else tol.stat
        if not stat_err[0] <= limit:
            res.failures.append(f"{label} |err| {_fmt(stat_err[0])} > {label} bound {text} "
                                f"= {_fmt(limit)}")
    for key in keys:
        value = _smallest_bound(key, tol, stat_err, stat_mag, lsb_size, allowed)
        if math.isfinite(value):  # infinite: non-finite mismatches no bound can cover
            res.smallest_passing[key] = value


def _check_topk(res: OutputComparison, tol: Tolerance, af: np.ndarray, ef: np.ndarray,
                lsb_size: Optional[float]) -> None:
    tie = (tol.tie_lsb or 0.0) * (lsb_size or 0.0)
    ranks = _topk_ranks(af, ef, tie)
    rows = ranks.size
    bad = int(np.count_nonzero(ranks > tol.topk))
    res.topk_agreement = 1.0 - bad / rows if rows else 1.0
    allowed = _allowed_count(tol.max_mismatch, rows)
    res.smallest_passing["topk"] = int(_kth_largest(ranks.astype(np.float64), allowed)) or 1
    if bad > allowed:
        extra = f", max_mismatch allows {allowed}" if tol.max_mismatch else ""
        ties = f" (near ties within {tol.tie_lsb:g} LSB count as inside)" if tie else ""
        res.failures.append(f"top-1 of actual outside expected top-{tol.topk}{ties} in {bad} of {rows} "
                            f"rows (agreement {res.topk_agreement:.1%}{extra})")


def _float_range(f: np.ndarray) -> float:
    """Output range as ORT's GetDataQuantParams/QuantParams::Compute derive it (includes 0)."""
    fin = f[np.isfinite(f)]
    rmin = float(fin.min()) if fin.size else 0.0
    rmax = float(fin.max()) if fin.size else 0.0
    rmax = max(rmax, rmin + 0.0001)
    return max(rmax, 0.0) - min(rmin, 0.0)


def _check_vs_float(res: OutputComparison, tol: Tolerance, af: np.ndarray, ef: np.ndarray,
                    integer: bool, float_expected: Optional[np.ndarray]) -> None:
    """ORT's TestQDQModelAccuracy rule (onnxruntime/test/providers/qnn/qnn_test_utils.h).

    ORT passes an element when ``qnn_err/range <= cpu_err/range`` or
    ``|qnn_err/range - cpu_err/range| <= tolerance`` with ``qnn_err = |f32 - qdq@QNN|``,
    ``cpu_err = |f32 - qdq@CPU|`` and ``range = rmax - rmin`` of the float output (0 included,
    at least 1e-4), i.e. ``ep_err <= ref_err + vs_float * range``; ORT's default is 0.004.
    With a non-elementwise ``stat`` the statistic of both errors is compared instead.
    """
    if float_expected is None:
        res.failures.append("vs_float needs the float model's outputs (float_model / "
                            "reference_model); none were given")
        return
    f = np.asarray(float_expected)
    if f.shape != af.shape:
        res.failures.append(f"vs_float: float output shape {tuple(f.shape)} differs from "
                            f"{tuple(af.shape)}")
        return
    if integer or f.dtype.kind != "f":
        res.failures.append(f"vs_float needs float (dequantized) outputs; got {res.actual_dtype} "
                            f"and float baseline {f.dtype}")
        return
    f = f.astype(np.float64)
    rng = _float_range(f)
    slack = tol.vs_float * rng
    with np.errstate(invalid="ignore"):
        ep_err, ref_err = np.abs(af - f), np.abs(ef - f)
    ok_nan = np.isnan(ep_err) & np.isnan(ref_err)
    ep_c = np.where(ok_nan, 0.0, np.nan_to_num(ep_err, nan=math.inf))
    ref_c = np.where(ok_nan, 0.0, np.nan_to_num(ref_err, nan=0.0))
    excess = (ep_c - ref_c) / rng
    ok = ep_c <= ref_c + slack
    n = ok.size
    info = {"ep_err_max": float(ep_c.max()) if n else 0.0,
            "ref_err_max": float(ref_c.max()) if n else 0.0,
            "ep_err_mean": float(ep_c.mean()) if n else 0.0,
            "ref_err_mean": float(ref_c.mean()) if n else 0.0,
            "output_range": rng, "slack": slack,
            "frac_ok": float(np.count_nonzero(ok)) / n if n else 1.0}
    res.vs_float = info
    if tol.stat == "elemwise":
        bad = n - int(np.count_nonzero(ok))
        allowed = _allowed_count(tol.max_mismatch, n)
        value = _kth_largest(excess.reshape(-1), allowed)
        if math.isfinite(value):
            res.smallest_passing["vs_float"] = _nudge_up(
                value, lambda v: n - int(np.count_nonzero(ep_c <= ref_c + v * rng)) <= allowed)
        if bad > allowed:
            extra = f", max_mismatch allows {allowed}" if tol.max_mismatch else ""
            res.failures.append(
                f"vs_float: {bad} of {n} elements have |actual - float| > |expected - float| + "
                f"{tol.vs_float:g}*range ({_fmt(slack)}){extra}")
        return
    s_ep, s_ref = _stat(ep_c.reshape(-1), tol), _stat(ref_c.reshape(-1), tol)
    info.update(ep_err=s_ep, ref_err=s_ref)
    value = max((s_ep - s_ref) / rng, 0.0)
    if math.isfinite(value):
        res.smallest_passing["vs_float"] = _nudge_up(value, lambda v: s_ep <= s_ref + v * rng)
    if not s_ep <= s_ref + slack:
        res.failures.append(f"vs_float: {tol.stat} |actual - float| {_fmt(s_ep)} > {tol.stat} "
                            f"|expected - float| {_fmt(s_ref)} + {tol.vs_float:g}*range "
                            f"({_fmt(slack)})")


def compare_outputs(
    actual: Mapping[str, np.ndarray],
    expected: Mapping[str, np.ndarray],
    tolerances: Mapping[str, Tolerance],
    scales: Mapping[str, Optional[float]] = {},  # noqa: B006 - read only
    float_outputs: Optional[Mapping[str, np.ndarray]] = None,
) -> Comparison:
    """Compare every expected output; outputs only in ``actual`` are listed as ``extra``.

    Extra outputs are not a failure, missing ones are. ``tolerances`` must hold a Tolerance for
    every expected output name (else ValueError).
    """
    missing_tol = [name for name in expected if name not in tolerances]
    if missing_tol:
        raise ValueError(f"no tolerance given for output(s): {', '.join(missing_tol)}")
    results, missing = [], []
    for name, exp in expected.items():
        if name not in actual:
            missing.append(name)
            continue
        flt = float_outputs.get(name) if float_outputs is not None else None
        results.append(compare_output(name, actual[name], exp, tolerances[name],
                                      scales.get(name), flt))
    extra = [name for name in actual if name not in expected]
    return Comparison(outputs=results, missing=missing, extra=extra)
