"""The op-support matrix: one ONNX node test on one device and provider, classified (no pytest here; the
classes are listed in ``reporting.schema.OP_MATRIX_CLASSES``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple, Union

from .._text import one_line
from ..compare.tolerance import ToleranceSpec
from ..config.providers import resolve_provider
from ..devices.placement import format_fallback
from ..errors import EdgeSessionError, InputError, ModelError, SessionLost, StaleOutputs
from .conformance import compare_examples
from .golden import stack_examples
from .no_fallback import Sessions, check_no_fallback

if TYPE_CHECKING:
    import numpy as np

    from ..compare.engine import Comparison
    from ..devices.session import EdgeSession
    from ..model.corpus import Case

# where a session error's class is read from, first match wins
_ERROR_CLASSES: Tuple[Tuple[str, Optional[str]], ...] = (
    (r"\b(QNN_[A-Z0-9_]+)", None),
    (r"no node of the graph is left", "FOLDED_TO_CONSTANTS"),
    (r"\[ONNXRuntimeError\] : \d+ : ([A-Z_]+)", None),
)
_SIGNAL = re.compile(r"killed by (SIG[A-Z0-9]+|signal \d+)")

Outputs = Mapping[str, "np.ndarray"]


@dataclass
class MatrixResult:
    """What one case did on one provider: its class, one line of detail, and what was measured."""

    klass: str
    detail: str
    session: Optional[EdgeSession] = None  # the provider's session when it was created without fallback
    comparison: Optional[Comparison] = None  # against the reference
    expected: Optional[Comparison] = None  # against the outputs the onnx wheel ships
    cpu_nodes: Dict[str, List[str]] = field(default_factory=dict)
    error_class: Optional[str] = None
    signal: Optional[str] = None

    def to_dict(self, case: Case, onnx_version: str, seconds: float) -> Dict[str, Any]:
        """The record's ``op_matrix`` field (see docs/op-matrix.md)."""
        return {
            "case": case.name,
            "op_type": case.op_type,
            "ops": list(case.ops),
            "opset": case.opset,
            "onnx": onnx_version,
            "class": self.klass,
            "detail": self.detail,
            "error_class": self.error_class,
            "signal": self.signal,
            "cpu_ops": {op: len(names) for op, names in self.cpu_nodes.items()} or None,
            "max_abs_error": _max_abs(self.comparison),
            "matches_expected": None if self.expected is None else self.expected.passed,
            "expected_max_abs_error": _max_abs(self.expected),
            "seconds": round(seconds, 4),
        }


def _max_abs(comparison: Optional[Comparison]) -> Optional[float]:
    values = [o.max_abs for o in comparison.outputs if o.max_abs is not None] if comparison else []
    return max(values) if values else None


def _max_abs_text(comparison: Comparison) -> str:
    value = _max_abs(comparison)
    return "-" if value is None else f"{value:.3g}"


def error_class(message: str) -> Optional[str]:
    """The class of a session error: QNN's error code, else onnxruntime's status name, else None."""
    for pattern, name in _ERROR_CLASSES:
        match = re.search(pattern, message)
        if match:
            return name or match.group(1)
    return None


def _said(error: Any, limit: int = 300) -> str:
    """An error in one line, without the ``<case>.onnx on <device>/<provider>: `` every session error starts with."""
    return one_line(re.sub(r"^\S+\.onnx on [^\s:]+: ", "", str(error)), limit)


def _lost(exc: EdgeSessionError) -> MatrixResult:
    match = _SIGNAL.search(str(exc))
    return MatrixResult("crashed", _said(exc), signal=match.group(1) if match else None)


