"""The tolerance rules, each a check on one output's errors: it appends its failures, its statistics
and the smallest value of its key that would have passed (``OutputComparison.smallest_passing``). They run inside
:func:`~.engine.compare_output`, with numpy's floating-point warnings off (non-finite values are handled here)."""

from __future__ import annotations

import math
from typing import Dict, Mapping, Optional, Union

import numpy as np

from . import metrics
from .layout import Layout
from .patterns import Bias, describe, fit_gain, worst_bias
from .result import OutputComparison
from .tolerance import Tolerance

#: the gain rule only fires when the fitted gain moves the largest |expected| by more than this (LSB)
GAIN_VISIBLE_LSB = 2.0


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def check_systematic(
    res: OutputComparison,
    tol: Tolerance,
    af: np.ndarray,
    ef: np.ndarray,
    both: Optional[np.ndarray],
    lsb_size: Optional[float],
    layout: Optional[Layout] = None,
) -> None:
    """``bias_lsb`` and ``gain`` on the signed error in LSB (groups per head of ``layout``; 0 where ``both`` is
    False, None: every element is finite on both sides); on failure, name the error's pattern."""
    unit = lsb_size or 1.0
    signed = metrics.snap(metrics.zero_outside((af - ef) / unit, both))
    e_units = metrics.zero_outside(ef / unit, both)
    worst = _check_bias(res, tol, signed, lsb_size, layout) if tol.bias_lsb is not None else None
    if tol.gain is not None:
        _check_gain(res, tol, signed, e_units, "LSB" if lsb_size else "")
    if res.failures:
        floor = tol.bias_lsb if tol.bias_lsb is not None else (2.0 if lsb_size else tol.atol or 0.0)
        found = describe(signed, e_units, "LSB" if lsb_size else "", floor, layout, worst)
        res.pattern, res.pattern_text = found.kind, found.text


def _snr_note(res: OutputComparison, step: float, lsb_size: Optional[float]) -> str:
    if not step or res.snr_q_db == res.snr_db:
        return ""
    within = "1 LSB" if lsb_size else f"atol {_fmt(step)}"
    return f" (errors within {within} not counted; plain SNR {res.snr_db:.1f} dB)"


#: the SNR floor follows the reference's own SNR against the yardstick down to this many dB below it
YARDSTICK_MARGIN_DB = 6.0


def check_snr(res: OutputComparison, tol: Tolerance, step: float, lsb_size: Optional[float]) -> None:
    """``min_snr_db`` on the SNR that does not count errors within one ``step``; with a yardstick, at most
    ``YARDSTICK_MARGIN_DB`` below what the reference itself reaches against it."""
    floor, why = tol.min_snr_db, ""
    if res.yardstick is not None:
        own = res.yardstick["reference_snr_db"]
        if own - YARDSTICK_MARGIN_DB < floor:
            floor = own - YARDSTICK_MARGIN_DB
            why = (
                f" (min_snr_db {tol.min_snr_db:g} lowered to what quantization itself costs on this input: the "
                f"reference is {own:.1f} dB from {res.yardstick['source']}, minus {YARDSTICK_MARGIN_DB:g} dB)"
            )
        res.yardstick["snr_floor_db"] = floor
    res.smallest_passing["min_snr_db"] = res.snr_q_db  # every floor up to it passes, lowered or not
    if res.snr_q_db < floor:
        rule = f"{floor:.1f} dB{why}" if why else f"min_snr_db {tol.min_snr_db:g}"
        res.failures.append(f"SNR {res.snr_q_db:.1f} dB{_snr_note(res, step, lsb_size)} < {rule}")


def check_cosine(res: OutputComparison, tol: Tolerance) -> None:
    """``min_cosine`` on the cosine similarity of the flattened outputs."""
    res.smallest_passing["min_cosine"] = res.cosine
    if res.cosine < tol.min_cosine:
        res.failures.append(f"cosine {res.cosine:.6f} < min_cosine {tol.min_cosine:g}")


