"""The relay between pytest-xdist workers and the process that reports: each edge test's check records
(and a record for every failure, also one before any check ran) ride on its test report as plain data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional

import pytest

from ._text import file_sha256
from .items.target import BROKEN_SUITE_KEY, EdgeTarget, item_model, item_target
from .junit import record_error, record_identity, record_provenance
from .run import EdgeRun

if TYPE_CHECKING:
    from .reporting.schema import CheckRecord


def _file_sha256(path: Path) -> Optional[str]:
    try:
        return file_sha256(path)
    except OSError:
        return None


def failure_line(report: pytest.TestReport) -> str:
    """The first line of why a test failed (our failures are one line already)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = (crash.message if crash is not None else str(report.longrepr or "")).strip()
    text = text[len("Failed: ") :] if text.startswith("Failed: ") else text  # pytest.fail's own prefix
    return text.splitlines()[0] if text else report.outcome


class ResultRelay:
    """Carries results on test reports and collects them. Every edge test that fails has a record
    with the phase and the reason, also when it failed before any check recorded a result."""

    def __init__(self, run: EdgeRun) -> None:
        self.results = run.results
        self.devices = run.registry
        self._hashes: Dict[Path, Optional[str]] = {}
        self._attempts: Dict[str, int] = {}  # nodeid -> runs of it so far (a rerun plugin runs a test again)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> Any:
        report = yield
        if report.when == "setup":
            self._attempts[item.nodeid] = self._attempts.get(item.nodeid, 0) + 1
        attempt = self._attempts.get(item.nodeid, 1)
        target = item_target(item)
        broken_suite = item.stash.get(BROKEN_SUITE_KEY, None)
        if target is not None:  # plain data on the report: pytest-xdist ships it to the controller
            if report.when == "setup":  # (every test's first report, also one that fails or skips there)
                record_identity(item, (target.device, target.provider))
            if report.when == "teardown" and "edge_model_sha256" not in {name for name, _ in item.user_properties}:
                # no session recorded it (failed or skipped before one): what is known, on the report
                # junitxml writes the properties from
                record_provenance(item, self._known_provenance(item, target))
                report.user_properties = list(item.user_properties)
            if report.failed:
                self._note_failure(report, item, target)
                record_error(item, failure_line(report))
            self._note_interruptions()
            report.edgeort = self.results.take_payload(call.start, call.stop, self.devices.facts(), attempt)
        elif broken_suite is not None:  # a suite file that does not validate: no targets
            if report.failed:
                from .reporting.schema import CheckRecord

                line = failure_line(report)
                self.results.record(
                    CheckRecord(
                        nodeid=item.nodeid,
                        check="suite",
                        passed=False,
                        suite=str(broken_suite),
                        phase=report.when,
                        error=line,
                    )
                )
                record_error(item, line)
            report.edgeort = self.results.take_payload(call.start, call.stop, self.devices.facts(), attempt)
        return report

    def _known_provenance(self, item: pytest.Item, target: EdgeTarget) -> CheckRecord:
        """A failure record of a test that has no session (yet), with what is known: its device and
        provider, its model file and hash, and the device's versions if the device was reached."""
        from .reporting.schema import CheckRecord

        model = item_model(item)
        if model is not None and model not in self._hashes:
            self._hashes[model] = _file_sha256(model)
        caps = self.devices.facts().get(target.device) or {}
        qnn = caps.get("qnn") or {}
        facts = dict(
            nodeid=item.nodeid,
            check=target.check,
            passed=False,
            device=target.device,
            provider=target.provider,
            model=model.name if model else None,
            model_path=str(model) if model else None,
            model_sha256=self._hashes.get(model) if model else None,
            onnxruntime=caps.get("onnxruntime"),
            qnn_sdk=qnn.get("sdk_version"),
            qnn_ep=qnn.get("ep_package_version"),
            platform=caps.get("platform"),
        )
        return CheckRecord(**{**facts, **target.fields})

    def _note_failure(self, report: pytest.TestReport, item: pytest.Item, target: EdgeTarget) -> None:
        """The phase and reason on this phase's records, or a record of its own when there is none."""
        for record in self.results.pending:
            record.note_failure(report.when, failure_line(report))
        if not self.results.pending and report.when != "teardown":
            record = self._known_provenance(item, target)
            record.note_failure(report.when, failure_line(report))
            self.results.record(record)

    def _note_interruptions(self) -> None:
        """What devices said about this test (a request its interruption stopped) on its records."""
        notes = self.devices.take_notes()
        for record in self.results.pending if notes else ():
            record.interrupted = "; ".join(notes)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = getattr(report, "edgeort", None)
        if payload is not None:
            self.results.merge_payload(payload)
            self.results.note_outcome(report, payload.get("attempt", 1))
