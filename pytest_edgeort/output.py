"""The end-of-run output, in the process that talks to the user: the device header after collection, the
JSON and HTML reports, the edgeort summary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional

import pytest

from .config import suite_of
from .errors import DeviceUnavailable, InventoryError, ReportError
from .items.target import item_target
from .run import EdgeRun

if TYPE_CHECKING:
    from .reporting.schema import ReportDocument


class RunOutput:
    """What the run prints and writes: the device header after collection, the JSON report, the
    edgeort summary. Registered in the process that talks to the user (not in xdist workers);
    ``workers_devices``: the xdist controller, whose devices connect in the workers, lists them as
    the workers' reports described them. What presents and writes results is imported once a run has
    some: a run without edge tests loads none of it (``tests/unit/test_imports.py``)."""

    def __init__(self, run: EdgeRun, workers_devices: bool = False) -> None:
        self.run = run
        self.results = run.results
        self.workers_devices = workers_devices
        self.report_errors: List[str] = []  # reports that could not be written
        self.unused_goldens: List[str] = []

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
            return device_line(name, self.run.device(name).describe())
        except (DeviceUnavailable, InventoryError) as exc:
            return f"edgeort device {name}: unavailable: {exc}"

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Write the JSON and HTML reports (also after Ctrl-C: pytest still finishes the session, and a run
        of edge tests interrupted before its first result writes what it knows: the devices reached)."""
        results, options = self.results, self.run.options
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED and any(
            item_target(item) is not None for item in getattr(session, "items", ())
        )
        if not (results.records or results.outcomes or interrupted):
            return
        self._write_matrix_csv(session)
        if any(suite_of(nodeid) for nodeid in results.outcomes):  # (a run without suites never loads the checks)
            from .items.golden import unused_golden_lines

            self.unused_goldens = unused_golden_lines(self.run, results.outcomes)
        if self.unused_goldens and options.strict and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if options.report is None and options.html is None:
            return
        from .reporting.jsonreport import build_report, write_report
        from .reporting.summary import skip_counts

        devices = {**self.run.registry.facts(), **results.device_facts} if interrupted else results.device_facts
        document = build_report(
            results.records,
            devices,
            options.seed,
            results.outcomes,
            skip_counts(results.skip_reasons),
            int(session.exitstatus),
        )
        writers = (
            (options.report, lambda path: write_report(path, document.to_dict())),
            (options.html, lambda path: self._write_html(path, document)),
        )
        for path, write in writers:
            if path is None:
                continue
            try:
                write(path)
            except ReportError as exc:  # the rest of the terminal output stays; the run must not look green
                self.report_errors.append(str(exc))
                if session.exitstatus == pytest.ExitCode.OK:
                    session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _write_html(self, path: Path, document: ReportDocument) -> None:
        from .reporting.html import write_html  # (its modules load only for a run that writes one)

        write_html(path, document, self.run.rootdir)  # rows relative to it

    def _write_matrix_csv(self, session: pytest.Session) -> None:
        """``--edge-op-matrix-csv``: one row per op-matrix case (a CSV that cannot be written fails the run)."""
        path = self.run.options.op_matrix_csv
        if path is None:
            return
        from .reporting.opmatrix import matrix_records, write_csv

        records = matrix_records(self.results.records)
        if not records:
            return
        try:
            write_csv(path, records)
        except ReportError as exc:
            self.report_errors.append(str(exc))
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        for line in self.report_errors:
            terminalreporter.write_line(line, red=True, bold=True)
        results = self.results
        if not (results.records or results.skip_reasons or self.unused_goldens):
            return
        from .reporting.opmatrix import format_matrix, matrix_records
        from .reporting.summary import (
            build_rows,
            device_line,
            format_rows,
            fp16_notes,
            lock_lines,
            placement_notes,
            skip_counts,
            u8_kernel_notes,
        )

        if any(r.op_matrix is None for r in results.records) or results.skip_reasons:
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
            for line in placement_notes(results.records):
                terminalreporter.write_line(line, yellow=True)
            for reason, count in skip_counts(results.skip_reasons):
                terminalreporter.write_line(f"skipped {count}x: {reason}", yellow=True)
        matrix = matrix_records(results.records)
        if matrix:
            terminalreporter.section("edgeort op matrix")
            for line in format_matrix(matrix):
                terminalreporter.write_line(line)
        updates = [r for r in results.records if r.golden_update]
        if updates:
            terminalreporter.section("edgeort golden updates")
            for record in updates:
                terminalreporter.write_line(f"{record.golden} ({record.device}): " + "; ".join(record.golden_update))
        if self.unused_goldens:
            strict = self.run.options.strict
            terminalreporter.section("edgeort unused goldens")
            for line in self.unused_goldens:
                suffix = " [--edge-strict]" if strict else ""
                terminalreporter.write_line(line + suffix, red=strict, yellow=not strict)