def _check_bias(
    res: OutputComparison, tol: Tolerance, signed: np.ndarray, lsb_size: Optional[float], layout: Optional[Layout]
) -> Optional[Bias]:
    """No group (whole output, slice along an axis, region) may have a median error beyond ``bias_lsb``
    plus the allowance its size earns from the output's noise (see :func:`~pytest_edgeort.patterns.biases`);
    returns the worst group."""
    if not lsb_size:
        res.failures.append("bias_lsb tolerance needs a quantized output; this output has no quantization scale")
        return None
    worst = worst_bias(signed, layout)
    if worst is None:
        return None
    res.bias = {
        "where": worst.where,
        "size": worst.size,
        "median_lsb": worst.median,
        "noise_allowance_lsb": worst.allowance,
    }
    res.smallest_passing["bias_lsb"] = worst.excess
    if worst.excess > tol.bias_lsb:
        noise = f" + {worst.allowance:.2g} for noise" if worst.allowance >= 0.005 else ""
        res.failures.append(
            f"systematic offset: median error {worst.median:+.4g} LSB on {worst.where} "
            f"({worst.size} elements) > bias_lsb {tol.bias_lsb:g}{noise}"
        )
    return worst


def _check_gain(res: OutputComparison, tol: Tolerance, signed: np.ndarray, e_units: np.ndarray, unit: str) -> None:
    """The fitted gain ``actual - expected ~ gain * expected`` must stay within ``gain``; it counts only when
    it explains most of the error (better than an offset) and moves the largest |expected| by more than
    ``bias_lsb`` (else ``GAIN_VISIBLE_LSB``): otherwise it is rounding, offsets or outliers, judged by
    the other rules."""
    fit = fit_gain(signed, e_units)
    res.gain = fit.gain
    counts = fit.explains(tol.bias_lsb if tol.bias_lsb is not None else GAIN_VISIBLE_LSB)
    res.smallest_passing["gain"] = abs(fit.gain) if counts else 0.0
    if abs(fit.gain) > tol.gain and counts:
        res.failures.append(
            f"gain {fit.gain:+.2%} (actual ~ {1 + fit.gain:.4g} x expected, {fit.peak_error:.3g}"
            f"{' ' + unit if unit else ''} at the largest |expected|) > gain {tol.gain:g}"
        )


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


def _bound(
    bounds: Mapping[str, Optional[float]], mag: np.ndarray, lsb_size: Optional[float]
) -> Union[np.ndarray, float]:
    """Allowed |err| per element of ``mag``: the largest of ``atol + rtol*|e|`` and ``lsb*scale`` given (``bounds``:
    the three keys' values, a Tolerance's or changed ones). Without atol and rtol it is one float for all elements:
    ``err`` compares with it as with an array of it, without building one."""
    atol, rtol, lsb = bounds["atol"], bounds["rtol"], bounds["lsb"]
    b = (atol or 0.0) + (rtol or 0.0) * mag if atol is not None or rtol is not None else None
    if lsb is not None and lsb_size:
        b = lsb * lsb_size if b is None else np.maximum(b, lsb * lsb_size)
    return -math.inf if b is None else b  # no bound given: nothing is inside


def _bounds(tol: Tolerance, **changed: Optional[float]) -> Dict[str, Optional[float]]:
    """``tol``'s atol, rtol and lsb, with ``changed`` on top (no new Tolerance to validate in a search)."""
    return {"atol": tol.atol, "rtol": tol.rtol, "lsb": tol.lsb, **changed}


def _outside(bounds: Mapping[str, Optional[float]], err: np.ndarray, mag: np.ndarray, lsb_size: Optional[float]) -> int:
    return int(np.count_nonzero(~(err <= _bound(bounds, mag, lsb_size))))


