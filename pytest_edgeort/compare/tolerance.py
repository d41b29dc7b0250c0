"""Tolerances for comparing an execution provider's outputs against a reference.

A :class:`Tolerance` is a set of rules (``atol``/``rtol``/``lsb`` bounds aggregated by ``stat``, ``min_snr_db``,
``min_cosine``, ``topk``/``tie_lsb``, ``bias_lsb``, ``gain``, ``vs_float``); an output passes when it satisfies
every rule that is set (``None`` switches a rule off). :func:`default_tolerance` gives the per-precision defaults,
:class:`ToleranceSpec` a user's layers over them. What each rule means, the defaults table and the measured
detection rates behind it: ``docs/tolerances.md``.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass, field, fields, replace
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from .._text import closest

STATS = ("elemwise", "max", "mean", "median", "quantile")
PRECISIONS = ("u8", "u16", "i8", "i16", "fp16", "fp32", "int", "bool")


@dataclass(frozen=True)
class Tolerance:
    """Rules an output must satisfy; ``None`` switches a rule off (see the module docstring)."""

    atol: Optional[float] = None
    rtol: Optional[float] = None
    lsb: Optional[float] = None
    stat: str = "elemwise"
    quantile: float = 0.99
    max_mismatch: float = 0.0
    min_snr_db: Optional[float] = None
    min_cosine: Optional[float] = None
    topk: Optional[int] = None
    tie_lsb: Optional[float] = None
    bias_lsb: Optional[float] = None
    gain: Optional[float] = None
    vs_float: Optional[float] = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = _validate_value(f.name, getattr(self, f.name), "Tolerance")
            object.__setattr__(self, f.name, value)

    @property
    def has_bound(self) -> bool:
        """True when an elementwise bound (atol, rtol or lsb) is set."""
        return self.atol is not None or self.rtol is not None or self.lsb is not None

    def describe(self) -> str:
        """Short ``key=value`` list of the active rules, e.g. ``lsb=2 min_snr_db=15``."""
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value == f.default:
                continue
            if f.name == "quantile" and self.stat != "quantile":
                continue
            parts.append(f"{f.name}={value:g}" if isinstance(value, float) else f"{f.name}={value}")
        if self.stat == "quantile" and not any(p.startswith("quantile=") for p in parts):
            parts.append(f"quantile={self.quantile:g}")
        return " ".join(parts) if parts else "(no rules)"


TOLERANCE_KEYS = frozenset(f.name for f in fields(Tolerance))
BOUND_KEYS = ("atol", "rtol", "lsb")

# key -> (expected-description, nullable)
_EXPECTED = {
    "atol": ("a non-negative number", True),
    "rtol": ("a non-negative number", True),
    "lsb": ("a non-negative number", True),
    "stat": ("one of " + ", ".join(STATS), False),
    "quantile": ("a number in [0, 1]", False),
    "max_mismatch": ("a number in [0, 1]", False),
    "min_snr_db": ("a number (dB)", True),
    "min_cosine": ("a number in [-1, 1]", True),
    "topk": ("an integer >= 1", True),
    "tie_lsb": ("a non-negative number (LSB)", True),
    "bias_lsb": ("a non-negative number (LSB)", True),
    "gain": ("a non-negative number (fraction, 0.03 = 3 %)", True),
    "vs_float": ("a non-negative number", True),
}


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _validate_value(key: str, value: Any, where: str) -> Any:
    """Return ``value`` normalized (float / int / str / None) or raise a one-line ValueError."""
    expected, nullable = _EXPECTED[key]
    if value is None or value is False:  # TOML has no null: ``min_snr_db = false`` switches a rule off
        if nullable:
            return None
    elif key == "stat":
        if isinstance(value, str) and value in STATS:
            return value
    elif key == "topk":
        if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1:
            return int(value)
    elif _is_real(value):
        v = float(value)
        if key in ("quantile", "max_mismatch"):
            ok = 0.0 <= v <= 1.0
        elif key == "min_cosine":
            ok = -1.0 <= v <= 1.0
        elif key == "min_snr_db":
            ok = True
        else:
            ok = v >= 0.0
        if ok:
            return v
    off = " (or false to switch it off)" if nullable else ""
    raise ValueError(f"{where}: tolerance key {key!r} must be {expected}{off}, got {value!r}")


def _unknown_keys(keys: Sequence[Any], valid: Tuple[str, ...], keywords: Tuple[str, ...] = ()) -> str:
    """``unknown tolerance key 'lbs' (did you mean 'lsb'? valid: ...)``; several keys each with their hint;
    ``keywords``: the call's own keyword arguments, suggested and listed too."""
    hints = {key: closest(str(key), valid + keywords) for key in keys}
    listed = ", ".join(valid) + (f"; and the call's own {', '.join(keywords)}" if keywords else "")
    if len(keys) == 1:
        hint = "" if hints[keys[0]] is None else f"did you mean {hints[keys[0]]!r}? "
        return f"unknown tolerance key {keys[0]!r} ({hint}valid: {listed})"
    named = ", ".join(
        repr(key) + ("" if match is None else f" (did you mean {match!r}?)") for key, match in hints.items()
    )
    return f"unknown tolerance keys {named} (valid: {listed})"


