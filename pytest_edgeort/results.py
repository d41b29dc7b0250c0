"""Results across pytest-xdist workers: what each test report carries, how the run collects it (in
this process or in the xdist controller), and the output made of it (collection header, summary,
JSON report)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple

import pytest

from .errors import DeviceUnavailable, InventoryError, ReportError
from .junit import record_error, record_identity, record_provenance

if TYPE_CHECKING:
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


def item_model(item: pytest.Item) -> Optional[Path]:
    """The model file an edge item tests (its ``edge_model`` marker or its suite's model), or None
    when that is not known (a malformed marker, a model in a package that is not installed)."""
    from .errors import EdgeError
    from .markers import model_marker

    try:
        if type(item).__name__ == "SuiteItem":
            return item.suite.resolve_model(item.suite.model, "model")
        marker = model_marker(item)
    except EdgeError:
        return None
    return marker.model if marker is not None else None


def _file_sha256(path: Path) -> Optional[str]:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def failure_line(report: pytest.TestReport) -> str:
    """The first line of why a test failed (our failures are one line already)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = (crash.message if crash is not None else str(report.longrepr or "")).strip()
    text = text[len("Failed: ") :] if text.startswith("Failed: ") else text  # pytest.fail's own prefix
    return text.splitlines()[0] if text else report.outcome


@dataclass
class RunResults:
    """Check results and outcomes of one run. Checks :meth:`record` their results as ``pending``;
    the relay attaches them to the test's report (:meth:`take_payload`), and every report that
    reaches :meth:`merge_payload` (in this process, or in the xdist controller) adds them to
    ``records``: one path for the summary and the JSON report."""

    pending: List[Dict[str, Any]] = field(default_factory=list)
    records: List[Dict[str, Any]] = field(default_factory=list)
    device_facts: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    outcomes: Dict[str, str] = field(default_factory=dict)  # nodeid -> final pytest outcome
    skip_reasons: List[str] = field(default_factory=list)

    def record(self, entry: Dict[str, Any]) -> None:
        """Keep one check's result until the relay attaches it to the test's report."""
        self.pending.append(entry)

    def take_payload(self, started: float, finished: float, facts: Mapping[str, Any]) -> Dict[str, Any]:
        """The pending records (timed ``started``/``finished``, epoch s) and the device ``facts`` not
        yet sent, as plain JSON-able data that survives pytest-xdist's report transport."""
        from .reporting.jsonreport import json_safe

        worker = os.environ.get("PYTEST_XDIST_WORKER")
        timing = {"started": started, "finished": finished, **({"xdist_worker": worker} if worker else {})}
        records = [{**timing, **entry} for entry in self.pending]
        self.pending.clear()
        changed = {name: f for name, f in json_safe(facts).items() if self.device_facts.get(name) != f}
        return {"records": json_safe(records), "devices": changed}

    def merge_payload(self, payload: Mapping[str, Any]) -> None:
        """Add a report's payload (see :meth:`take_payload`) to the run's results."""
        self.records.extend(payload.get("records", ()))
        self.device_facts.update(payload.get("devices", {}))

    def note_outcome(self, report: pytest.TestReport) -> None:
        """The test's final outcome (a failed setup/teardown is an error) and its skip reason."""
        outcome = "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome
        if report.when == "call" or report.outcome != "passed":
            self.outcomes[report.nodeid] = "error" if report.when != "call" and report.failed else outcome
        if report.skipped and not hasattr(report, "wasxfail") and isinstance(report.longrepr, tuple):
            self.skip_reasons.append(str(report.longrepr[2]).replace("Skipped: ", "", 1))


class ResultRelay:
    """Carries results on test reports and collects them. Every edge test that fails has a record
    with the phase and the reason, also when it failed before any check recorded a result."""

    def __init__(self, run: EdgeRun) -> None:
        self.results = run.results
        self.devices = run.registry
        self._hashes: Dict[Path, Optional[str]] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> Any:
        report = yield
        target = item_target(item)
        if target is not None:  # plain data on the report: pytest-xdist ships it to the controller
            record_identity(item, target)
            if report.when == "teardown" and "edge_model_sha256" not in {name for name, _ in item.user_properties}:
                # no session recorded it (failed or skipped before one): what is known, on the report
                # junitxml writes the properties from
                record_provenance(item, self._known_provenance(item, target))
                report.user_properties = list(item.user_properties)
            if report.failed:
                self._note_failure(report, item, target)
                record_error(item, failure_line(report))
            report.edgeort = self.results.take_payload(call.start, call.stop, self.devices.facts())
        elif type(item).__name__ == "MalformedSuite":  # a suite file that does not validate: no targets
            if report.failed:
                line = failure_line(report)
                self.results.record(
                    {
                        "nodeid": item.nodeid,
                        "check": "suite",
                        "passed": False,
                        "suite": str(item.path),
                        "phase": report.when,
                        "error": line,
                    }
                )
                record_error(item, line)
            report.edgeort = self.results.take_payload(call.start, call.stop, self.devices.facts())
        return report

    def _known_provenance(self, item: pytest.Item, target: Tuple[str, str]) -> Dict[str, Any]:
        """What is known of a test that has no session (yet): its model file and hash, and the
        device's versions if the device was reached."""
        model = item_model(item)
        if model is not None and model not in self._hashes:
            self._hashes[model] = _file_sha256(model)
        caps = self.devices.facts().get(target[0]) or {}
        qnn = caps.get("qnn") or {}
        return {
            "model": model.name if model else None,
            "model_path": str(model) if model else None,
            "model_sha256": self._hashes.get(model) if model else None,
            "onnxruntime": caps.get("onnxruntime"),
            "qnn_sdk": qnn.get("sdk_version"),
            "qnn_ep": qnn.get("ep_package_version"),
            "platform": caps.get("platform"),
        }

    def _note_failure(self, report: pytest.TestReport, item: pytest.Item, target: Tuple[str, str]) -> None:
        """The phase and reason on this phase's records, or a record of its own when there is none."""
        failure: Dict[str, Any] = {"phase": report.when, "error": failure_line(report)}
        for entry in self.results.pending:
            for key, value in failure.items():
                entry.setdefault(key, value)
        if not self.results.pending and report.when != "teardown":
            device, provider = target
            known = {k: v for k, v in self._known_provenance(item, target).items() if v is not None}
            self.results.record(
                {
                    "nodeid": item.nodeid,
                    "check": getattr(item, "check", "test"),
                    "passed": False,
                    "device": device,
                    "provider": provider,
                    **known,
                    **failure,
                }
            )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = getattr(report, "edgeort", None)
        if payload is not None:
            self.results.merge_payload(payload)
            self.results.note_outcome(report)


class RunOutput:
    """What the run prints and writes: the device header after collection, the JSON report, the
    edgeort summary. Registered in the process that talks to the user (not in xdist workers);
    ``workers_devices``: the xdist controller, whose devices connect in the workers, lists them as
    the workers' reports described them."""

    def __init__(self, run: EdgeRun, workers_devices: bool = False) -> None:
        self.run = run
        self.results = run.results
        self.workers_devices = workers_devices
        self.report_errors: List[str] = []  # reports that could not be written

    def pytest_report_collectionfinish(self, config: pytest.Config, items: List[pytest.Item]) -> Optional[List[str]]:
        options = self.run.options
        if self.run.usage_errors or not any(item_target(i) is not None for i in items):
            return None
        lines = [
            f"edgeort: devices {', '.join(options.devices)}; seed {options.seed}"
            + (f"; providers {', '.join(options.providers)}" if options.providers else "")
            + ("; strict" if options.strict else "")
        ]
        return lines + [self.device_header(name) for name in options.devices]

    def device_header(self, name: str) -> str:
        """'edgeort device local: Linux-...-x86_64, onnxruntime 1.31.1, QNN SDK 2.51.0 (EP 2.7.0), providers ...'."""
        from .reporting.summary import device_line

        try:
            return device_line(name, self.run.device(name).capabilities())
        except (DeviceUnavailable, InventoryError) as exc:
            return f"edgeort device {name}: unavailable: {exc}"

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Write the JSON and HTML reports (also after Ctrl-C: pytest still finishes the session)."""
        results, options = self.results, self.run.options
        wanted = options.report is not None or options.html is not None
        if not wanted or not (results.records or results.outcomes):
            return
        from .reporting.html import write_html
        from .reporting.jsonreport import build_report, write_report
        from .reporting.summary import skip_counts

        document = build_report(
            results.records,
            results.device_facts,
            options.seed,
            results.outcomes,
            skip_counts(results.skip_reasons),
            int(exitstatus),
        )
        html = partial(write_html, rootdir=self.run.rootdir)  # rows name models relative to it
        for path, write in ((options.report, write_report), (options.html, html)):
            if path is None:
                continue
            try:
                write(path, document)
            except ReportError as exc:  # the rest of the terminal output stays; the run must not look green
                self.report_errors.append(str(exc))
                if session.exitstatus == pytest.ExitCode.OK:
                    session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        for line in self.report_errors:
            terminalreporter.write_line(line, red=True, bold=True)
        results = self.results
        if results.records or results.skip_reasons:
            from .reporting.summary import (
                build_rows,
                device_line,
                format_rows,
                fp16_notes,
                lock_lines,
                skip_counts,
                u8_kernel_notes,
            )

            terminalreporter.section("edgeort summary")
            if self.workers_devices:
                for name, facts in sorted(results.device_facts.items()):
                    terminalreporter.write_line(device_line(name, facts))
            for line in lock_lines(results.device_facts):
                terminalreporter.write_line(line, yellow=True)
            rows = build_rows(results.records, results.outcomes, self.run.rootdir)
            for line in format_rows(rows) if rows else ():
                terminalreporter.write_line(line)
            for line in fp16_notes(results.records, results.device_facts, self.run.rootdir):
                terminalreporter.write_line(line, yellow=True)
            for line in u8_kernel_notes(results.records, results.device_facts):
                terminalreporter.write_line(line, yellow=True)
            for reason, count in skip_counts(results.skip_reasons):
                terminalreporter.write_line(f"skipped {count}x: {reason}", yellow=True)
        updates = [r for r in results.records if r.get("golden_update")]
        if updates:
            terminalreporter.section("edgeort golden updates")
            for record in updates:
                terminalreporter.write_line(
                    f"{record['golden']} ({record['device']}): " + "; ".join(record["golden_update"])
                )
