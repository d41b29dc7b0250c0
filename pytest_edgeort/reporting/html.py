"""The self-contained HTML run report (``--edge-html PATH``), rendered from the JSON report document."""

from __future__ import annotations

import datetime
from html import escape
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .. import __version__
from .._text import atomic_write
from ..config.suite import MANIFEST
from ..errors import ReportError
from .summary import SummaryRow, _ms, _num, build_rows, device_line, row_name
from .svg import histogram_svg

_VERDICT_CLASS = {"FAIL": "fail", "PASS": "pass", "XFAIL": "xfail", "SKIP": "skip"}
_OUTCOME_CLASS = {
    "failed": "fail",
    "error": "fail",
    "passed": "pass",
    "xfailed": "xfail",
    "xpassed": "xfail",
    "skipped": "skip",
}
_OUTCOME_ORDER = {"fail": 0, "xfail": 1, "skip": 2, "pass": 3}
_RECORD_FACTS = (
    ("nodeid", "test"),
    ("model_path", "model"),
    ("model_sha256", "model sha256"),
    ("ep", "EP"),
    ("ep_api", "EP API"),
    ("provider_options", "provider options"),
    ("cpu_fallback", "CPU fallback"),
    ("offload_graph_io_quantization", "offload_graph_io_quantization"),
    ("examples", "examples"),
    ("fuzz_examples", "fuzz examples"),
    ("onnxruntime", "onnxruntime"),
    ("qnn_sdk", "QNN SDK"),
    ("qnn_ep", "QNN EP"),
    ("soc", "SoC"),
    ("xdist_worker", "xdist worker"),
    ("phase", "failed in"),
)
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
"""


def _e(value: Any) -> str:
    """Any value as escaped HTML text (model names, paths and errors are user data)."""
    return escape(str(value), quote=True)


def _badge(text: str, css: str) -> str:
    return f'<span class="badge {css}">{_e(text)}</span>'


def _outcome_badge(outcome: str) -> str:
    return _badge(outcome.upper(), _OUTCOME_CLASS.get(outcome, "other"))


def _value(value: Any) -> str:
    """A fact for a table cell: mappings as ``k=v`` pairs, lists comma-separated, floats shortened."""
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_value(v)}" for k, v in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, float):
        return format(value, ".4g")
    return "-" if value in (None, "") else str(value)


def _table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    numeric: Sequence[int] = (),
    css: Optional[Mapping[int, str]] = None,
) -> str:
    """A table from already-escaped cell HTML; columns in ``numeric`` are right-aligned, ``css`` gives
    other columns a class."""
    classes = {**{i: "n" for i in numeric}, **(css or {})}
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{classes[i]}">{c}</td>' if i in classes else f"<td>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _facts(pairs: Iterable[Tuple[str, Any]]) -> str:
    """A two-column table of the facts that are present, names in the first column."""
    rows = "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(_value(v))}</td></tr>" for k, v in pairs if v not in (None, "", [], {})
    )
    return f'<table class="facts"><tbody>{rows}</tbody></table>'


def _when(epoch: Optional[float]) -> str:
    if epoch is None:
        return "-"
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat(timespec="seconds")


def _with_model(record: Mapping[str, Any]) -> Dict[str, Any]:
    """A record keyed like the other records of its test: a suite item's by its suite (also a record
    that does not name it), a test that failed before any session existed by the test itself."""
    nodeid = str(record.get("nodeid", "?"))
    suite = record.get("suite") or (nodeid.split("::")[0] if nodeid.split("::")[0].endswith(MANIFEST) else None)
    return {**record, "model": record.get("model") or nodeid.split("[")[0], **({"suite": suite} if suite else {})}


def _grouped(document: Mapping[str, Any], rootdir: Optional[Path]) -> List[Tuple[SummaryRow, List[Tuple[int, dict]]]]:
    """Summary rows (failures first) with the numbered records of each, failed records first."""
    records = [_with_model(r) for r in document.get("results", ())]
    rows = build_rows(records, document.get("outcomes", {}), rootdir)
    members: Dict[Tuple[str, str, str], List[Tuple[int, dict]]] = {}
    for number, record in enumerate(records):
        key = (row_name(record, rootdir), record["device"], record["provider"])
        members.setdefault(key, []).append((number, record))

    def rank(member: Tuple[int, dict]) -> int:
        return _OUTCOME_ORDER.get(_OUTCOME_CLASS.get(member[1].get("outcome", ""), "other"), 4)

    return [(row, sorted(members[(row.model, row.device, row.provider)], key=rank)) for row in rows]


def _header(document: Mapping[str, Any]) -> str:
    records = document.get("results", ())
    started = min((r["started"] for r in records if isinstance(r.get("started"), (int, float))), default=None)
    finished = max((r["finished"] for r in records if isinstance(r.get("finished"), (int, float))), default=None)
    outcomes = list(document.get("outcomes", {}).values())
    counts = ", ".join(f"{outcomes.count(o)} {o}" for o in sorted(set(outcomes))) or "no edge tests ran"
    banner = (
        '<p class="banner"><strong>INTERRUPTED</strong>: the run was stopped before it finished; '
        "this report has what ran until then.</p>"
        if document.get("interrupted")
        else ""
    )
    facts = _facts(
        [
            ("tests", counts),
            ("exit status", document.get("exitstatus")),
            ("seed", document.get("seed")),
            ("first check started", _when(started)),
            ("last check finished", _when(finished)),
            ("report created", document.get("created")),
            ("report schema", f"{document.get('schema')} v{document.get('version')}"),
            ("rendered by", f"pytest-edgeort {__version__}"),
        ]
    )
    return f"<h1>pytest-edgeort report</h1>{banner}{facts}"


def _devices(devices: Mapping[str, Mapping[str, Any]]) -> str:
    parts = ["<h2>Devices</h2>"]
    for name, facts in sorted(devices.items()):
        qnn = facts.get("qnn") or {}
        lock = facts.get("board_lock") or {}
        parts.append(f"<h3>{_e(name)}</h3><p>{_e(device_line(name, facts))}</p>")
        parts.append(
            _facts(
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


def _summary(groups: List[Tuple[SummaryRow, List[Tuple[int, dict]]]]) -> str:
    rows = []
    for index, (row, members) in enumerate(groups):
        strict = row.strict_coverage is not None
        coverage = row.strict_coverage if strict else row.coverage
        coverage_text = "-" if coverage is None else f"{100 * coverage:.0f}" + ("" if strict else "*")
        checks = " ".join(
            f'<span class="check"><a href="#rec-{n}">{_e(r.get("check", "test"))}</a> '
            f"{_outcome_badge(r.get('outcome', '?'))}</span>"
            for n, r in members
        )
        rows.append(
            [
                f'<a id="row-{index}" href="#grp-{index}">{_e(row.model)}</a>',
                _e(row.device),
                _e(row.provider),
                f"{_badge(row.verdict, _VERDICT_CLASS[row.verdict])} {_e(row.checks)}",
                _e(_num(row.max_lsb, ".0f")),
                _e(_num(row.snr_db, ".1f")),
                _e(_num(None if row.topk is None else 100 * row.topk, ".0f")),
                _e(coverage_text),
                _e(_ms(row.p50_ms)),
                _e(_ms(row.p90_ms)),
                _e(_num(row.speedup, ".2g")),
                checks,
            ]
        )
    table = _table(
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
        "the count is checks passed of checks run.</p>"
    )
    return f'<h2 id="summary">Summary: model x device x provider</h2>{table}{note}'


def _metrics(outputs: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for out in outputs:
        verdict = _badge("PASS", "pass") if out.get("passed") else _badge("FAIL", "fail")
        shape = "x".join(str(d) for d in out.get("actual_shape", ())) or "scalar"
        topk = out.get("topk_agreement")
        rows.append(
            [
                _e(out.get("name")),
                _e(shape),
                _e(out.get("actual_dtype")),
                verdict,
                *(_e(_value(out.get(key))) for key in ("max_abs", "mean_abs", "max_lsb", "scale")),
                _e(_value(None if out.get("frac_within") is None else 100 * out["frac_within"])),
                _e(_value(out.get("snr_db"))),
                _e(_value(out.get("cosine"))),
                _e(_value(None if topk is None else 100 * topk)),
                _e(_value(out.get("gain"))),
            ]
        )
    return _table(
        (
            "output",
            "shape",
            "dtype",
            "verdict",
            "max |err|",
            "mean |err|",
            "max LSB",
            "LSB (scale)",
            "within tol %",
            "SNR dB",
            "cosine",
            "top-k %",
            "gain",
        ),
        rows,
        numeric=tuple(range(4, 13)),
    )


def _comparison(comparison: Mapping[str, Any]) -> str:
    """The per-output metrics table, missing/extra outputs, then each output's details."""
    parts = ["<h4>outputs</h4>" + _metrics(comparison["outputs"])] if comparison.get("outputs") else []
    for key in ("missing", "extra"):
        if comparison.get(key):
            parts.append(f"<p>{key} outputs: {_e(', '.join(map(str, comparison[key])))}</p>")
    parts.extend(_output_details(out) for out in comparison.get("outputs", ()))
    return "".join(parts)


