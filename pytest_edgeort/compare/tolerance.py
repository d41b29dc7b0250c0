"""Tolerances for comparing an execution provider's outputs against a reference.

A :class:`Tolerance` is a set of rules; an output passes when it satisfies *every* rule that is set
(``None`` switches a rule off). The rules:

- elementwise bound ``atol`` / ``rtol`` / ``lsb``: an element is within tolerance when
  ``|a - e| <= max(atol + rtol * |e|, lsb * scale)`` -- when several are given the LARGEST bound
  counts, so adding a key never makes a comparison stricter (but a *default* ``lsb`` yields to any
  bound a user sets, see :meth:`ToleranceSpec.for_output`). ``lsb`` is in multiples of the output's
  quantization scale (integer outputs: one LSB = 1). ``stat`` picks how errors are aggregated:
  ``elemwise`` checks every element and allows a fraction ``max_mismatch`` outside; ``max``,
  ``mean``, ``median`` and ``quantile`` (with ``quantile``) check that statistic of ``|a - e|``
  against ``atol + rtol * <same statistic of |e|>`` / ``lsb * scale``.
- ``min_snr_db``: ``10 * log10(S / N)`` must be at least this, with a noise floor that knows the step
  (the quantization scale, else ``atol``): errors within one step do not count in ``N``, and ``S`` is at
  least ``size * step**2``, so a near-zero reference (a detector's empty map) is no false alarm. With a
  yardstick (a deep output on its default floor), the floor drops to the reference's own SNR against the
  float math minus 6 dB where that is lower: on an input that quantization itself handles badly.
- ``min_cosine``: cosine similarity of the flattened outputs must be at least this.
- ``topk``: per row along the last axis, the top-1 index (argmax) of the actual output must be
  among the top-k of the expected output (ties at the k-th expected value count as inside, and with
  ``tie_lsb`` values within that many LSB of it); at most a fraction ``max_mismatch`` of the rows may
  disagree.
- ``bias_lsb``: no group of elements -- the whole output, a slice along one axis holding >= 5 % of the
  elements (a channel), a 1/5 x 1/5 box or a 1/20 band of the last two axes (a region, up to every
  edge), each head of an output the graph builds by a Concat (with its channels and, for a flattened
  ``H x W`` grid, its regions) -- may have a median error beyond ``bias_lsb`` LSB plus what noise alone
  moves a median of that many elements by (2 standard errors, from the output's median absolute
  deviation; a region at least its own spread; see :mod:`.patterns`).
- ``gain``: the least-squares gain of ``actual - expected = g * expected`` must stay within ``gain``
  (0.03 = 3 %), counted only when it explains most of the error and moves the largest element by
  more than ``bias_lsb``.
- ``vs_float`` (ONNX Runtime's ``TestQDQModelAccuracy`` rule, needs the float model's outputs): the
  provider's error against the float output may exceed the reference's error against it by at most
  ``vs_float`` times the float output's range (0.004 = ORT's default = about one u8 LSB).

Defaults per output (``default_tolerance``). A quantized output is *shallow* when at most
``SHALLOW_DEPTH`` = 8 QuantizeLinear nodes lie on a path from a graph input to it (``ModelInfo.depth``;
the digits CNN has 5, every real model of the example suites 20-147), and *classifier-shaped* when it is
one row of scores (``[1, C]``); a deep one must also be computed by a Softmax, LogSoftmax, Gemm or MatMul
(a recurrent state ``[1, 128]`` is no row of scores). u16 rules are the u8 rules with one LSB read as
256 u16 steps (the u8 step of the same range).

| output                              | default rules                                            |
| ----------------------------------- | -------------------------------------------------------- |
| u8 / i8, shallow                    | `lsb=3 bias_lsb=2 gain=0.03 min_snr_db=10`               |
| u8 / i8, shallow classifier         | the same + `topk=1 tie_lsb=2`                            |
| u8 / i8, deep (or depth unknown)    | `bias_lsb=3 min_snr_db=10` (SNR floor: yardstick, none for one value) |
| u8 / i8, deep classifier (scores)   | the same + `topk=1 tie_lsb=32`                           |
| u16 / i16, shallow (classifier)     | `lsb=768 bias_lsb=512 gain=0.03 min_snr_db=20` (+ `topk=1 tie_lsb=512`) |
| u16 / i16, deep                     | `bias_lsb=768 min_snr_db=20` (+ `topk=1 tie_lsb=8192`)   |
| quantized, scale unreadable         | `min_snr_db` only (10 / 20)                              |
| fp16; fp32 on an accelerator        | `atol=1e-2 rtol=1e-2 max_mismatch=0.001 min_snr_db=30`   |
| fp32 on a CPU-class provider        | `atol=1e-5 rtol=1e-4`                                    |
| int (argmax, int32/64), bool        | `atol=0` (exact)                                         |

Measured by fault injection (``benchmarks/sensitivity.py``: faults of exact size in front of the final
QuantizeLinear, model on the QNN HTP simulator vs the healthy model on the CPU EP, one example per
comparison; onnxruntime 1.32.0, onnxruntime-qnn 2.7.0 / QNN 2.51), detection rate and smallest margin
(measured / allowed for the failing rule furthest past its threshold), before -> after this table:

- digits CNN u8 (shallow, 40 inputs): healthy 0/40 false alarms (before 0/40); uniform shift of 3 LSB
  40/40 at >= 1.33x (before 0/40); one element >= 4 LSB off the CPU 1596/1596 at >= 1.33x (before 0);
  gain +-5 % 40/40 at >= 1.67x (before 0/40); a top-1 change where the reference's top-2 margin is
  > 2 LSB 14/14 (before 0/14). An injected +-4 LSB that the HTP's own +-1 LSB brings back to 3 LSB
  from the CPU passes (370/400 caught): it is within the healthy noise band.
- digits CNN a16w8: healthy 0/40; shift of 3 steps 40/40 at >= 1.43x; one element >= 4 steps off
  1596/1596; gain +-5 % 40/40; top-1 changes 8/8 (before: all 0).
- PP-OCRv6 det u8 (deep, healthy max 157-182 LSB; 8 inputs): +20 LSB on the map's (only) channel 8/8
  at >= 2.5x, on a 5 % box (centre, corner) or a 5 % row band 8/8 at >= 1.56x (median 8.8-9.2x).
  Healthy: 1/8 per example (a photo crop at 4.9 dB, before 4/8), 0 stacked as a suite.
- Deep outputs (issue 19, ``python -m benchmarks.sensitivity --deep``: the example suites' deep models on
  every real input plus 8 noise inputs, faults added to the saved HTP outputs), old ``bias_lsb=8
  min_snr_db=10`` -> these defaults with heads and yardstick: healthy false alarms PP-OCR det 1/12 -> 0/12,
  magika 1/27 -> 0/27, silero output 12/40 -> 0/40, hN 10/40 -> 0/40, cN 0/40, rapidocr cls 0/32 -> 0.
  Whole-output +4 LSB: PP-OCR det 9/11 -> 12/12, magika 1/26 -> 27/27, silero hN 3/30 -> 40/40, cN
  6/40 -> 40/40; 1/5 x 1/5 boxes of +8 LSB at the centre and the four corners 8/11 -> 11-12/12; class
  changes (top two swapped, CPU margin > 32 LSB) magika 26/26, rapidocr 30/30. ddddocr's detector
  (``[1, 3549, 6]``, three Concat'ed heads): its real u8 NPU defect (-92 LSB on the objectness channel
  of the 13x13 head) fails 4/4 as that channel of that head (before 3/4, named as a box across heads);
  its a16w8 model (healthy, max 764 u16 LSB = 3 u8 steps, 46 dB) passes 6/6, and faults of 4 u8 steps
  on one channel, on that channel of the last head only, or on a 1/5 x 1/5 box of the 52x52 grid of
  one channel (8 scattered runs of the flat anchor axis) are caught 6/6 each (before 0/6).
- The SNR floor's yardstick matters per example: magika's worst healthy input is 3.8 dB from the CPU,
  whose own SNR against the float math is 5.8 dB there (the HTP is closer to it, 19.7 dB).

Known gaps, measured rather than hidden (the detection floor is the healthy HTP's own deviation): deep
gains of 5-10 % move elements less than the healthy HTP does and are not caught (no deep gain rule:
magika's healthy fitted gain reaches 4.2 %); negative offsets on a map or softmax that sits at 0 are
clipped away; garbage below the healthy spread (silero hN, rms 14 LSB healthy) passes; a region whose
healthy errors spread as far as the fault (PP-OCR det text, one 1/5 box on 1 of 12 inputs) passes; a
single-value output (silero's speech probability, healthy up to 82 LSB) has no per-example rule but
``bias_lsb`` on stacked sets.
"""

