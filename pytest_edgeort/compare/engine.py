"""Pure comparison of model outputs (provider under test vs reference), no pytest / onnxruntime.

``compare_output`` checks one output against a :class:`~pytest_edgeort.compare.tolerance.Tolerance` and
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
- ``bias_lsb`` and ``gain`` work on the signed error in LSB, groups as in :mod:`~pytest_edgeort.compare.patterns`.
- A failed output names the pattern of its error (``pattern``: constant, channel, head or region offset,
  gain, garbage, outliers, noise) with its numbers.
- ``smallest_passing`` holds, for every rule that is set, the smallest value of that key which would
  have passed with all other rules unchanged (``min_*`` keys: the largest passing value).
"""

from __future__ import annotations

import math
from typing import Dict, Mapping, NamedTuple, Optional, Tuple

import numpy as np

from . import metrics, rules
from .layout import Layout
from .result import Comparison, OutputComparison, WorstElement
from .tolerance import Tolerance

WORST_COUNT = 5


class Yardstick(NamedTuple):
    """What quantization itself costs: the float output the reference approximates, and where it comes from
    (``float_model`` or the QDQ model without its activation rounding, :mod:`pytest_edgeort.model.yardstick`)."""

    output: np.ndarray
    source: str


#: ``str()`` of the numeric dtypes met: numpy 2 builds that text in Python (~2 us a call). Numeric dtypes that compare
#: equal print the same (their kind, width and byte order make the text); structured or user-defined ones need not
_DTYPE_TEXTS: Dict[np.dtype, str] = {}


def _dtype_text(dtype: np.dtype) -> str:
    """``str(dtype)``, kept in ``_DTYPE_TEXTS`` for a numeric dtype not from a user-defined type."""
    cached = dtype.kind in "biuf" and dtype.isbuiltin != 2
    text = _DTYPE_TEXTS.get(dtype) if cached else None
    if text is None:
        text = str(dtype)
        if cached:
            _DTYPE_TEXTS[dtype] = text
    return text


def _category(dtype: np.dtype) -> str:
    if dtype.kind == "b":
        return "bool"
    if dtype.kind in "iu":
        return "integer"
    if dtype.kind == "f":
        return "float"
    return "other"


def compare_output(
    name: str,
    actual: np.ndarray,
    expected: np.ndarray,
    tol: Tolerance,
    scale: Optional[float] = None,
    baseline: Optional[np.ndarray] = None,
    layout: Optional[Layout] = None,
    yardstick: Optional[Yardstick] = None,
) -> OutputComparison:
    """Compare one output of the provider under test (``actual``) against the reference.

    ``scale`` is the output's quantization step (for LSB units); ``baseline`` is the float
    model's output, used by the ``vs_float`` rule; ``layout`` the heads the graph concatenates into
    this output (each judged as a group of its own); ``yardstick`` the float output the reference
    approximates: the ``min_snr_db`` floor is lowered to the reference's own SNR against it minus
    ``YARDSTICK_MARGIN_DB`` where that is lower (an input on which quantization itself costs that much).
    """
    # non-finite values are handled by the rules themselves (see the module's conventions): numpy's warnings for
    # them are off for the whole comparison, in one errstate (entering one costs ~1.5 us; the rules entered five)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _compare(name, np.asarray(actual), np.asarray(expected), tol, scale, baseline, layout, yardstick)


