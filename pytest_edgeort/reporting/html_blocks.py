"""Building blocks of the HTML report: escaping, badges, tables, and the sections of one check record."""

from __future__ import annotations

import datetime
from html import escape
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Tuple

from .schema import CheckRecord
from .summary import format_ms, format_number
from .svg import histogram_svg, path_svg

OUTCOME_CLASS = {
    "failed": "fail",
    "error": "fail",
    "passed": "pass",
    "xfailed": "xfail",
    "xpassed": "xfail",
    "skipped": "skip",
}
_RECORD_FACTS = (
    ("nodeid", "test"),
    ("label", "label"),
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


def e(value: Any) -> str:
    """Any value as escaped HTML text (model names, paths and errors are user data)."""
    return escape(str(value), quote=True)


def badge(text: str, css: str) -> str:
    return f'<span class="badge {css}">{e(text)}</span>'


def outcome_badge(outcome: str) -> str:
    return badge(outcome.upper(), OUTCOME_CLASS.get(outcome, "other"))


def passed_in_failed_test(record: CheckRecord) -> bool:
    """A check that passed in a test that failed on another one (a data-set loop failing on one sample)."""
    return record.check_passed is True and OUTCOME_CLASS.get(record.outcome or "") == "fail"


def check_badge(record: CheckRecord) -> str:
    """The record's outcome, or PASSED for a check that passed in a test that failed on another one."""
    return outcome_badge("passed" if passed_in_failed_test(record) else record.outcome or "unknown")


def _value(value: Any) -> str:
    """A fact for a table cell: mappings as ``k=v`` pairs, lists comma-separated, floats shortened."""
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_value(v)}" for k, v in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, float):
        return format(value, ".4g")
    return "-" if value in (None, "") else str(value)


def html_table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    numeric: Sequence[int] = (),
    css: Optional[Mapping[int, str]] = None,
) -> str:
    """A table from already-escaped cell HTML; columns in ``numeric`` are right-aligned, ``css`` gives
    other columns a class."""
    classes = {**{i: "n" for i in numeric}, **(css or {})}
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{classes[i]}">{c}</td>' if i in classes else f"<td>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def facts_table(pairs: Iterable[Tuple[str, Any]]) -> str:
    """A two-column table of the facts that are present, names in the first column."""
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(_value(v))}</td></tr>" for k, v in pairs if v not in (None, "", [], {}))
    return f'<table class="facts"><tbody>{rows}</tbody></table>'


def when(epoch: Optional[float]) -> str:
    if epoch is None:
        return "-"
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat(timespec="seconds")