def _output_details(out: Mapping[str, Any]) -> str:
    name = _e(out.get("name"))
    parts = [f"<h4>output {name}</h4>"]
    if out.get("failures"):
        parts.append("<ul>" + "".join(f"<li>{_e(f)}</li>" for f in out["failures"]) + "</ul>")
    tolerance = {k: v for k, v in (out.get("tolerance") or {}).items() if v is not None}
    parts.append(
        _facts(
            [
                ("error pattern", out.get("pattern_text")),
                ("tolerance", tolerance),
                ("smallest tolerance that would pass", out.get("smallest_passing")),
                ("NaN actual/expected", _pair(out, "nan")),
                ("inf actual/expected", _pair(out, "inf")),
            ]
        )
    )
    if out.get("worst"):
        rows = (
            [
                _e(tuple(w.get("index", ()))),
                *(_e(_value(w.get(k))) for k in ("actual", "expected", "abs_err", "err_lsb")),
            ]
            for w in out["worst"]
        )
        parts.append(
            "<p>worst elements</p>"
            + _table(("index", "actual", "expected", "|err|", "err LSB"), rows, numeric=(1, 2, 3, 4))
        )
    if out.get("histogram"):
        parts.append(_histogram(out["histogram"], str(out.get("histogram_unit") or "LSB"), tolerance))
    return "".join(parts)


