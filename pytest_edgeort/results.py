"""The results of one run: check records waiting to travel on their test's report, those that arrived (in
this process or, from every worker, in the xdist controller), device facts and final test outcomes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Tuple

import pytest

if TYPE_CHECKING:  # the record schema loads with the first record: a run without edge tests never loads it
    from .reporting.schema import CheckRecord


@dataclass
class RunResults:
    """Check results and outcomes of one run. Checks :meth:`record` their results as ``pending``;
    the relay attaches them to the test's report (:meth:`take_payload`), and every report that
    reaches :meth:`merge_payload` (in this process, or in the xdist controller) adds them to
    ``records``: one path for the summary and the JSON report."""

    pending: List[CheckRecord] = field(default_factory=list)
    records: List[CheckRecord] = field(default_factory=list)
    device_facts: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    outcomes: Dict[str, str] = field(default_factory=dict)  # nodeid -> final pytest outcome
    skip_reasons: List[str] = field(default_factory=list)
    attempts: Dict[Tuple[str, int], List[CheckRecord]] = field(default_factory=dict)  # (nodeid, attempt) -> records

    def record(self, record: CheckRecord) -> None:
        """Keep one check's result until the relay attaches it to the test's report."""
        self.pending.append(record)

    def take_payload(
        self, started: float, finished: float, facts: Mapping[str, Any], attempt: int = 1
    ) -> Dict[str, Any]:
        """The pending records (timed ``started``/``finished``, epoch s, of run ``attempt`` of their test) and
        the device ``facts`` not yet sent, as plain JSON-able data that survives pytest-xdist's report transport."""
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        records = []
        for record in self.pending:
            record.started, record.finished, record.xdist_worker = started, finished, worker
            record.attempt = attempt
            records.append(record.to_dict())
        self.pending.clear()
        changed = {}
        for name, raw in facts.items():
            known = self.device_facts.get(name)
            if raw == known:  # known is JSON-safe: equal facts make equal JSON-safe facts (every phase of every test)
                continue
            from .reporting.schema import json_safe

            safe = json_safe(raw)
            if safe != known:
                changed[name] = safe
        return {"records": records, "devices": changed, "attempt": attempt}

    def merge_payload(self, payload: Mapping[str, Any]) -> None:
        """Add a report's payload (see :meth:`take_payload`) to the run's results."""
        from .reporting.schema import CheckRecord

        for data in payload.get("records", ()):
            record = CheckRecord.from_dict(data)
            self.records.append(record)
            self.attempts.setdefault((record.nodeid or "", record.attempt or 1), []).append(record)
        self.device_facts.update(payload.get("devices", {}))

    def note_outcome(self, report: pytest.TestReport, attempt: int = 1) -> None:
        """The test's final outcome (a failed setup/teardown is an error), that of run ``attempt`` of it on its
        records (``rerun`` where a rerun plugin ran it again), and its skip reason."""
        outcome = "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome
        if report.when == "call" or report.outcome != "passed":
            self.outcomes[report.nodeid] = "error" if report.when != "call" and report.failed else outcome
            for record in self.attempts.get((report.nodeid, attempt), ()):
                record.attempt_outcome = self.outcomes[report.nodeid]
        if report.skipped and not hasattr(report, "wasxfail") and isinstance(report.longrepr, tuple):
            self.skip_reasons.append(str(report.longrepr[2]).replace("Skipped: ", "", 1))
