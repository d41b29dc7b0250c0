"""The self-contained HTML run report (``--edge-html PATH``), rendered from the JSON report document."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from .. import __version__
from .._text import atomic_write
from ..config import suite_of
from ..errors import ReportError
from .html_blocks import OUTCOME_CLASS, badge, check_badge, e, facts_table, html_table, outcome_badge, record_html, when
from .opmatrix import matrix_html, matrix_records
from .schema import CheckRecord, ReportDocument
from .summary import SIMULATED_MARK, SummaryRow, build_rows, device_line, format_ms, format_number, row_key

#: records of one check of one test that passed, shown in full; the rest are counted (a test that compares every
#: sample of a data set records thousands: all of them are in the JSON report)
SHOWN_PASSES = 20


class Group(NamedTuple):
    """A summary row, its numbered records shown in full, and how many passing records of each (test, check)
    are not."""

    row: SummaryRow
    members: List[Tuple[int, CheckRecord]]
    hidden: Dict[Tuple[str, str], int]


_VERDICT_CLASS = {"FAIL": "fail", "PASS": "pass", "XFAIL": "xfail", "SKIP": "skip"}
_OUTCOME_ORDER = {"fail": 0, "xfail": 1, "skip": 2, "pass": 3}
_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:2px solid #d8dde6}
h3{font-size:16px;margin:18px 0 6px}h4{font-size:14px;margin:12px 0 4px}a{color:#1a56c4}.muted{color:#5b6474}
table{border-collapse:collapse;margin:6px 0 10px;max-width:100%}
th,td{border:1px solid #d8dde6;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f1f3f7}
td{overflow-wrap:anywhere}td:first-child{overflow-wrap:normal}td.n{text-align:right;font-variant-numeric:tabular-nums}
td.model{min-width:12em;max-width:26em;overflow-wrap:anywhere}
table.facts th{font-weight:600;white-space:nowrap}
code,pre{font:12px/1.4 ui-monospace,Menlo,Consolas,monospace}pre{white-space:pre-wrap;word-break:break-word}
pre.error{background:#fdecec;border-left:4px solid #c62828;padding:6px 10px}
.badge{display:inline-block;min-width:3.2em;padding:1px 6px;border-radius:3px;font-weight:700;text-align:center}
.fail{background:#c62828;color:#fff}.pass{background:#2e7d32;color:#fff}.xfail{background:#f9a825;color:#1d2330}
.skip,.other{background:#9aa3b2;color:#fff}.banner{padding:8px 12px;background:#fff3cd;border:1px solid #f9a825}
.check{white-space:nowrap;margin-right:6px}.check .badge{font-size:11px;min-width:0;padding:0 4px}
.record{border:1px solid #d8dde6;border-radius:4px;padding:4px 14px 10px;margin:12px 0}
.record.failed{border-left:6px solid #c62828}.cpu{background:#fdecec;color:#b71c1c;font-weight:700;padding:0 4px}
svg.hist .axis{stroke:#1d2330}svg.hist .bar{fill:#3f6fb5}svg.hist .bar.beyond{fill:#c62828}
svg.hist text{font-size:11px;text-anchor:middle;fill:#1d2330}svg.hist .label{font-size:12px}
svg.path .axis{stroke:#1d2330}svg.path .point{fill:#3f6fb5}svg.path .point.beyond{fill:#c62828}
svg.path text{font-size:11px;text-anchor:middle;fill:#1d2330}svg.path .label{font-size:12px}
"""


def _named(record: CheckRecord) -> CheckRecord:
    """A record keyed like the other records of its test: a suite item's by its suite (also a record
    that does not name it), a test that failed before any session existed by the test itself."""
    nodeid = record.nodeid or "?"
    suite = record.suite or suite_of(nodeid)
    return dataclasses.replace(record, model=record.model or nodeid.split("[")[0], suite=suite)