def _validate_rules(
    mapping: Mapping[str, Any], where: str, extra: Tuple[str, ...] = (), keywords: Tuple[str, ...] = ()
) -> Dict[str, Any]:
    """Every key of ``mapping`` validated; a ValueError names all bad keys and values at once."""
    valid = tuple(sorted(TOLERANCE_KEYS | set(extra)))
    out: Dict[str, Any] = {}
    unknown = [key for key in mapping if key not in TOLERANCE_KEYS and key not in extra]
    problems = [_unknown_keys(unknown, valid, keywords)] if unknown else []
    for key, value in mapping.items():
        if key in TOLERANCE_KEYS:
            try:
                out[key] = _validate_value(key, value, where)
            except ValueError as exc:
                problems.append(str(exc)[len(where) + 2 :])
    if problems:
        raise ValueError(f"{where}: {'; '.join(problems)}")
    return out


@dataclass(frozen=True)
class ToleranceSpec:
    """A user's tolerance (marker kwargs or a suite's ``[tolerance]`` table), parsed and validated once.

    Precedence, lowest first: an output's precision default (:func:`default_tolerance`) < ``rules``
    (every output) < ``outputs[name]`` (that output only). :meth:`over` stacks a later layer
    (``edge_compare``'s keyword arguments over the marker) into one spec of the same shape.
    """

    rules: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def needs_float_baseline(self) -> bool:
        """True when a ``vs_float`` rule is set (for every output or for one): the float model must run."""
        layers = (self.rules, *self.outputs.values())
        return any(layer.get("vs_float") is not None for layer in layers)

    def over(self, later: ToleranceSpec) -> ToleranceSpec:
        """This spec with ``later`` on top; a key ``later`` sets for every output also replaces this
        spec's per-output value of that key."""
        if not later.rules and not later.outputs:
            return self
        outputs = {}
        for name in dict.fromkeys([*self.outputs, *later.outputs]):
            kept = {k: v for k, v in self.outputs.get(name, {}).items() if k not in later.rules}
            outputs[name] = {**kept, **later.outputs.get(name, {})}
        return ToleranceSpec({**self.rules, **later.rules}, outputs)

    def for_output(self, name: str, default: Tolerance) -> Tolerance:
        """``default`` with ``rules`` and then ``outputs[name]`` on top; ``None`` clears a rule.

        The default's ``lsb`` bound yields to any elementwise bound (``atol``, ``rtol``, ``lsb``) the user
        sets: bounds of one tolerance combine as the largest, so ``atol=0`` would otherwise never tighten it.
        """
        rules = {**self.rules, **self.outputs.get(name, {})}
        if default.lsb is not None and any(key in rules for key in BOUND_KEYS):
            default = replace(default, lsb=None)
        return replace(default, **rules) if rules else default

    def check_outputs(self, names: Sequence[str], where: str) -> None:
        """Raise a one-line ValueError when per-output rules name an output not in ``names``."""
        unknown = sorted(set(self.outputs) - set(names))
        if unknown:
            raise ValueError(f"{where}: tolerance for unknown output {unknown[0]!r}; model outputs: {', '.join(names)}")


def parse_tolerance(mapping: Mapping[str, Any], where: str, keywords: Tuple[str, ...] = ()) -> ToleranceSpec:
    """Validate a user tolerance mapping (marker kwargs or a TOML ``[tolerance]`` table) into a spec.

    ``mapping`` may hold ``outputs = {name: {...}}`` with per-output rules. Raises a one-line
    ``ValueError`` naming ``where``, the key and what was expected; an unknown key close to one of
    ``keywords`` (the call's own keyword arguments, as ``edge_compare``'s ``label``) is taken for a typo of it.
    """
    if not isinstance(mapping, Mapping):
        raise ValueError(f"{where}: tolerance must be a table/mapping, got {type(mapping).__name__}")
    rules = _validate_rules(mapping, where, extra=("outputs",), keywords=keywords)
    per_output: Dict[str, Dict[str, Any]] = {}
    outputs = mapping.get("outputs", {})
    if not isinstance(outputs, Mapping):
        raise ValueError(
            f"{where}: tolerance key 'outputs' must be a mapping of output name -> tolerance keys, got {outputs!r}"
        )
    for name, sub in outputs.items():
        sub_where = f"{where} (outputs.{name})"
        if not isinstance(sub, Mapping):
            raise ValueError(f"{sub_where}: expected a mapping of tolerance keys, got {sub!r}")
        per_output[str(name)] = _validate_rules(sub, sub_where)
    return ToleranceSpec(rules, per_output)


