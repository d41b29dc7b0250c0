"""The suite's latency check as pytest runs it: timed runs, the speed-up over CPU, the optional gates
(re-measured once before they fail)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict

from ..errors import EdgeSessionError
from ..junit import record_latency
from ..outcomes import fail, open_session, outcome_of
from .context import SuiteCheck, SuiteContext

if TYPE_CHECKING:
    from ..devices.session import EdgeSession


def run_suite(item: SuiteContext) -> None:
    """Time the first feed within the suite's budget; fail when a gate still breaks after a re-measurement."""
    from ..checks.latency import measure_latency

    node, suite = item.check_node, item.suite
    models = item.models()
    session = item.device_session(models)

    def open_cpu() -> EdgeSession:
        cpu = open_session(item.run, node.device, models.model, "cpu", name=models.name)
        cpu.submit(models.feeds)  # a hosted device times the suite's job (its profile), not a job of its own
        return cpu

    session.submit(models.feeds)
    result = measure_latency(
        session,
        models.feeds[0],
        suite.latency_budget,
        suite.latency_gates,
        None if node.provider == "cpu" else open_cpu,
        simulated=session.simulated,
    )
    fields = result.record()
    if suite.profile and session.spec.ep_name == "QNNExecutionProvider" and session.device.capabilities.profiling:
        fields["profile"] = _profile(item, session, models.feeds[0])
    record = node.record(session, passed=result.passed, **fields)
    record_latency(node.item, record)
    if not result.passed:
        fail(result.failure(session.label))


def _profile(item: SuiteContext, session: EdgeSession, feed: Any) -> Dict[str, Any]:
    """QNN's per-op profile of ``feed``, its files kept under ``.edgeort-cache/profiles/<device>/<model sha256>``."""
    from ..checks.profile import PROFILE_DIR, profile
    from ..run import CACHE_DIR

    folder = item.run.rootdir / CACHE_DIR / PROFILE_DIR / item.check_node.device / session.model.sha256
    with outcome_of(EdgeSessionError):
        return profile(session, feed, folder).to_dict()


CHECK = SuiteCheck("latency", run_suite)