def _smallest_bound(
    key: str, tol: Tolerance, err: np.ndarray, mag: np.ndarray, lsb_size: Optional[float], allowed: int
) -> float:
    """Smallest value of ``key`` (lsb, atol or rtol), other rules unchanged, that leaves at most
    ``allowed`` elements of ``err`` outside the bound."""
    covered = err <= _bound(_bounds(tol, **{key: None}), mag, lsb_size)
    if key == "lsb":
        need = err / lsb_size
    elif key == "atol":
        need = err - (tol.rtol or 0.0) * mag
    else:
        need = np.where(err == 0, 0.0, err / mag)
    need = np.where(covered, 0.0, need)
    value = metrics.kth_largest(need.reshape(-1), allowed)
    if not math.isfinite(value):
        return math.inf

    def passes(v: float) -> bool:
        return _outside(_bounds(tol, **{key: v}), err, mag, lsb_size) <= allowed

    nearest = float(round(value))
    if abs(nearest - value) <= 1e-9 * max(1.0, value) and passes(nearest):
        return nearest
    return metrics.nudge_up(value, passes)


def check_bound(
    res: OutputComparison,
    tol: Tolerance,
    err: np.ndarray,
    abs_e: np.ndarray,
    both: Optional[np.ndarray],
    lsb_size: Optional[float],
) -> None:
    """Elementwise / statistic bound from atol, rtol and lsb (largest given bound wins); statistics over the
    elements where ``both`` (None: all)."""
    if not tol.has_bound:
        return
    if tol.lsb is not None and not lsb_size:
        res.failures.append("lsb tolerance needs a quantized output; this output has no quantization scale")
        if tol.atol is None and tol.rtol is None:
            return
    # Keys to report as "smallest passing": lsb when usable; atol (rtol if only rtol is set).
    keys = ["lsb"] if tol.lsb is not None and lsb_size else []
    if tol.atol is not None or tol.rtol is not None:
        keys.append("rtol" if tol.atol is None else "atol")
    n = res.size
    outside = _outside(_bounds(tol), err, abs_e, lsb_size)
    res.frac_within = 1.0 - outside / n if n else 1.0
    if tol.stat == "elemwise":
        allowed = metrics.allowed_count(tol.max_mismatch, n)
        if outside > allowed:
            extra = f", max_mismatch allows {allowed}" if tol.max_mismatch else ""
            res.failures.append(
                f"{outside} of {n} elements ({outside / n:.2%}) outside |err| <= {_bound_text(tol, lsb_size)}{extra}"
            )
        if n and (tol.max_mismatch or outside > allowed):
            res.smallest_passing["max_mismatch"] = outside / n
        stat_err, stat_mag = err, abs_e
    else:
        allowed = 0
        stat_err = np.array([metrics.stat(metrics.on_both(err, both), tol)])
        stat_mag = np.array([metrics.stat(metrics.on_both(abs_e, both), tol)])
        limit = float(np.max(_bound(_bounds(tol), stat_mag, lsb_size)))  # one value: stat_mag holds one
        label = f"quantile({tol.quantile:g})" if tol.stat == "quantile" else tol.stat
        if not stat_err[0] <= limit:
            res.failures.append(
                f"{label} |err| {_fmt(stat_err[0])} > {label} bound {_bound_text(tol, lsb_size)} = {_fmt(limit)}"
            )
    for key in keys:
        value = _smallest_bound(key, tol, stat_err, stat_mag, lsb_size, allowed)
        if math.isfinite(value):  # infinite: non-finite mismatches no bound can cover
            res.smallest_passing[key] = value


def check_topk(
    res: OutputComparison, tol: Tolerance, af: np.ndarray, ef: np.ndarray, lsb_size: Optional[float]
) -> None:
    tie = (tol.tie_lsb or 0.0) * (lsb_size or 0.0)
    ranks = metrics.topk_ranks(af, ef, tie)
    rows = ranks.size
    bad = int(np.count_nonzero(ranks > tol.topk))
    res.topk_agreement = 1.0 - bad / rows if rows else 1.0
    allowed = metrics.allowed_count(tol.max_mismatch, rows)
    res.smallest_passing["topk"] = int(metrics.kth_largest(ranks.astype(np.float64), allowed)) or 1
    if bad > allowed:
        extra = f", max_mismatch allows {allowed}" if tol.max_mismatch else ""
        ties = f" (near ties within {tol.tie_lsb:g} LSB count as inside)" if tie else ""
        res.failures.append(
            f"top-1 of actual outside expected top-{tol.topk}{ties} in {bad} of {rows} "
            f"rows (agreement {res.topk_agreement:.1%}{extra})"
        )