def _histogram(bins: Sequence[Sequence[Any]], unit: str, tolerance: Mapping[str, Any]) -> str:
    """The plot with its caption; the limit is the ``lsb`` tolerance (or 1 for a histogram in ``atol``)."""
    limit = tolerance.get("lsb") if unit == "LSB" else 1.0 if unit == "atol" else None
    legend = f" (red: bins wholly above the tolerance of {_value(limit)} {unit})" if limit is not None else ""
    return f"<p>error histogram in {_e(unit)}{_e(legend)}</p>" + histogram_svg(bins, unit, limit)


def _pair(out: Mapping[str, Any], kind: str) -> Optional[str]:
    actual, expected = out.get(f"{kind}_actual"), out.get(f"{kind}_expected")
    return f"{actual} / {expected}" if actual or expected else None


def _placement(placement: Mapping[str, Mapping[str, int]]) -> str:
    """Node counts per op type and EP; ops (partly) on the CPU EP are marked and listed first."""
    eps = sorted(placement, key=lambda ep: (ep == "CPUExecutionProvider", ep))
    ops = sorted(
        {op for counts in placement.values() for op in counts},
        key=lambda op: (not placement.get("CPUExecutionProvider", {}).get(op), op),
    )
    rows = []
    for op in ops:
        cells = []
        for ep in eps:
            count = placement[ep].get(op)
            on_cpu = ep == "CPUExecutionProvider" and count
            cells.append(f'<span class="cpu">{_e(count)} on CPU</span>' if on_cpu else _e(count or ""))
        rows.append([_e(op), *cells])
    return _table(("op type", *eps), rows, numeric=tuple(range(1, len(eps) + 1)))


def _latency(record: Mapping[str, Any]) -> str:
    latency = record.get("latency") or {}
    return _facts(
        [
            ("p50 ms", _ms(latency.get("p50_ms"))),
            ("p90 ms", _ms(latency.get("p90_ms"))),
            ("mean ms", _ms(latency.get("mean_ms"))),
            ("min ms", _ms(latency.get("min_ms"))),
            ("runs", latency.get("runs")),
            ("gate p90 ms", record.get("latency_gate_ms")),
            ("speed-up vs CPU", _num(record.get("speedup_vs_cpu"), ".2g")),
        ]
    )


def _golden(record: Mapping[str, Any]) -> str:
    """Where the goldens came from; facts that differ from this run are flagged."""
    provenance = record["golden_provenance"]
    rows = []
    for key, value in sorted(provenance.items()):
        if key == "placement":
            continue
        now = record.get(key)
        changed = now is not None and key not in ("model", "written") and now != value
        rows.append([_e(key), _e(_value(value)), _e(_value(now)) + (" <strong>(changed)</strong>" if changed else "")])
    return "<h4>golden provenance</h4>" + _table(("fact", "golden written with", "this run"), rows)


