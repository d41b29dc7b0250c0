"""The suite's latency check as pytest runs it: timed runs, the speed-up over CPU, the optional p90 gate."""

from __future__ import annotations

from functools import partial

from ..junit import record_latency
from ..outcomes import fail, open_session
from .context import SuiteCheck, SuiteContext


def run_suite(item: SuiteContext) -> None:
    """Time the first feed; fail when p90 is over the suite's ``latency_p90_ms``."""
    from ..checks.latency import measure_latency

    node, suite = item.check_node, item.suite
    models = item.models()
    session = item.device_session(models)
    cpu = None if node.provider == "cpu" else partial(open_session, item.run, node.device, models.model, "cpu")
    result = measure_latency(session, models.feeds[0], suite.latency_runs, suite.latency_p90_ms, cpu)
    record = node.record(
        session,
        passed=result.passed,
        latency=result.stats.to_dict(),
        speedup_vs_cpu=result.speedup_vs_cpu,
        latency_gate_ms=result.gate_ms,
    )
    record_latency(node.item, record)
    if not result.passed:
        fail(result.failure(session.label))


CHECK = SuiteCheck("latency", run_suite)
