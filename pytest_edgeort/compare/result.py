"""What comparing outputs found: per-output results with their statistics, and their JSON-safe dicts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from .tolerance import Tolerance

_TOLERANCE_FIELDS = tuple(f.name for f in fields(Tolerance))
_LEAVES = (str, int, bool, type(None))


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
    yardstick: Optional[Dict[str, Any]] = None  # source, reference_snr_db: the reference against it

    def to_dict(self, plain: bool = True) -> Dict[str, Any]:
        """JSON-friendly dict; non-finite floats become the strings "inf", "-inf", "nan". ``plain=False``: the
        same dict with its values as they are, for a caller that makes it JSON-safe itself (a check record)."""
        values, rules = vars(self), vars(self.tolerance)  # no getattr per field: a comparison is made on every test
        d = {name: values[name] for name in _OUTPUT_FIELDS}  # _plain copies; asdict's deep copy cost ~0.3 ms
        d["tolerance"] = {name: rules[name] for name in _TOLERANCE_FIELDS}  # scalars: asdict's copy
        d["actual_shape"] = list(self.actual_shape)
        d["expected_shape"] = list(self.expected_shape)
        d["worst"] = [w._asdict() | {"index": list(w.index)} for w in self.worst]
        d["histogram"] = [[label, count] for label, count in self.histogram]
        return _plain(d) if plain else d

    def to_summary_dict(self) -> Dict[str, Any]:
        """:data:`SUMMARY_FIELDS` of :meth:`to_dict`, values as they are (a passing comparison's record when the
        run writes no report file)."""
        values = vars(self)
        return {name: values[name] for name in SUMMARY_FIELDS}


_OUTPUT_FIELDS = tuple(f.name for f in fields(OutputComparison))
#: what the terminal summary (its table and notes) and the JUnit metrics read of an output's result
SUMMARY_FIELDS = (
    *("name", "passed", "max_abs", "max_lsb", "snr_db", "snr_q_db", "topk_agreement"),  # the table, the JUnit metrics
    *("scale", "actual_dtype"),  # the note on float models the simulator computed in fp32
)


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

    def to_dict(self, plain: bool = True, summary: bool = False) -> Dict[str, Any]:
        """JSON-friendly dict (see :meth:`OutputComparison.to_dict`); ``summary``: each output's
        :meth:`~OutputComparison.to_summary_dict` only (its values as they are)."""
        return {
            "passed": self.passed,
            "missing": list(self.missing),
            "extra": list(self.extra),
            "outputs": [o.to_summary_dict() if summary else o.to_dict(plain) for o in self.outputs],
        }


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists and non-finite floats as the strings "inf", "-inf", "nan"."""
    kind = type(value)  # the plain types first, by exact type: a comparison's dict holds ~100 of them
    if kind is float:
        return value if math.isfinite(value) else str(value)
    if kind in _LEAVES:
        return value
    if isinstance(value, dict):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
