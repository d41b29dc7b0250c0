"""The conformance check as pytest runs it: a comparison's record, JUnit metrics and outcome (for
``edge_compare`` and suite items alike), and the suite's conformance item."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

from .._text import one_line
from ..errors import ComparisonError, EdgeError
from ..junit import record_metrics
from ..outcomes import fail
from ..run import CACHE_DIR
from .context import SuiteCheck, SuiteContext
from .node import CheckNode

if TYPE_CHECKING:
    from ..checks.diagnose import Diagnosis
    from ..compare.engine import Comparison
    from ..devices.session import EdgeSession


def conclude(
    node: CheckNode,
    session: EdgeSession,
    result: Comparison,
    title: str,
    heading: Optional[str] = None,
    diagnose: Optional[Callable[[], Diagnosis]] = None,
    **fields: Any,
) -> Comparison:
    """Record ``result`` (with ``fields``) and its JUnit metrics. If it did not pass: with ``heading``, fail
    with it over the full report (suite items); else raise :class:`ComparisonError`, an AssertionError the
    test's own code may catch (``edge_compare``). ``diagnose`` runs as ``--edge-diagnose`` says; its first
    line follows the title."""
    __tracebackhide__ = True  # a failure shows the test's line, not this function
    from ..compare.render import format_comparison

    mode = node.run.options.diagnose
    line = None
    if diagnose is not None and (mode == "always" or (mode == "on" and not result.passed)):
        try:
            diagnosis = diagnose()
            line, fields["diagnosis"] = diagnosis.message, diagnosis.to_dict()
        except Exception as exc:  # the check's verdict stands whatever the diagnosis ran into; say what it was
            what = str(exc) if isinstance(exc, EdgeError) else f"{type(exc).__name__}: {exc}"
            line = f"no diagnosis: {one_line(what, 300)}"
            fields["diagnosis"] = {"message": line}
    # the record's own to_dict makes the comparison JSON-safe when it travels (one walk over it, not two); a passing
    # comparison keeps only what the summary reads unless a report file shows the rest
    summary = result.passed and not node.run.options.full_records
    record = node.record(session, comparison=with_precision(result.to_dict(False, summary), session), **fields)
    record_metrics(node.item, record)
    if not result.passed:
        report = format_comparison(result, title=title)
        if line is not None:
            first, _, rest = report.partition("\n")
            report = f"{first}\n{line}\n{rest}"
        if heading is None:
            raise ComparisonError(report, result)
        fail(f"{heading}:\n{report}")
    return result


def with_precision(comparison: Dict[str, Any], session: EdgeSession) -> Dict[str, Any]:
    """``comparison`` (``Comparison.to_dict()``) with each output's precision class (``u8``, ``u16``, ``fp16``...)
    from the session's model: what its ``max_lsb`` counts steps of."""
    names = {tensor.name for tensor in session.model.outputs}
    for output in comparison.get("outputs", ()):
        if output.get("name") in names:
            output["precision"] = session.model.precision(output["name"], session.spec.float_as_fp16)
    return comparison


def conclude_examples(
    node: CheckNode, session: EdgeSession, result: Comparison, title: str, examples: int, **fields: Any
) -> None:
    """:func:`conclude` for a suite's ``examples`` compared stacked on axis 0."""
    heading = f"{title}, {examples} examples stacked on axis 0 (the first index of an element is its example)"
    conclude(node, session, result, title, heading, passed=result.passed, examples=examples, **fields)


def run_suite(item: SuiteContext) -> None:
    """Every example on the provider against the reference."""
    from ..checks.golden import stack_examples

    models = item.models()
    session = item.device_session(models)
    reference = item.reference_session(models)
    actual = session.run_all(models.feeds)
    expected = stack_examples(reference.run_all(models.feeds))
    result = item.compare_all(session, actual, expected, models)
    title = f"{session.label} vs {reference.spec.alias} reference"

    def diagnose() -> Diagnosis:
        from ..checks.diagnose import PREFIX_DIR  # on a failure only: it imports onnx (~0.4 s)

        cache, budget = item.run.rootdir / CACHE_DIR / PREFIX_DIR, item.run.options.diagnose_budget_s
        return session.diagnose(models.feeds, reference, item.suite.tolerance, budget, cache=cache, verdict=result)

    device = reference.device.name
    conclude_examples(item.check_node, session, result, title, len(actual), diagnose=diagnose, reference_device=device)


CHECK = SuiteCheck("conformance", run_suite)