#: Outputs at most this many requantizations (QuantizeLinear nodes) from a graph input are "shallow":
#: their healthy HTP-vs-CPU error is a few LSB, so an LSB bound and a gain rule apply.
SHALLOW_DEPTH = 8
#: One "coarse" LSB of a 16-bit output: the u8 step of the same range (u16 rules = u8 rules x 256).
U16_STEP = 256.0

_DEFAULTS = {
    "u8": Tolerance(bias_lsb=3.0, min_snr_db=10.0),
    "u8_shallow": Tolerance(lsb=3.0, bias_lsb=2.0, gain=0.03, min_snr_db=10.0),
    "u16": Tolerance(bias_lsb=3.0 * U16_STEP, min_snr_db=20.0),
    "u16_shallow": Tolerance(lsb=3.0 * U16_STEP, bias_lsb=2.0 * U16_STEP, gain=0.03, min_snr_db=20.0),
    "float_accel": Tolerance(atol=1e-2, rtol=1e-2, max_mismatch=1e-3, min_snr_db=30.0),
    "fp32_cpu": Tolerance(atol=1e-5, rtol=1e-4),
    "int": Tolerance(atol=0.0),
    "bool": Tolerance(atol=0.0),
}
_TOP1 = {"u8": Tolerance(topk=1, tie_lsb=2.0), "u16": Tolerance(topk=1, tie_lsb=2.0 * U16_STEP)}
#: deep classifiers: a healthy HTP moves deep logits by tens of LSB (rapidocr cls: 40 LSB at most, one
#: noise-input decision flipped at a CPU margin of 16 LSB), so only a class change past a 32-LSB margin fails
_TOP1_DEEP = {"u8": Tolerance(topk=1, tie_lsb=32.0), "u16": Tolerance(topk=1, tie_lsb=32.0 * U16_STEP)}
#: ops whose classifier-shaped output is class scores (a deep state vector of the same shape is not)
SCORE_OPS = frozenset({"Softmax", "LogSoftmax", "Gemm", "MatMul"})


def is_classifier_shape(shape: Sequence[Any]) -> bool:
    """True for ``[C]``, ``[1, C]``, ``[1, 1, C]`` ... with C >= 2: one row of scores (logits, probabilities)."""
    return len(shape) >= 1 and all(d == 1 for d in shape[:-1]) and isinstance(shape[-1], int) and shape[-1] >= 2


#: an output of fewer elements per example (one value) has no deep SNR floor by default
MIN_SNR_ELEMENTS = 2


def _too_few(shape: Sequence[Any]) -> bool:
    return bool(shape) and all(isinstance(d, int) for d in shape) and math.prod(shape) < MIN_SNR_ELEMENTS


@functools.lru_cache(maxsize=1024)  # a pure function of its arguments, asked once per output compared
def default_tolerance(
    precision: str,
    accelerator: bool,
    depth: Optional[int] = None,
    shape: Sequence[Any] = (),
    scale_known: bool = True,
    computed_by: Optional[str] = None,
) -> Tolerance:
    """Default rules for an output of ``precision`` (u8 u16 i8 i16 fp16 fp32 int bool).

    Args:
        precision: the output's precision class (``ModelInfo.precision``).
        accelerator: False when the provider under test is CPU-class (its float math is fp32).
        depth: requantizations between a graph input and this output (``ModelInfo.depth``); None =
            unknown, treated as deep (no LSB bound: no false alarms on deep models).
        shape: the output's shape for one example; a shallow classifier-shaped output also gets
            top-1 agreement with near ties (within 2 LSB in the reference) tolerated.
        scale_known: False when the quantized output's scale cannot be read (per-channel or computed
            scale): only the SNR floor applies, every LSB rule needs the scale.
        computed_by: the op computing the output (``ModelInfo.computed_by``); a deep classifier-shaped
            output computed by one of ``SCORE_OPS`` gets top-1 agreement with near ties within 32 LSB.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown output precision {precision!r} (valid: {', '.join(PRECISIONS)})")
    if precision == "fp16" or (precision == "fp32" and accelerator):
        return _DEFAULTS["float_accel"]
    if precision == "fp32":
        return _DEFAULTS["fp32_cpu"]
    if precision not in ("u8", "i8", "u16", "i16"):
        return _DEFAULTS[precision]
    width = "u16" if precision in ("u16", "i16") else "u8"
    if not scale_known:
        return Tolerance(min_snr_db=_DEFAULTS[width].min_snr_db)
    deep = depth is None or depth > SHALLOW_DEPTH
    tol = _DEFAULTS[width if deep else f"{width}_shallow"]
    if deep and _too_few(shape):  # the SNR of one value is no statistic (silero's speech probability)
        tol = replace(tol, min_snr_db=None)
    if is_classifier_shape(shape) and (not deep or computed_by in SCORE_OPS):
        top1 = (_TOP1_DEEP if deep else _TOP1)[width]
        tol = replace(tol, topk=top1.topk, tie_lsb=top1.tie_lsb)
    return tol