def check_vs_float(
    res: OutputComparison, tol: Tolerance, af: np.ndarray, ef: np.ndarray, integer: bool, baseline: Optional[np.ndarray]
) -> None:
    """ORT's TestQDQModelAccuracy rule (onnxruntime/test/providers/qnn/qnn_test_utils.h).

    ORT passes an element when ``qnn_err/range <= cpu_err/range`` or
    ``|qnn_err/range - cpu_err/range| <= tolerance`` with ``qnn_err = |f32 - qdq@QNN|``,
    ``cpu_err = |f32 - qdq@CPU|`` and ``range = rmax - rmin`` of the float output (0 included,
    at least 1e-4), i.e. ``ep_err <= ref_err + vs_float * range``; ORT's default is 0.004.
    With a non-elementwise ``stat`` the statistic of both errors is compared instead.
    """
    if baseline is None:
        res.failures.append("vs_float needs the float model's outputs (float_model / reference_model); none were given")
        return
    baseline = np.asarray(baseline)
    if baseline.shape != af.shape:
        res.failures.append(f"vs_float: float output shape {tuple(baseline.shape)} differs from {tuple(af.shape)}")
        return
    if integer or baseline.dtype.kind != "f":
        res.failures.append(
            f"vs_float needs float (dequantized) outputs; got {res.actual_dtype} and float baseline {baseline.dtype}"
        )
        return
    bf = baseline.astype(np.float64)
    rng = metrics.float_range(bf)
    slack = tol.vs_float * rng
    ep_err, ref_err = np.abs(af - bf), np.abs(ef - bf)
    ok_nan = np.isnan(ep_err) & np.isnan(ref_err)
    ep_c = np.where(ok_nan, 0.0, np.nan_to_num(ep_err, nan=math.inf))
    ref_c = np.where(ok_nan, 0.0, np.nan_to_num(ref_err, nan=0.0))
    excess = (ep_c - ref_c) / rng
    ok = ep_c <= ref_c + slack
    n = ok.size
    info = {
        "ep_err_max": float(ep_c.max()) if n else 0.0,
        "ref_err_max": float(ref_c.max()) if n else 0.0,
        "ep_err_mean": float(ep_c.mean()) if n else 0.0,
        "ref_err_mean": float(ref_c.mean()) if n else 0.0,
        "output_range": rng,
        "slack": slack,
        "frac_ok": float(np.count_nonzero(ok)) / n if n else 1.0,
    }
    res.vs_float = info
    if tol.stat == "elemwise":
        bad = n - int(np.count_nonzero(ok))
        allowed = metrics.allowed_count(tol.max_mismatch, n)
        value = metrics.kth_largest(excess.reshape(-1), allowed)
        if math.isfinite(value):
            res.smallest_passing["vs_float"] = metrics.nudge_up(
                value, lambda v: n - int(np.count_nonzero(ep_c <= ref_c + v * rng)) <= allowed
            )
        if bad > allowed:
            extra = f", max_mismatch allows {allowed}" if tol.max_mismatch else ""
            res.failures.append(
                f"vs_float: {bad} of {n} elements have |actual - float| > |expected - float| + "
                f"{tol.vs_float:g}*range ({_fmt(slack)}){extra}"
            )
        return
    s_ep, s_ref = metrics.stat(ep_c.reshape(-1), tol), metrics.stat(ref_c.reshape(-1), tol)
    info.update(ep_err=s_ep, ref_err=s_ref)
    value = max((s_ep - s_ref) / rng, 0.0)
    if math.isfinite(value):
        res.smallest_passing["vs_float"] = metrics.nudge_up(value, lambda v: s_ep <= s_ref + v * rng)
    if not s_ep <= s_ref + slack:
        res.failures.append(
            f"vs_float: {tol.stat} |actual - float| {_fmt(s_ep)} > {tol.stat} "
            f"|expected - float| {_fmt(s_ref)} + {tol.vs_float:g}*range "
            f"({_fmt(slack)})"
        )