def _grouped(document: ReportDocument, rootdir: Optional[Path]) -> List[Group]:
    """Summary rows (failures first) with the numbered records of each, failed records first, at most
    ``SHOWN_PASSES`` passing ones of each check of a test."""
    records = [_named(r) for r in document.records if r.op_matrix is None]  # the op matrix has its own section
    rows = build_rows(records, document.outcomes, rootdir)
    members: Dict[Tuple[str, str, str], List[Tuple[int, CheckRecord]]] = {}
    for number, record in enumerate(records):
        members.setdefault(row_key(record, rootdir), []).append((number, record))

    def rank(member: Tuple[int, CheckRecord]) -> int:
        return _OUTCOME_ORDER.get(OUTCOME_CLASS.get(member[1].outcome or "", "other"), 4)

    groups = []
    for row in rows:
        shown, passes = [], {}
        for number, record in sorted(members[(row.model, row.device, row.provider)], key=rank):
            key = (record.nodeid or "?", record.check or "test")
            if record.check_passed is True:
                passes[key] = passes.get(key, 0) + 1
                if passes[key] > SHOWN_PASSES:
                    continue
            shown.append((number, record))
        groups.append(Group(row, shown, {key: n - SHOWN_PASSES for key, n in passes.items() if n > SHOWN_PASSES}))
    return groups


def _more(hidden: Dict[Tuple[str, str], int]) -> str:
    return "".join(
        f'<p class="muted">{count:,} more passed {e(check)} records of {e(test)}: every one is in the JSON report</p>'
        for (test, check), count in hidden.items()
    )


def _header(document: ReportDocument) -> str:
    records = document.records
    started = min((r.started for r in records if isinstance(r.started, (int, float))), default=None)
    finished = max((r.finished for r in records if isinstance(r.finished, (int, float))), default=None)
    outcomes = list(document.outcomes.values())
    counts = ", ".join(f"{outcomes.count(o)} {o}" for o in sorted(set(outcomes))) or "no edge tests ran"
    banner = (
        '<p class="banner"><strong>INTERRUPTED</strong>: the run was stopped before it finished; '
        "this report has what ran until then.</p>"
        if document.interrupted
        else ""
    )
    facts = facts_table(
        [
            ("tests", counts),
            ("exit status", document.exitstatus),
            ("seed", document.seed),
            ("first check started", when(started)),
            ("last check finished", when(finished)),
            ("report created", document.created),
            ("report schema", f"{document.schema} v{document.schema_version}"),
            ("rendered by", f"pytest-edgeort {__version__}"),
        ]
    )
    return f"<h1>pytest-edgeort report</h1>{banner}{facts}"


def _devices(devices: Mapping[str, Mapping[str, Any]]) -> str:
    parts = ["<h2>Devices</h2>"]
    for name, facts in sorted(devices.items()):
        qnn = facts.get("qnn") or {}
        lock = facts.get("board_lock") or {}
        parts.append(f"<h3>{e(name)}</h3><p>{e(device_line(name, facts))}</p>")
        parts.append(
            facts_table(
                [
                    ("platform", facts.get("platform")),
                    ("machine", facts.get("machine")),
                    ("hostname", facts.get("hostname")),
                    ("SoC", facts.get("soc")),
                    ("python", facts.get("python")),
                    ("numpy", facts.get("numpy")),
                    ("onnxruntime", facts.get("onnxruntime")),
                    ("QNN SDK", qnn.get("sdk_version")),
                    ("QNN EP package", qnn.get("ep_package_version")),
                    ("QNN backends", qnn.get("backends")),
                    ("execution providers", facts.get("providers")),
                    ("plugin EP errors", facts.get("plugin_errors")),
                    ("board lock", lock.get("path")),
                ]
            )
        )
    return "".join(parts) if devices else '<h2>Devices</h2><p class="muted">no device was reached</p>'