def _metrics(outputs: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for out in outputs:
        verdict = badge("PASS", "pass") if out.get("passed") else badge("FAIL", "fail")
        shape = "x".join(str(d) for d in out.get("actual_shape", ())) or "scalar"
        topk = out.get("topk_agreement")
        rows.append(
            [
                e(out.get("name")),
                e(shape),
                e(out.get("actual_dtype")),
                verdict,
                *(e(_value(out.get(key))) for key in ("max_abs", "mean_abs", "max_lsb", "scale")),
                e(_value(None if out.get("frac_within") is None else 100 * out["frac_within"])),
                e(_value(out.get("snr_db"))),
                e(_value(out.get("cosine"))),
                e(_value(None if topk is None else 100 * topk)),
                e(_value(out.get("gain"))),
            ]
        )
    return html_table(
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
            parts.append(f"<p>{key} outputs: {e(', '.join(map(str, comparison[key])))}</p>")
    parts.extend(_output_details(out) for out in comparison.get("outputs", ()))
    return "".join(parts)


def _output_details(out: Mapping[str, Any]) -> str:
    name = e(out.get("name"))
    parts = [f"<h4>output {name}</h4>"]
    if out.get("failures"):
        parts.append("<ul>" + "".join(f"<li>{e(f)}</li>" for f in out["failures"]) + "</ul>")
    tolerance = {k: v for k, v in (out.get("tolerance") or {}).items() if v is not None}
    parts.append(
        facts_table(
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
                e(tuple(w.get("index", ()))),
                *(e(_value(w.get(k))) for k in ("actual", "expected", "abs_err", "err_lsb")),
            ]
            for w in out["worst"]
        )
        parts.append(
            "<p>worst elements</p>"
            + html_table(("index", "actual", "expected", "|err|", "err LSB"), rows, numeric=(1, 2, 3, 4))
        )
    if out.get("histogram"):
        parts.append(_histogram(out["histogram"], str(out.get("histogram_unit") or "LSB"), tolerance))
    return "".join(parts)


def _histogram(bins: Sequence[Sequence[Any]], unit: str, tolerance: Mapping[str, Any]) -> str:
    """The plot with its caption; the limit is the ``lsb`` tolerance (or 1 for a histogram in ``atol``)."""
    limit = tolerance.get("lsb") if unit == "LSB" else 1.0 if unit == "atol" else None
    legend = f" (red: bins wholly above the tolerance of {_value(limit)} {unit})" if limit is not None else ""
    return f"<p>error histogram in {e(unit)}{e(legend)}</p>" + histogram_svg(bins, unit, limit)


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
            cells.append(f'<span class="cpu">{e(count)} on CPU</span>' if on_cpu else e(count or ""))
        rows.append([e(op), *cells])
    return html_table(("op type", *eps), rows, numeric=tuple(range(1, len(eps) + 1)))


def _latency(record: CheckRecord) -> str:
    """The deciding measurement, the gates, every measurement taken, and whether it was simulated."""
    latency = record.latency or {}
    facts = [
        ("p50 ms", format_ms(latency.get("p50_ms"))),
        ("p90 ms", format_ms(latency.get("p90_ms"))),
        ("mean ms", format_ms(latency.get("mean_ms"))),
        ("min ms", format_ms(latency.get("min_ms"))),
        ("runs", latency.get("runs")),
        *((f"gate {key[len('latency_') :]}", ms) for key, ms in (record.latency_gates or {}).items()),
        ("speed-up vs CPU", format_number(record.speedup_vs_cpu, ".2g")),
        ("decided by", record.latency_decided_by),
    ]
    if record.latency_simulated:
        facts.insert(0, ("simulated", "yes: QNN's HTP simulator on x86-64, not a board's latency"))
    table = facts_table(facts)
    attempts = record.latency_attempts or []
    if len(attempts) > 1:
        rows = (
            [
                e(str(n + 1)),
                e(format_ms(a.get("p50_ms"))),
                e(format_ms(a.get("p90_ms"))),
                e(a.get("runs")),
                e("held" if a.get("passed") else "broken"),
            ]
            for n, a in enumerate(attempts)
        )
        table += html_table(("measurement", "p50 ms", "p90 ms", "runs", "gates"), rows, numeric=(0, 1, 2, 3))
    return table


def _golden(record: CheckRecord) -> str:
    """Where the goldens came from; facts that differ from this run are flagged."""
    provenance = record.golden_provenance or {}
    now_facts = record.to_dict()
    rows = []
    for key, value in sorted(provenance.items()):
        if key == "placement":
            continue
        now = now_facts.get(key)
        changed = now is not None and key not in ("model", "model_path", "written") and now != value
        rows.append([e(key), e(_value(value)), e(_value(now)) + (" <strong>(changed)</strong>" if changed else "")])
    return "<h4>golden provenance</h4>" + html_table(("fact", "golden written with", "this run"), rows)


def _diagnosis(diagnosis: Mapping[str, Any]) -> str:
    """The diagnosis's line, its path as error vs depth, and every probe."""
    parts = [f"<h4>layer-wise diagnosis</h4><p>{e(diagnosis.get('message'))}</p>"]
    steps = list(diagnosis.get("path") or ())
    if steps:
        unit = next((str(s.get("unit")) for s in steps if s.get("unit")), "")
        parts.append(path_svg(steps, int(diagnosis.get("candidates") or len(steps)), unit or "abs"))
        rows = (
            [
                e(n + 1),
                e(s.get("index")),
                e(s.get("tensor")),
                e(f"{s.get('node')} ({s.get('op_type')})"),
                e(s.get("outcome")),
                e(_value(s.get("error"))),
                e(f"{float(s.get('seconds') or 0):.2f}"),
            ]
            for n, s in enumerate(steps)
        )
        headers = ("probe", "position", "tensor", "node", "outcome", f"max error {unit}".strip(), "s")
        parts.append(html_table(headers, rows, numeric=(0, 1, 5, 6)))
    return "".join(parts)


def _profile(profile: Mapping[str, Any]) -> str:
    """QNN's per-op profile: cycle shares per ONNX node and op type, coverage, links to the raw files."""
    parts = ["<h4>per-op profile (QNN cycles)</h4>"]
    if profile.get("note"):
        parts.append(f"<p><strong>{e(profile['note'])}</strong></p>")
    parts.append(
        f"<p>{e(profile.get('covered'))} of {e(profile.get('compute_nodes'))} compute nodes profiled, "
        f"{e(profile.get('runs'))} runs</p>"
    )
    share = "share of cycles"
    nodes = ([e(n.get("node")), e(n.get("op_type")), e(f"{100 * float(n['share']):.1f} %")] for n in profile["nodes"])
    parts.append(html_table(("ONNX node", "op type", share), nodes, numeric=(2,)))
    types = ([e(t.get("op_type")), e(f"{100 * float(t['share']):.1f} %")] for t in profile["op_types"])
    parts.append(html_table(("op type", share), types, numeric=(1,)))
    links = "".join(f'<li><a href="{e(Path(f).as_uri())}">{e(Path(f).name)}</a></li>' for f in profile.get("files", ()))
    parts.append(f"<p>raw files:</p><ul>{links}</ul>")
    return "".join(parts)


def record_html(number: int, record: CheckRecord, row_index: int) -> str:
    passed_here = passed_in_failed_test(record)
    failed = OUTCOME_CLASS.get(record.outcome or "") == "fail" and not passed_here
    note = (f" {record.label}" if record.label else "") + (" (its test failed on another check)" if passed_here else "")
    parts = [
        f'<section class="record{" failed" if failed else ""}" id="rec-{number}">',
        (
            f"<h3>{check_badge(record)} {e(record.check or 'test')} "
            f'<span class="muted">{e(record.nodeid or "")}{note}</span></h3>'
        ),
        f'<p><a href="#row-{row_index}">back to the summary</a></p>',
    ]
    if record.error:
        parts.append(f'<pre class="error">{e(record.error)}</pre>')
    duration = None
    if isinstance(record.started, (int, float)) and isinstance(record.finished, (int, float)):
        duration = f"{record.finished - record.started:.3f} s"
    parts.append(
        facts_table(
            [(label, getattr(record, key)) for key, label in _RECORD_FACTS]
            + [("started", when(record.started)), ("duration", duration)]
        )
    )
    parts.append(_comparison(record.comparison or {}))
    if record.diagnosis:
        parts.append(_diagnosis(record.diagnosis))
    if record.cpu_nodes:
        rows = ([e(n.get("op_type")), e(n.get("count")), e(", ".join(n.get("nodes", ())))] for n in record.cpu_nodes)
        parts.append(
            "<h4>nodes that would run on CPU</h4>" + html_table(("op type", "count", "nodes"), rows, numeric=(1,))
        )
    if record.placement:
        coverage = record.npu_coverage
        if isinstance(coverage, (int, float)):
            parts.append(f"<h4>placement per op type</h4><p>NPU node coverage {100 * coverage:.1f} %</p>")
        else:
            parts.append("<h4>placement per op type</h4>")
        parts.append(_placement(record.placement))
    if record.latency:
        title = "simulated latency" if record.latency_simulated else "latency"
        parts.append(f"<h4>{title}</h4>" + _latency(record))
    if record.profile:
        parts.append(_profile(record.profile))
    if record.golden_provenance:
        parts.append(_golden(record))
    if record.golden_update:
        parts.append(
            "<h4>golden update</h4><ul>" + "".join(f"<li>{e(line)}</li>" for line in record.golden_update) + "</ul>"
        )
    parts.append("</section>")
    return "".join(parts)
