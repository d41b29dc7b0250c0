"""Human-readable rendering of :class:`~pytest_edgeort.compare.Comparison` (<= 100 columns)."""

from __future__ import annotations

import math
import textwrap
from typing import List, Optional, Sequence

from .engine import Comparison, OutputComparison
from .patterns import SYSTEMATIC

BAR_WIDTH = 40
LINE_WIDTH = 100
NAME_WIDTH = 18
SHAPE_WIDTH = 13
# (header, width) of the per-output table; the first three columns are left-aligned.
COLUMNS = (
    ("output", NAME_WIDTH),
    ("shape", SHAPE_WIDTH),
    ("verdict", 7),
    ("max|err|", 9),
    ("mean|err|", 9),
    ("max LSB", 7),
    ("within", 7),
    ("SNR dB", 6),
    ("cosine", 8),
    ("top-k", 6),
)
# Rules relaxing the same elementwise bound: any one of them alone would pass.
BOUND_KEYS = ("lsb", "atol", "rtol", "max_mismatch")


def fmt_num(x: Optional[float], digits: int = 4) -> str:
    """Compact number: ``-`` for None, inf/nan spelled out, else ``digits`` significant digits."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == int(x) and abs(x) < 1e6:
        return str(int(x))
    return f"{x:.{digits}g}"


def round_sig(x: float, up: bool, sig: int = 3) -> float:
    """Round ``x`` to ``sig`` significant digits, up or down (so a passing value stays passing)."""
    if x == 0 or not math.isfinite(x):
        return x
    factor = 10.0 ** (sig - 1 - math.floor(math.log10(abs(x))))
    scaled = x * factor
    nearest = round(scaled)
    if abs(scaled - nearest) < 1e-9 * max(1.0, abs(scaled)):
        return x  # already has at most ``sig`` significant digits
    return (math.ceil(scaled) if up else math.floor(scaled)) / factor


def _pct(x: Optional[float]) -> str:
    if x is None:
        return "-"
    if x == 1.0:
        return "100%"
    return f"{math.floor(x * 1000) / 10:.1f}%"  # never shows 100% for a partial agreement


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def _shape(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


def format_row(o: OutputComparison) -> str:
    """One line of the per-output table."""
    if o.actual_shape == o.expected_shape:
        shape = _shape(o.expected_shape)
    else:
        shape = f"{_shape(o.actual_shape)}!={_shape(o.expected_shape)}"
    checked = o.snr_q_db if o.snr_q_db is not None else o.snr_db  # the SNR min_snr_db checks
    snr = None if checked is None else (checked if math.isinf(checked) else round(checked, 1))
    cells = [
        o.name,
        shape,
        "ok" if o.passed else "FAIL",
        fmt_num(o.max_abs, 3),
        fmt_num(o.mean_abs, 3),
        fmt_num(o.max_lsb, 4),
        _pct(o.frac_within),
        fmt_num(snr, 4),
        "-" if o.cosine is None else f"{math.floor(o.cosine * 1e6) / 1e6:.6f}",
        _pct(o.topk_agreement),
    ]
    parts = []
    for i, (cell, (_, width)) in enumerate(zip(cells, COLUMNS)):
        cell = _fit(cell, width)
        parts.append(cell.ljust(width) if i < 3 else cell.rjust(width))
    return " ".join(parts).rstrip()


def format_header() -> str:
    """Header and rule lines of the per-output table."""
    head = " ".join(h.ljust(w) if i < 3 else h.rjust(w) for i, (h, w) in enumerate(COLUMNS))
    return head + "\n" + " ".join("-" * w for _, w in COLUMNS)


def _failed(o: OutputComparison, key: str, value: float) -> bool:
    """True when the rule ``key`` is what failed (its smallest passing value is beyond the set one)."""
    limit = getattr(o.tolerance, key)
    if limit is None:
        return True
    return value < limit if key.startswith("min_") else value > limit


def format_smallest_passing(o: OutputComparison) -> str:
    """``lsb=59 or max_mismatch=0.125; min_snr_db=13.6`` (values rounded so they still pass); for a
    failed output only the rules that failed."""

    def one(key: str, value: float) -> str:
        if key == "topk":
            return f"topk={int(value)}"
        if key == "min_cosine":
            return f"min_cosine={math.floor(value * 1e6) / 1e6:g}"
        return f"{key}={fmt_num(round_sig(value, up=not key.startswith('min_')), 6)}"

    sp = {k: v for k, v in o.smallest_passing.items() if o.passed or _failed(o, k, v)}
    if any(k in sp for k in BOUND_KEYS):  # one elementwise bound: every key that relaxes it
        sp.update({k: o.smallest_passing[k] for k in BOUND_KEYS if k in o.smallest_passing})
    bound = [one(k, sp[k]) for k in BOUND_KEYS if k in sp]
    rest = [one(k, v) for k, v in sp.items() if k not in BOUND_KEYS]
    groups = ([" or ".join(bound)] if bound else []) + rest
    return "; ".join(groups)


def _format_worst(o: OutputComparison) -> List[str]:
    if not o.worst:
        return []
    rows = [("index", "actual", "expected", "|err|", "err LSB")]
    for w in o.worst:
        rows.append(
            (
                str(w.index) if w.index else "()",
                fmt_num(w.actual, 7),
                fmt_num(w.expected, 7),
                fmt_num(w.abs_err, 4),
                fmt_num(w.err_lsb, 4),
            )
        )
    widths = [min(max(len(r[i]) for r in rows), 30) for i in range(5)]
    lines = ["  worst elements:"]
    for r in rows:
        cells = [_fit(c, w) for c, w in zip(r, widths)]
        lines.append(
            "    " + "  ".join([cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])])
        )
    return lines


def _format_histogram(o: OutputComparison) -> List[str]:
    if not o.histogram or o.size == 0:
        return []
    unit = {"LSB": "in LSB", "atol": "in units of atol", "abs": "(absolute)"}[o.histogram_unit]
    top = max(count for _, count in o.histogram) or 1
    label_w = max(len(label) for label, _ in o.histogram)
    count_w = max(len(str(count)) for _, count in o.histogram)
    lines = [f"  |err| histogram {unit}:"]
    for label, count in o.histogram:
        bar = "#" * math.ceil(BAR_WIDTH * count / top) if count else ""
        pct = f"{100.0 * count / o.size:5.1f}%" if count else ""
        lines.append(f"    {label.rjust(label_w)} | {bar.ljust(BAR_WIDTH)} {str(count).rjust(count_w)} {pct}".rstrip())
    return lines


def _wrap(text: str) -> List[str]:
    return textwrap.wrap(text, width=LINE_WIDTH, subsequent_indent="    ", break_on_hyphens=False)


def format_details(o: OutputComparison) -> str:
    """Reasons, rules, worst elements, histogram and smallest passing tolerance of one output."""
    head = f"{o.name}: {'passed' if o.passed else 'FAILED'}"
    info = [f"rules: {o.tolerance.describe()}"]
    if o.scale is not None:
        info.append(f"LSB = {fmt_num(o.scale, 6)}")
    dtype = o.actual_dtype if o.actual_dtype == o.expected_dtype else f"{o.actual_dtype} vs {o.expected_dtype}"
    info.append(f"dtype {dtype}")
    lines = [head + "  (" + ", ".join(info) + ")"]
    lines += [f"  - {reason}" for reason in o.failures]
    if o.pattern_text:
        lines += _wrap(f"  error pattern: {o.pattern_text}")
    if o.nan_actual or o.nan_expected or o.inf_actual or o.inf_expected:
        lines.append(
            f"  NaN actual/expected {o.nan_actual}/{o.nan_expected}, "
            f"Inf actual/expected {o.inf_actual}/{o.inf_expected}"
        )
    if o.vs_float:
        v = o.vs_float
        lines.append(
            f"  vs float model: |actual-float| mean {fmt_num(v['ep_err_mean'], 3)} max "
            f"{fmt_num(v['ep_err_max'], 3)}; |expected-float| mean "
            f"{fmt_num(v['ref_err_mean'], 3)} max {fmt_num(v['ref_err_max'], 3)}; "
            f"range {fmt_num(v['output_range'], 3)}; {_pct(v['frac_ok'])} ok"
        )
    lines += _format_worst(o)
    lines += _format_histogram(o)
    if o.smallest_passing:
        lines += _wrap(f"  smallest tolerance that would pass: {format_smallest_passing(o)}")
        if not o.passed and o.pattern in SYSTEMATIC:
            lines.append(f"    (information only: a {o.pattern} is a defect to fix, not noise to tolerate)")
    return "\n".join(lines)


def format_comparison(cmp: Comparison, title: str = "") -> str:
    """The failure message a user reads: summary table, then details of every failing output."""
    failed = [o for o in cmp.outputs if not o.passed]
    total = len(cmp.outputs) + len(cmp.missing)
    if cmp.passed:
        summary = f"all {total} output{'s' if total != 1 else ''} passed"
    else:
        summary = f"{len(failed) + len(cmp.missing)} of {total} outputs failed"
    lines = [f"{title}: {summary}" if title else summary]
    if cmp.missing:
        lines.append(f"missing outputs (expected but not produced): {', '.join(cmp.missing)}")
    if cmp.extra:
        lines.append(f"extra outputs (not compared): {', '.join(cmp.extra)}")
    if cmp.outputs:
        lines.append(format_header())
        lines += [format_row(o) for o in cmp.outputs]
    for o in failed:
        lines.append("")
        lines.append(format_details(o))
    return "\n".join(lines)