def _summary(groups: List[Group]) -> str:
    rows = []
    for index, (row, members, hidden) in enumerate(groups):
        strict = row.strict_coverage is not None
        coverage = row.strict_coverage if strict else row.coverage
        coverage_text = "-" if coverage is None else f"{100 * coverage:.0f}" + ("" if strict else "*")
        sim = SIMULATED_MARK if row.latency_simulated else ""
        checks = " ".join(
            f'<span class="check"><a href="#rec-{n}">{e(r.check or "test")}</a> {check_badge(r)}</span>'
            for n, r in members
        ) + "".join(f' <span class="muted">+{count:,} passed</span>' for count in hidden.values())
        rows.append(
            [
                f'<a id="row-{index}" href="#grp-{index}">{e(row.model)}</a>',
                e(row.device),
                e(row.provider),
                f"{badge(row.verdict, _VERDICT_CLASS[row.verdict])} {e(row.checks)}",
                e(format_number(row.max_lsb, ".0f")),
                e(format_number(row.snr_db, ".1f")),
                e(format_number(None if row.topk is None else 100 * row.topk, ".0f")),
                e(coverage_text),
                e(format_ms(row.p50_ms) + sim),
                e(format_ms(row.p90_ms) + sim),
                e(format_number(row.speedup, ".2g") + sim),
                checks,
            ]
        )
    table = html_table(
        (
            "model",
            "device",
            "provider",
            "verdict",
            "max LSB",
            "SNR dB",
            "top-k %",
            "NPU %",
            "p50 ms",
            "p90 ms",
            "speed-up",
            "checks",
        ),
        rows,
        numeric=(4, 5, 6, 7, 8, 9, 10),
        css={0: "model"},
    )
    note = (
        '<p class="muted">NPU % with *: with CPU fallback allowed (QNN then runs graph-input/output '
        "quantization on CPU); without *: with CPU fallback disabled. Verdicts: worst check of the row; "
        f"the count is checks passed of checks run. ms and speed-up with {SIMULATED_MARK}: simulated latency "
        "(QNN's HTP simulator on x86-64), not a board's.</p>"
    )
    return f'<h2 id="summary">Summary: model x device x provider</h2>{table}{note}'


def _details(groups: List[Group]) -> str:
    parts = ["<h2>Details</h2>"]
    for index, (row, members, hidden) in enumerate(groups):
        parts.append(
            f'<h3 id="grp-{index}">{badge(row.verdict, _VERDICT_CLASS[row.verdict])} {e(row.model)} '
            f'<span class="muted">on {e(row.device)} / {e(row.provider)}</span></h3>'
        )
        parts.extend(record_html(number, record, index) for number, record in members)
        parts.append(_more(hidden))
    return "".join(parts)


def _unrecorded(document: ReportDocument) -> str:
    """Edge tests that recorded no check (a skip, a test that only ran a session), with their outcome."""
    recorded = {r.nodeid for r in document.records}
    rows = [
        [e(nodeid), outcome_badge(str(outcome))]
        for nodeid, outcome in document.outcomes.items()
        if nodeid not in recorded
    ]
    return "<h2>Edge tests without a check record</h2>" + html_table(("test", "outcome"), rows) if rows else ""


def _skipped(skips: Sequence[Tuple[str, int]]) -> str:
    if not skips:
        return ""
    return "<h2>Skipped</h2>" + html_table(
        ("count", "reason"), ([e(count), e(reason)] for reason, count in skips), numeric=(0,)
    )


def render_html(document: ReportDocument, rootdir: Optional[Path] = None) -> str:
    """The whole page: inline CSS and SVG, no script, nothing fetched from anywhere."""
    groups = _grouped(document, rootdir)
    body = (
        _header(document)
        + _devices(document.devices)
        + _summary(groups)
        + _details(groups)
        + matrix_html(matrix_records(document.records))
        + _unrecorded(document)
        + _skipped(document.skipped)
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>pytest-edgeort report</title><style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )


def write_html(path: Path, document: ReportDocument, rootdir: Optional[Path] = None) -> None:
    """Write the HTML report via a temp file and rename (never half a page); ReportError (one line
    naming the path, no temp file left behind) when it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, render_html(document, rootdir))
    except OSError as exc:
        raise ReportError(f"edgeort: cannot write the --edge-html {path}: {exc.strerror or exc}") from None
