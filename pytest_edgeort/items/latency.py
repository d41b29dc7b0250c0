"""The suite's latency check as pytest runs it: timed runs, the speed-up over CPU, the optional gates
(re-measured once before they fail)."""

from __future__ import annotations

from functools import partial

from ..junit import record_latency
from ..outcomes import fail, open_session
from .context import SuiteCheck, SuiteContext


def run_suite(item: SuiteContext) -> None:
    """Time the first feed within the suite's budget; fail when a gate still breaks after a re-measurement."""
    from ..checks.latency import measure_latency

    node, suite = item.check_node, item.suite
    models = item.models()
    session = item.device_session(models)
    cpu = (
        None
        if node.provider == "cpu"
        else partial(open_session, item.run, node.device, models.model, "cpu", name=models.name)
    )
    result = measure_latency(
        session, models.feeds[0], suite.latency_budget, suite.latency_gates, cpu, simulated=session.simulated
    )
    record = node.record(session, passed=result.passed, **result.record())
    record_latency(node.item, record)
    if not result.passed:
        fail(result.failure(session.label))


CHECK = SuiteCheck("latency", run_suite)
