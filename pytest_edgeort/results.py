"""Edge items and their results across pytest-xdist workers: what each test report carries, and how
the run collects it (in this process, or in the xdist controller)."""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import pytest

from .run import EdgeRun

TARGET = "_edge_target"  # the (device, provider) parameter of marker tests


def item_target(item: pytest.Item) -> Optional[Tuple[str, str]]:
    """``(device, provider)`` of an edge item (marker test or suite item), None for any other item."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None and TARGET in callspec.params:
        device, provider = callspec.params[TARGET]
        return device, provider
    if type(item).__name__ == "SuiteItem":
        return item.device, item.provider
    return None


def failure_line(report: pytest.TestReport) -> str:
    """The first line of why a test failed (our failures are one line already)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = (crash.message if crash is not None else str(report.longrepr or "")).strip()
    text = text[len("Failed: "):] if text.startswith("Failed: ") else text  # pytest.fail's own prefix
    return text.splitlines()[0] if text else report.outcome


def _junit_identity(item: pytest.Item, target: Tuple[str, str]) -> None:
    """JUnit XML properties every edge test carries, also one that failed or skipped before any
    session existed: CI groups results by device and provider."""
    present = {name for name, _ in item.user_properties}
    for name, value in zip(("edge_device", "edge_provider"), target):
        if name not in present:
            item.user_properties.append((name, value))


class ResultRelay:
    """Carries results on test reports and collects them. Every edge test that fails has a record
    with the phase and the reason, also when it failed before any check recorded a result."""

    def __init__(self, run: EdgeRun) -> None:
        self.run = run

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> Any:
        report = yield
        target = item_target(item)
        if target is not None:  # plain data on the report: pytest-xdist ships it to the controller
            _junit_identity(item, target)
            if report.failed:
                self._note_failure(report, item, target)
                item.user_properties.append(("edge_error", failure_line(report)))
            report.edgeort = self.run.take_payload(call.start, call.stop)
        return report

    def _note_failure(self, report: pytest.TestReport, item: pytest.Item, target: Tuple[str, str]) -> None:
        """The phase and reason on this phase's records, or a record of its own when there is none."""
        failure: Dict[str, Any] = {"phase": report.when, "error": failure_line(report)}
        for entry in self.run.pending:
            for key, value in failure.items():
                entry.setdefault(key, value)
        if not self.run.pending and report.when != "teardown":
            device, provider = target
            self.run.record({"nodeid": item.nodeid, "check": getattr(item, "check", "test"), "passed": False,
                             "device": device, "provider": provider, **failure})

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = getattr(report, "edgeort", None)
        if payload is None:
            return
        self.run.merge_payload(payload)
        outcome = "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome
        if report.when == "call" or report.outcome != "passed":
            self.run.outcomes[report.nodeid] = "error" if report.when != "call" and report.failed else outcome
        if report.skipped and not hasattr(report, "wasxfail") and isinstance(report.longrepr, tuple):
            self.run.skip_reasons.append(str(report.longrepr[2]).replace("Skipped: ", "", 1))