def _record(number: int, record: Mapping[str, Any], row_index: int) -> str:
    outcome = str(record.get("outcome", "unknown"))
    failed = _OUTCOME_CLASS.get(outcome) == "fail"
    parts = [
        f'<section class="record{" failed" if failed else ""}" id="rec-{number}">',
        (
            f"<h3>{_outcome_badge(outcome)} {_e(record.get('check', 'test'))} "
            f'<span class="muted">{_e(record.get("nodeid", ""))}</span></h3>'
        ),
        f'<p><a href="#row-{row_index}">back to the summary</a></p>',
    ]
    if record.get("error"):
        parts.append(f'<pre class="error">{_e(record["error"])}</pre>')
    duration = None
    if isinstance(record.get("started"), (int, float)) and isinstance(record.get("finished"), (int, float)):
        duration = f"{record['finished'] - record['started']:.3f} s"
    parts.append(
        _facts(
            [(label, record.get(key)) for key, label in _RECORD_FACTS]
            + [("started", _when(record.get("started"))), ("duration", duration)]
        )
    )
    parts.append(_comparison(record.get("comparison") or {}))
    if record.get("cpu_nodes"):
        rows = (
            [_e(n.get("op_type")), _e(n.get("count")), _e(", ".join(n.get("nodes", ())))] for n in record["cpu_nodes"]
        )
        parts.append("<h4>nodes that would run on CPU</h4>" + _table(("op type", "count", "nodes"), rows, numeric=(1,)))
    if record.get("placement"):
        coverage = record.get("npu_coverage")
        if isinstance(coverage, (int, float)):
            parts.append(f"<h4>placement per op type</h4><p>NPU node coverage {100 * coverage:.1f} %</p>")
        else:
            parts.append("<h4>placement per op type</h4>")
        parts.append(_placement(record["placement"]))
    if record.get("latency"):
        parts.append("<h4>latency</h4>" + _latency(record))
    if record.get("golden_provenance"):
        parts.append(_golden(record))
    if record.get("golden_update"):
        parts.append(
            "<h4>golden update</h4><ul>" + "".join(f"<li>{_e(line)}</li>" for line in record["golden_update"]) + "</ul>"
        )
    parts.append("</section>")
    return "".join(parts)


def _details(groups: List[Tuple[SummaryRow, List[Tuple[int, dict]]]]) -> str:
    parts = ["<h2>Details</h2>"]
    for index, (row, members) in enumerate(groups):
        parts.append(
            f'<h3 id="grp-{index}">{_badge(row.verdict, _VERDICT_CLASS[row.verdict])} {_e(row.model)} '
            f'<span class="muted">on {_e(row.device)} / {_e(row.provider)}</span></h3>'
        )
        parts.extend(_record(number, record, index) for number, record in members)
    return "".join(parts)


def _unrecorded(document: Mapping[str, Any]) -> str:
    """Edge tests that recorded no check (a skip, a test that only ran a session), with their outcome."""
    recorded = {r.get("nodeid") for r in document.get("results", ())}
    rows = [
        [_e(nodeid), _outcome_badge(str(outcome))]
        for nodeid, outcome in document.get("outcomes", {}).items()
        if nodeid not in recorded
    ]
    return "<h2>Edge tests without a check record</h2>" + _table(("test", "outcome"), rows) if rows else ""


def _skipped(skips: Sequence[Mapping[str, Any]]) -> str:
    if not skips:
        return ""
    return "<h2>Skipped</h2>" + _table(
        ("count", "reason"), ([_e(s.get("count")), _e(s.get("reason"))] for s in skips), numeric=(0,)
    )


def render_html(document: Mapping[str, Any], rootdir: Optional[Path] = None) -> str:
    """The whole page: inline CSS and SVG, no script, nothing fetched from anywhere."""
    groups = _grouped(document, rootdir)
    body = (
        _header(document)
        + _devices(document.get("devices", {}))
        + _summary(groups)
        + _details(groups)
        + _unrecorded(document)
        + _skipped(document.get("skipped", ()))
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>pytest-edgeort report</title><style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )


def write_html(path: Path, document: Mapping[str, Any], rootdir: Optional[Path] = None) -> None:
    """Write the HTML report via a temp file and rename (never half a page); ReportError (one line
    naming the path, no temp file left behind) when it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, render_html(document, rootdir))
    except OSError as exc:
        raise ReportError(f"edgeort: cannot write the --edge-html {path}: {exc.strerror or exc}") from None