def classify(sessions: Sessions, device: str, provider: str, case: Case, root: Path) -> MatrixResult:
    """Run ``case`` (in the corpus folder ``root``) on ``provider`` of ``device``: without CPU fallback on an
    accelerator (the memory-state check on its first run), then on the device's CPU as the reference, and
    compare under the default tolerances; also against the outputs the onnx wheel expects. The class never
    depends on what ran before: sessions are the case's own and the memory-state check runs every time.
    ``ok``: the outputs match the CPU reference or the onnx expected outputs (where ORT's CPU kernel departs
    from the operator's definition); ``wrong``: neither."""
    if case.unrepresentable:
        return MatrixResult("unrepresentable", case.unrepresentable)
    model = case.model(root)
    examples = [case.example(root, k) for k in range(case.examples)]
    feeds = [feed for feed, _ in examples]
    try:
        opened = _open(sessions, device, provider, model)
        if not isinstance(opened, MatrixResult):
            return _judge(sessions, device, opened, feeds, stack_examples([out for _, out in examples]))
        return opened
    except (InputError, ModelError) as exc:
        return MatrixResult("unrepresentable", _said(exc))


def _open(sessions: Sessions, device: str, provider: str, model: Path) -> Union[EdgeSession, MatrixResult]:
    """The provider's session of ``model`` (CPU fallback disabled on an accelerator), or the result that
    classifies the case when there is none."""
    if not resolve_provider(provider).accelerator:
        try:
            return sessions.session(device, model, provider)
        except SessionLost as exc:
            return _lost(exc)
        except EdgeSessionError as exc:
            return MatrixResult("rejected", _said(exc), error_class=error_class(str(exc)))
    found = check_no_fallback(sessions, device, provider, model)
    if found.session is not None:
        return found.session
    if isinstance(found.refusal, SessionLost):
        return _lost(found.refusal)
    if found.cpu_nodes:
        return MatrixResult("cpu_fallback", f"on CPU: {format_fallback(found.cpu_nodes)}", cpu_nodes=found.cpu_nodes)
    message = str(found.refusal or found.error)
    return MatrixResult("rejected", _said(message), error_class=error_class(message))


def _judge(
    sessions: Sessions, device: str, session: EdgeSession, feeds: List[Outputs], expected: Outputs
) -> MatrixResult:
    """Run the examples on ``session`` and on the reference, and compare."""
    try:
        actual = [session.run(feed) for feed in feeds]
    except StaleOutputs as exc:
        return MatrixResult("stale_memory", _said(exc), session)
    except SessionLost as exc:
        return _lost(exc)
    except EdgeSessionError as exc:
        return MatrixResult("run_failed", _said(exc), session, error_class=error_class(str(exc)))
    spec, where = ToleranceSpec(), f"{session.label}: default tolerances"
    vs_expected = compare_examples(session, actual, expected, feeds, spec, where)
    if not session.spec.accelerator:
        reference = expected
    else:
        try:
            cpu = sessions.session(device, session.model.path, "cpu")
            reference = stack_examples([cpu.run(feed) for feed in feeds])
        except EdgeSessionError as exc:
            agrees = "matches" if vs_expected.passed else "differs from"
            return MatrixResult(
                "no_reference",
                f"{_said(exc, 240)}; the provider {agrees} the onnx expected outputs",
                session,
                expected=vs_expected,
            )
    result = compare_examples(session, actual, reference, feeds, spec, where)
    if result.passed:
        note = "matches" if vs_expected.passed else "differs from"
        detail = f"max |error| {_max_abs_text(result)} vs the reference; {note} the onnx expected outputs"
        return MatrixResult("ok", detail, session, result, vs_expected)
    if vs_expected.passed:  # the CPU reference is the one that differs from the operator's definition
        detail = f"matches the onnx expected outputs; the CPU reference differs (max |error| {_max_abs_text(result)})"
        return MatrixResult("ok", detail, session, result, vs_expected)
    failures = [f"{o.name}: {o.failures[0]}" for o in result.outputs if o.failures]
    detail = "; ".join(failures + [f"missing output {name!r}" for name in result.missing])
    return MatrixResult("wrong", one_line(detail, 300), session, result, vs_expected)
