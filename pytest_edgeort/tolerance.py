"""Tolerances for comparing an execution provider's outputs against a reference.

A :class:`Tolerance` is a set of rules; an output passes when it satisfies *every* rule that is set
(``None`` switches a rule off). The rules:

- elementwise bound ``atol`` / ``rtol`` / ``lsb``: an element is within tolerance when
  ``|a - e| <= max(atol + rtol * |e|, lsb * scale)`` -- when several are given the LARGEST bound
  counts, so adding a key never makes a comparison stricter. ``lsb`` is in multiples of the output's
  quantization scale (integer outputs: one LSB = 1). ``stat`` picks how errors are aggregated:
  ``elemwise`` checks every element and allows a fraction ``max_mismatch`` outside; ``max``,
  ``mean``, ``median`` and ``quantile`` (with ``quantile``) check that statistic of ``|a - e|``
  against ``atol + rtol * <same statistic of |e|>`` / ``lsb * scale``.
- ``min_snr_db``: ``10 * log10(sum(e**2) / sum((a - e)**2))`` must be at least this.
- ``min_cosine``: cosine similarity of the flattened outputs must be at least this.
- ``topk``: per row along the last axis, the top-1 index (argmax) of the actual output must be
  among the top-k of the expected output (ties at the k-th expected value count as inside); at
  most a fraction ``max_mismatch`` of the rows may disagree.
- ``vs_float`` (ONNX Runtime's ``TestQDQModelAccuracy`` rule, needs the float model's outputs): the
  provider's error against the float output may exceed the reference's error against it by at most
  ``vs_float`` times the float output's range (0.004 = ORT's default = about one u8 LSB).

Defaults per output precision (``default_tolerance``), chosen from the HTP-simulator-vs-CPU figures
in MEASUREMENTS.md (onnxruntime 1.31.1, onnxruntime-qnn 2.7.0 / QNN 2.51):

| output precision              | default rules                                        |
| ----------------------------- | ---------------------------------------------------- |
| u8 / i8 QDQ                   | `min_snr_db=15`                                      |
| u16 / i16 QDQ (a16w8)         | `min_snr_db=20`                                      |
| fp16; fp32 on an accelerator  | `atol=1e-2 rtol=1e-2 max_mismatch=0.001 min_snr_db=30` |
| fp32 on a CPU-class provider  | `atol=1e-5 rtol=1e-4`                                |
| int (argmax, int32/64), bool  | `atol=0` (exact)                                     |

- u8: healthy models measured HTP vs CPU: digits CNN 40 dB, text-orientation cls 27-30 dB, magika
  30.6 dB, silero-vad 24 dB, PP-OCR det 17-19 dB (the worst, with max ~200 LSB apart). The real
  NPU defect (ddddocr det u8, objectness/class channels offset by ~59 LSB) measures 10 dB and
  fails. No LSB bound separates the two (healthy deep models end tens to hundreds of LSB apart), so
  ``lsb`` is opt-in for shallow outputs (small nets measured max 1-5 LSB).
- u16: healthy a16w8 HTP vs CPU: silero 22.7 dB, PP-OCR det 23.6 dB, ddddocr 30 dB, cls 38 dB,
  digits 50.6 dB, magika 57 dB; hundreds of u16 LSB apart is normal, so no LSB rule.
- float on an accelerator: real HTP computes float in fp16 (eps ~1e-3, deep nets accumulate
  ~1e-2). The SNR floor covers outputs far smaller than ``atol`` and catches single garbage values;
  0.1% of elements may exceed the elementwise bound (cancellation near zero).
- fp32 on CPU-class providers: the same arithmetic, only summation order and kernels differ.
- int/bool: indices, counts and masks have no rounding slack.
- Quantized defaults do not depend on the provider: they come from the HTP, which rounds less
  exactly than CPU-class kernels (2-4 LSB per layer vs within 1), so they raise no false alarm
  there. A single wrong channel among C channels of similar energy costs about ``10*log10(C/2)`` dB
  (C=16: 9 dB, fails; C=64: 15 dB, borderline for u8): set ``lsb``/``quantile`` bounds for shallow
  outputs, or ``vs_float`` with a float model, to close that gap.
"""

from __future__ import annotations

import difflib
import math
import numbers
from dataclasses import dataclass, fields, replace
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

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


