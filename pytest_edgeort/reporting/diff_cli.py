"""``python -m pytest_edgeort diff OLD.json NEW.json``: read two ``--edge-report`` files, print what changed
(one summary line, the summary table of both runs, the changes) or its JSON, exit 1 when anything got worse."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, TextIO

from .diff import SEVERITIES, Diff, LatencyGate, diff_reports
from .schema import ReportDocument
from .summary import format_rows

EXIT_SAME, EXIT_WORSE, EXIT_USAGE = 0, 1, 2
DIFF_SCHEMA = "pytest-edgeort/diff"


class DiffUsageError(Exception):
    """A report that cannot be read or an argument that does not parse: one line, exit 2."""


def load_report(path: Path, which: str) -> ReportDocument:
    """A saved ``--edge-report``; DiffUsageError (one line naming the file) when it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DiffUsageError(f"{which} {path}: cannot read it: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DiffUsageError(f"{which} {path}: not a JSON report ({exc})") from None
    if not isinstance(data, dict):
        raise DiffUsageError(f"{which} {path}: not a pytest-edgeort report (a JSON {type(data).__name__})")
    if "schema" not in data:  # every --edge-report has one: another JSON file must not pass the gate as empty
        raise DiffUsageError(f'{which} {path}: not a pytest-edgeort report (no "schema"; --edge-report writes one)')
    try:
        return ReportDocument.from_dict(data)
    except ValueError as exc:
        raise DiffUsageError(f"{which} {path}: {exc}") from None
    except (TypeError, AttributeError, KeyError) as exc:
        raise DiffUsageError(f"{which} {path}: malformed report ({type(exc).__name__}: {exc})") from None


def _device_match(text: str) -> tuple:
    old, sep, new = text.partition("=")
    if not sep or not old or not new:
        raise argparse.ArgumentTypeError(f"expected OLD=NEW (device names), got {text!r}")
    return old, new


def _latency_gate(text: str) -> LatencyGate:
    try:
        return LatencyGate.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pytest_edgeort diff",
        description="Compare two --edge-report files; exit 1 when anything got worse, 2 when one cannot be read.",
    )
    p.add_argument("old", type=Path, metavar="OLD.json")
    p.add_argument("new", type=Path, metavar="NEW.json")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument(
        "--fail-latency",
        type=_latency_gate,
        metavar="[p50:|p90:]N%",
        help="latency that grew by more than N%% counts as worse (default statistic p50; no gate without it)",
    )
    p.add_argument(
        "--match-device",
        type=_device_match,
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="pair OLD's device with NEW's (repeatable; default: the one device of each report, else same names)",
    )
    return p


def summary_line(diff: Diff, old: Path, new: Path) -> str:
    """'edgeort diff OLD -> NEW: WORSE: 2 worse, 1 better, 3 changed; 8 tests paired, ...'."""
    counts = ", ".join(f"{diff.count(s)} {s}" for s in SEVERITIES)
    renamed = [f"{a} -> {b}" for a, b in sorted(diff.devices.items()) if a != b]
    devices = f"; devices {', '.join(renamed)}" if renamed else ""
    return (
        f"edgeort diff {old} -> {new}: {'WORSE' if diff.worse else 'nothing worse'}: {counts}; "
        f"{diff.paired_tests} tests paired, {len(diff.only_old)} only in OLD, {len(diff.only_new)} only in NEW"
        f"{devices}"
    )


def text_lines(diff: Diff, old: Path, new: Path) -> List[str]:
    """The summary line, the summary table (OLD's row over NEW's), then one line per change, worse first."""
    lines = [summary_line(diff, old, new)]
    if diff.rows:
        rows = [row for pair in diff.rows for row in pair]
        lines += [""] + format_rows(rows, ["OLD", "NEW"] * len(diff.rows))
    if diff.changes:
        lines.append("")
        lines += [f"{c.severity:7s} {c.kind:9s} {c.subject}: {c.text}" for c in diff.changes]
    lines += [f"only in OLD: {nodeid}" for nodeid in diff.only_old]
    lines += [f"only in NEW: {nodeid}" for nodeid in diff.only_new]
    return lines


def _row_dict(row: Any) -> Dict[str, Any]:
    return {**dataclasses.asdict(row), "verdict": row.verdict, "checks": row.checks}


def json_document(diff: Diff, old: Path, new: Path) -> Dict[str, Any]:
    """The ``--json`` form: the summary counts, the paired rows, the changes and the unpaired tests."""
    from .schema import json_safe

    return json_safe(  # type: ignore[no-any-return]
        {
            "schema": DIFF_SCHEMA,
            "version": 1,
            "old": str(old),
            "new": str(new),
            "worse": diff.worse,
            "counts": {s: diff.count(s) for s in SEVERITIES},
            "devices": diff.devices,
            "paired_tests": diff.paired_tests,
            "only_old": diff.only_old,
            "only_new": diff.only_new,
            "rows": [{"old": _row_dict(a), "new": _row_dict(b)} for a, b in diff.rows],
            "changes": [c.to_dict() for c in diff.changes],
        }
    )


def main(argv: Optional[Sequence[str]] = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run ``diff``; the exit code: 0 nothing worse, 1 something worse, 2 a report or argument unusable."""
    args = parser().parse_args(argv)
    try:
        old, new = load_report(args.old, "OLD"), load_report(args.new, "NEW")
        diff = diff_reports(old, new, dict(args.match_device), args.fail_latency, Path.cwd())
    except (DiffUsageError, ValueError) as exc:
        print(f"edgeort diff: {exc}", file=err)
        return EXIT_USAGE
    if args.json:
        text = json.dumps(json_document(diff, args.old, args.new), indent=1, sort_keys=True)
    else:
        text = "\n".join(text_lines(diff, args.old, args.new))
    try:
        print(text, file=out)
        out.flush()
    except BrokenPipeError:  # `diff ... | head`: the reader has seen enough; the exit code still tells
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
    return EXIT_WORSE if diff.worse else EXIT_SAME