from __future__ import annotations

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


def _unknown_key(key: Any, valid: Tuple[str, ...], where: str) -> ValueError:
    match = closest(str(key), valid)
    hint = f"did you mean {match!r}? " if match is not None else ""
    return ValueError(f"{where}: unknown tolerance key {key!r} ({hint}valid: {', '.join(valid)})")


def _validate_rules(mapping: Mapping[str, Any], where: str, extra: Tuple[str, ...] = ()) -> Dict[str, Any]:
    valid = tuple(sorted(TOLERANCE_KEYS | set(extra)))
    out: Dict[str, Any] = {}
    for key, value in mapping.items():
        if key in extra:
            continue
        if key not in TOLERANCE_KEYS:
            raise _unknown_key(key, valid, where)
        out[key] = _validate_value(key, value, where)
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


def parse_tolerance(mapping: Mapping[str, Any], where: str) -> ToleranceSpec:
    """Validate a user tolerance mapping (marker kwargs or a TOML ``[tolerance]`` table) into a spec.

    ``mapping`` may hold ``outputs = {name: {...}}`` with per-output rules. Raises a one-line
    ``ValueError`` naming ``where``, the key and what was expected.
    """
    if not isinstance(mapping, Mapping):
        raise ValueError(f"{where}: tolerance must be a table/mapping, got {type(mapping).__name__}")
    rules = _validate_rules(mapping, where, extra=("outputs",))
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