def _unknown_key(key: Any, valid: Tuple[str, ...], where: str) -> ValueError:
    close = difflib.get_close_matches(str(key), valid, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ValueError(
        f"{where}: unknown tolerance key {key!r} ({hint}valid: {', '.join(valid)})"
    )


def _validate_rules(
    mapping: Mapping[str, Any], where: str, extra: Tuple[str, ...] = ()
) -> Dict[str, Any]:
    valid = tuple(sorted(TOLERANCE_KEYS | set(extra)))
    out: Dict[str, Any] = {}
    for key, value in mapping.items():
        if key in extra:
            continue
        if key not in TOLERANCE_KEYS:
            raise _unknown_key(key, valid, where)
        out[key] = _validate_value(key, value, where)
    return out


def parse_tolerance(
    mapping: Mapping[str, Any], where: str
) -> Tuple[Dict[str, Any], Dict[str, Dict[str, Any]]]:
    """Validate a user tolerance mapping (marker kwargs or a TOML ``[tolerance]`` table).

    ``mapping`` may hold ``outputs = {name: {...}}`` with per-output rules. Returns
    ``(global_rules, {output_name: rules})`` as plain dicts of validated values. Raises a one-line
    ``ValueError`` naming ``where``, the key and what was expected.
    """
    if not isinstance(mapping, Mapping):
        raise ValueError(
            f"{where}: tolerance must be a table/mapping, got {type(mapping).__name__}")
    rules = _validate_rules(mapping, where, extra=("outputs",))
    per_output: Dict[str, Dict[str, Any]] = {}
    outputs = mapping.get("outputs", {})
    if not isinstance(outputs, Mapping):
        raise ValueError(
            f"{where}: tolerance key 'outputs' must be a mapping of output name -> tolerance keys, "
            f"got {outputs!r}"
        )
    for name, sub in outputs.items():
        sub_where = f"{where} (outputs.{name})"
        if not isinstance(sub, Mapping):
            raise ValueError(f"{sub_where}: expected a mapping of tolerance keys, got {sub!r}")
        per_output[str(name)] = _validate_rules(sub, sub_where)
    return rules, per_output


#: Outputs at most this many requantizations (QuantizeLinear nodes) from a graph input are "shallow":
#: their healthy HTP-vs-CPU error is a few LSB, so an LSB bound and a gain rule apply.
SHALLOW_DEPTH = 8
#: One "coarse" LSB of a 16-bit output: the u8 step of the same range (u16 rules = u8 rules x 256).
U16_STEP = 256.0

_DEFAULTS = {
    "u8": Tolerance(bias_lsb=8.0, min_snr_db=10.0),
    "u8_shallow": Tolerance(lsb=3.0, bias_lsb=2.0, gain=0.03, min_snr_db=10.0),
    "u16": Tolerance(bias_lsb=8.0 * U16_STEP, min_snr_db=20.0),
    "u16_shallow": Tolerance(lsb=3.0 * U16_STEP, bias_lsb=2.0 * U16_STEP, gain=0.03, min_snr_db=20.0),
    "float_accel": Tolerance(atol=1e-2, rtol=1e-2, max_mismatch=1e-3, min_snr_db=30.0),
    "fp32_cpu": Tolerance(atol=1e-5, rtol=1e-4),
    "int": Tolerance(atol=0.0),
    "bool": Tolerance(atol=0.0),
}
_TOP1 = {"u8": Tolerance(topk=1, tie_lsb=2.0), "u16": Tolerance(topk=1, tie_lsb=2.0 * U16_STEP)}


def is_classifier_shape(shape: Sequence[Any]) -> bool:
    """True for ``[C]``, ``[1, C]``, ``[1, 1, C]`` ... with C >= 2: one row of scores (logits, probabilities)."""
    return len(shape) >= 1 and all(d == 1 for d in shape[:-1]) and isinstance(shape[-1], int) and shape[-1] >= 2


def default_tolerance(precision: str, accelerator: bool, depth: Optional[int] = None,
                      shape: Sequence[Any] = (), scale_known: bool = True) -> Tolerance:
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
    if depth is None or depth > SHALLOW_DEPTH:
        return _DEFAULTS[width]
    tol = _DEFAULTS[f"{width}_shallow"]
    if is_classifier_shape(shape):
        top1 = _TOP1[width]
        tol = replace(tol, topk=top1.topk, tie_lsb=top1.tie_lsb)
    return tol


def resolve_tolerance(default: Tolerance, *overrides: Mapping[str, Any]) -> Tolerance:
    """Apply override mappings on top of ``default``; later mappings win. ``None`` clears a rule.

    The default's ``lsb`` bound yields to any elementwise bound (``atol``, ``rtol``, ``lsb``) an override
    sets: bounds of one tolerance combine as the largest, so ``atol=0`` would otherwise never tighten it.
    """
    result = default
    if default.lsb is not None and any(k in m for m in overrides if m for k in BOUND_KEYS):
        result = replace(default, lsb=None)
    for mapping in overrides:
        if mapping:
            result = replace(result, **_validate_rules(mapping, "tolerance override"))
    return result


def uses_vs_float(layers: Sequence[Mapping[str, Any]]) -> bool:
    """True when any tolerance layer (or its per-output rules) sets ``vs_float``: a float baseline is needed."""
    for layer in layers:
        if layer.get("vs_float") is not None:
            return True
        if any(isinstance(o, Mapping) and o.get("vs_float") is not None for o in layer.get("outputs", {}).values()):
            return True
    return False