def _compare(
    name: str,
    a: np.ndarray,
    e: np.ndarray,
    tol: Tolerance,
    scale: Optional[float],
    baseline: Optional[np.ndarray],
    layout: Optional[Layout],
    yardstick: Optional[Yardstick],
) -> OutputComparison:
    """:func:`compare_output`, numpy's floating-point warnings off."""
    res = OutputComparison(
        name=name,
        passed=False,
        failures=[],
        actual_shape=tuple(a.shape),
        expected_shape=tuple(e.shape),
        actual_dtype=_dtype_text(a.dtype),
        expected_dtype=_dtype_text(e.dtype),
        tolerance=tol,
        scale=scale,
        size=int(e.size),
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

    # every element finite on both sides (the usual case): the same results without the NaN/Inf masks' work
    finite = bool(np.isfinite(af).all() and np.isfinite(ef).all())
    both, mismatch = (None, None) if finite else _nonfinite(res, af, ef)  # both None: every element

    if same_sign:
        raw_err = metrics.int_abs_diff(a, e)
    else:
        raw_err = metrics.zero_outside(np.abs(af - ef), both)
    if mismatch is not None:
        raw_err[mismatch] = math.inf
    if lsb_size:
        units = metrics.snap(raw_err / lsb_size)
        err = units * lsb_size
    else:
        units, err = None, raw_err
    abs_e = metrics.zero_outside(np.abs(ef), both)
    fin_raw, fin_a, fin_e = (metrics.on_both(x, both) for x in (raw_err, af, ef))

    res.max_abs = float(fin_raw.max()) if fin_raw.size else 0.0
    res.mean_abs = metrics.mean(fin_raw) if fin_raw.size else 0.0
    if units is not None:
        res.max_lsb = float(metrics.on_both(units, both).max()) if fin_raw.size else 0.0
    # np.abs(fin_e) is abs_e's finite part: no second abs
    peak = max(float(np.abs(fin_a).max()), float(metrics.on_both(abs_e, both).max())) if fin_a.size else 0.0
    if peak > 0:  # SNR and cosine are scale-free; normalizing avoids overflow in the squares
        fin_a, fin_e = fin_a / peak, fin_e / peak
    res.snr_db = metrics.snr_db(fin_a, fin_e)
    step = lsb_size or tol.atol or 0.0
    if step and peak > 0:  # on the snapped errors, normalized like the plain SNR
        res.snr_q_db = metrics.snr_from(metrics.on_both(err, both) / peak, fin_e, step / peak)
    else:
        res.snr_q_db = res.snr_db
    if yardstick is not None and step and tol.min_snr_db is not None:
        _yardstick_snr(res, yardstick, ef, both, step)
    res.cosine = metrics.cosine(fin_a, fin_e)
    _worst(res, a, e, raw_err, units)
    if units is not None:
        res.histogram, res.histogram_unit = metrics.histogram(units, True), "LSB"
    elif tol.atol:
        res.histogram, res.histogram_unit = metrics.histogram(raw_err / tol.atol, False), "atol"
    else:
        res.histogram, res.histogram_unit = metrics.histogram(raw_err, False), "abs"

    rules.check_bound(res, tol, err, abs_e, both, lsb_size)
    if tol.min_snr_db is not None:
        rules.check_snr(res, tol, step, lsb_size)
    if tol.min_cosine is not None:
        rules.check_cosine(res, tol)
    if tol.topk is not None:
        rules.check_topk(res, tol, af, ef, lsb_size)
    if tol.vs_float is not None:
        rules.check_vs_float(res, tol, af, ef, integer, baseline)
    if tol.bias_lsb is not None or tol.gain is not None or res.failures:
        rules.check_systematic(res, tol, af, ef, both, lsb_size, layout)
    res.passed = not res.failures
    return res


def _nonfinite(res: OutputComparison, af: np.ndarray, ef: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Count the NaN and infinities of each side into ``res`` and fail it where they differ; returns where both
    sides are finite, and where the sides differ in a non-finite value (NaN against a number, inf against -inf)."""
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
        res.failures.append(
            f"non-finite values differ at {res.nonfinite_mismatch} position{plural} (actual: "
            f"{res.nan_actual} NaN, {res.inf_actual} Inf; expected: {res.nan_expected} NaN, "
            f"{res.inf_expected} Inf)"
        )
    return both, mismatch


def _yardstick_snr(
    res: OutputComparison, yardstick: Yardstick, ef: np.ndarray, both: Optional[np.ndarray], step: float
) -> None:
    """The reference's SNR against the yardstick, errors within one ``step`` not counted (as ``snr_q_db``)."""
    f = np.asarray(yardstick.output, dtype=np.float64)
    if f.shape != ef.shape:
        return
    ok = np.isfinite(f) if both is None else both & np.isfinite(f)
    snapped = metrics.snap(np.abs(ef[ok] - f[ok]) / step) * step
    peak = float(np.abs(ef[ok]).max()) if ok.any() else 0.0
    snr = metrics.snr_from(snapped / peak, ef[ok] / peak, step / peak) if peak > 0 else math.inf
    res.yardstick = {"source": yardstick.source, "reference_snr_db": snr}


def _worst(
    res: OutputComparison, a: np.ndarray, e: np.ndarray, raw_err: np.ndarray, units: Optional[np.ndarray]
) -> None:
    flat = raw_err.reshape(-1)
    nonzero = (flat > 0).nonzero()[0]  # np.flatnonzero of a flat array
    if nonzero.size > WORST_COUNT:
        part = np.argpartition(-flat[nonzero], WORST_COUNT - 1)[:WORST_COUNT]
        nonzero = nonzero[part]
    order = nonzero[np.lexsort((nonzero, -flat[nonzero]))]
    if not order.size:
        return
    indices = zip(*(axis.tolist() for axis in np.unravel_index(order, a.shape))) if a.ndim else [()] * order.size
    lsb = [None] * order.size if units is None else units.reshape(-1)[order].tolist()
    for index, actual, expected, abs_err, err_lsb in zip(
        indices, a.reshape(-1)[order].tolist(), e.reshape(-1)[order].tolist(), flat[order].tolist(), lsb
    ):
        res.worst.append(WorstElement(tuple(index), actual, expected, abs_err, err_lsb))


def compare_outputs(
    actual: Mapping[str, np.ndarray],
    expected: Mapping[str, np.ndarray],
    tolerances: Mapping[str, Tolerance],
    scales: Mapping[str, Optional[float]] = {},  # noqa: B006 - read only
    baseline: Optional[Mapping[str, np.ndarray]] = None,
    layouts: Mapping[str, Layout] = {},  # noqa: B006 - read only
    yardsticks: Mapping[str, Yardstick] = {},  # noqa: B006 - read only
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
        results.append(
            compare_output(
                name,
                actual[name],
                exp,
                tolerances[name],
                scales.get(name),
                baseline.get(name) if baseline is not None else None,
                layouts.get(name),
                yardsticks.get(name),
            )
        )
    extra = [name for name in actual if name not in expected]
    return Comparison(outputs=results, missing=missing, extra=extra)
