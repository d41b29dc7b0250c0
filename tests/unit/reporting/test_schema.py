"""The typed records: their JSON form round-trips, and every kind a run produces goes through every reader."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List

import pytest

from pytest_edgeort.junit import record_error, record_identity, record_latency, record_metrics, record_provenance
from pytest_edgeort.reporting.html import render_html
from pytest_edgeort.reporting.jsonreport import build_report
from pytest_edgeort.reporting.schema import SCHEMA_VERSION, SESSION_FACTS, CheckRecord, ReportDocument
from pytest_edgeort.reporting.summary import build_rows, format_rows, fp16_notes
from tests.support.htmlpage import parse, summary_rows

ROOT = Path("/repo")
FACTS = {
    "device": "local",
    "provider": "qnn-htp",
    "ep": "QNNExecutionProvider",
    "ep_api": "plugin",
    "provider_options": {"backend_type": "htp"},
    "cpu_fallback": True,
    "offload_graph_io_quantization": "1",
    "model": "m.onnx",
    "model_path": "/repo/models/m.onnx",
    "model_sha256": "ab" * 32,
    "platform": "Linux-x86_64",
    "soc": None,
    "onnxruntime": "1.32.0",
    "qnn_sdk": "2.51.0",
    "qnn_ep": "2.7.0",
    "npu_coverage": 0.92,
    "placement": {"QNNExecutionProvider": {"Conv": 2}, "CPUExecutionProvider": {"QuantizeLinear": 1}},
}
OUTPUT = {
    "name": "y",
    "passed": True,
    "actual_shape": [1, 10],
    "actual_dtype": "uint8",
    "max_abs": 0.01,
    "max_lsb": 1.0,
    "scale": 0.0057,
    "snr_db": "inf",
    "topk_agreement": 1.0,
    "histogram": [["0", 9], ["1", 1]],
    "worst": [{"index": [0, 3], "actual": 0.1, "expected": 0.09, "abs_err": 0.01, "err_lsb": 1.0}],
    "tolerance": {"lsb": 2.0},
}
FAILED_OUTPUT = {**OUTPUT, "passed": False, "max_lsb": 29.0, "snr_db": 11.5, "failures": ["10 of 10 elements ..."]}
SUITE = "/repo/suites/digits/edge_suite.toml"


def _comparison(*outputs: Dict) -> Dict:
    return {"passed": all(o["passed"] for o in outputs), "missing": [], "extra": [], "outputs": list(outputs)}


def _record_kinds() -> Dict[str, CheckRecord]:
    """One record of every kind a run produces (as its writer builds it), keyed by the outcome of its test."""
    at = {"started": 1796186811.5, "finished": 1796186811.6}
    return {
        "passed": CheckRecord.from_session(
            "t.py::test_ok[local-qnn-htp]",
            "conformance",
            FACTS,
            reference="cpu reference",
            comparison=_comparison(OUTPUT),
        ),
        "failed": CheckRecord.from_session(
            "t.py::test_bad[local-qnn-htp]",
            "conformance",
            FACTS,
            comparison=_comparison(FAILED_OUTPUT),
            phase="call",
            error="m.onnx on local/qnn-htp vs cpu reference: 1 of 1 outputs failed",
            **at,
        ),
        "error": CheckRecord(  # failed at setup, before any session: what the relay knows
            nodeid="t.py::test_setup[local-qnn-htp]",
            check="test",
            passed=False,
            device="local",
            provider="qnn-htp",
            model="missing.onnx",
            model_path="/repo/models/missing.onnx",
            phase="setup",
            error="/repo/models/missing.onnx: no such model file",
        ),
        "skipped": CheckRecord.from_session(  # recorded, then skipped (an update that wrote a golden)
            "suites/digits/edge_suite.toml::golden[local-qnn-htp]",
            "golden",
            FACTS,
            suite=SUITE,
            model="digits",
            passed=True,
            golden="/repo/suites/digits/golden/qnn-htp.npz",
            golden_update=["y: new"],
            golden_provenance={"onnxruntime": "1.31.1", "written": "2026-11-21"},
        ),
        "xfailed": CheckRecord(  # a known finding: no CPU fallback refused, nodes by op type
            nodeid="suites/digits/edge_suite.toml::no_cpu_fallback[local-qnn-htp]",
            check="no_cpu_fallback",
            passed=False,
            device="local",
            provider="qnn-htp",
            model="digits",
            model_path="/repo/suites/digits/m.onnx",
            suite=SUITE,
            error="m.onnx on local/qnn-htp does not run fully on QNNExecutionProvider: Det x1 (det_node)",
            cpu_nodes=[{"op_type": "Det", "count": 1, "nodes": ["det_node"]}],
        ),
        "xpassed": CheckRecord.from_session(
            "suites/digits/edge_suite.toml::latency[local-qnn-htp]",
            "latency",
            FACTS,
            suite=SUITE,
            model="digits",
            passed=True,
            latency={"p50_ms": 0.79, "p90_ms": 0.94, "mean_ms": 0.8, "min_ms": 0.57, "runs": 20},
            speedup_vs_cpu=0.11,
            latency_gate_ms=10.0,
        ),
        "malformed": CheckRecord(  # a suite file that does not validate: no device, provider or model
            nodeid="broken/edge_suite.toml::suite",
            check="suite",
            passed=False,
            suite="/repo/broken/edge_suite.toml",
            phase="call",
            error="/repo/broken/edge_suite.toml: unknown key 'provider' (did you mean 'providers'?)",
        ),
        "interrupted": CheckRecord.from_session(  # a check that recorded, then the run was stopped
            "t.py::test_a_runs[local-qnn-htp]", "conformance", FACTS, comparison=_comparison(OUTPUT), started=1.0
        ),
    }


OUTCOMES = {
    "passed": "passed",
    "failed": "failed",
    "error": "error",
    "skipped": "skipped",
    "xfailed": "xfailed",
    "xpassed": "xpassed",
    "malformed": "failed",
}


@pytest.mark.parametrize("kind", sorted(_record_kinds()))
def test_a_record_round_trips_through_its_json_form(kind):
    record = _record_kinds()[kind]
    data = json.loads(json.dumps(record.to_dict()))
    assert CheckRecord.from_dict(data) == record
    assert CheckRecord.from_dict(data).to_dict() == data
    if record.has_session:  # a session's record names every session fact, null where unknown
        assert set(SESSION_FACTS) <= set(data) and data["soc"] is None
    else:
        assert None not in data.values()


def test_keys_of_a_newer_writer_survive_a_round_trip():
    data = {"nodeid": "a", "check": "op", "op_class": "supported", "passed": True}
    record = CheckRecord.from_dict(data)
    assert record.extra == {"op_class": "supported"} and record.to_dict() == data


def test_the_document_round_trips_and_refuses_a_newer_version():
    records = list(_record_kinds().values())
    outcomes = {r.nodeid: OUTCOMES.get(kind, "passed") for kind, r in _record_kinds().items()}
    document = build_report(records, {"local": {"machine": "x86_64"}}, 7, outcomes, [("no cuda", 2)], 1)
    data = json.loads(json.dumps(document.to_dict()))
    assert ReportDocument.from_dict(data) == document
    assert [r["outcome"] for r in data["results"]][:2] == ["passed", "failed"]
    with pytest.raises(ValueError, match="^not a pytest-edgeort/report report of version <= 1: .*version 2$"):
        ReportDocument.from_dict({**data, "version": SCHEMA_VERSION + 1})


def _junit(record: CheckRecord) -> List:
    item = SimpleNamespace(user_properties=[])
    record_identity(item, (record.device or "-", record.provider or "-"))
    record_provenance(item, record)
    record_metrics(item, record)
    record_latency(item, record)
    if record.error:
        record_error(item, record.error)
    return item.user_properties


@pytest.mark.parametrize("interrupted", [False, True])
def test_every_record_kind_goes_through_every_reader(interrupted):
    kinds = _record_kinds()
    if not interrupted:
        del kinds["interrupted"]
    outcomes = {r.nodeid: OUTCOMES.get(kind, "passed") for kind, r in kinds.items()}
    outcomes["t.py::test_skipped_before_any_check[local-cuda]"] = "skipped"
    exitstatus = 2 if interrupted else 1
    document = build_report(kinds.values(), {"local": {"machine": "x86_64"}}, 7, outcomes, [("no cuda", 1)], exitstatus)
    # JSON: written and loaded back as the report's readers load it
    loaded = ReportDocument.from_dict(json.loads(json.dumps(document.to_dict())))
    assert loaded.interrupted is interrupted and len(loaded.records) == len(kinds)
    # terminal summary: the rows of records that name a model, the malformed suite has none
    rows = build_rows(loaded.records, loaded.outcomes, ROOT)
    assert [(r.model, r.verdict) for r in rows] == [
        ("models/m.onnx", "FAIL"),
        ("models/missing.onnx", "FAIL"),
        ("suites/digits", "XFAIL"),
    ]
    assert len(format_rows(rows)) >= len(rows) + 2
    assert fp16_notes(loaded.records, loaded.devices, ROOT) == []  # u8 outputs: no float-model note
    # JUnit properties
    props = {kind: dict(_junit(record)) for kind, record in zip(kinds, loaded.records)}
    assert props["failed"]["edge_y_max_lsb"] == "29" and props["passed"]["edge_y_snr_db"] == "inf"
    assert props["xpassed"]["edge_latency_p90_ms"] == "0.94"
    assert props["malformed"]["edge_device"] == "-" and "unknown key 'provider'" in props["malformed"]["edge_error"]
    assert props["error"]["edge_model"] == "/repo/models/missing.onnx"
    # HTML: every record has its section, the malformed suite a row of its own
    page = parse(render_html(loaded, ROOT))
    assert len(list(page.iter("section"))) == len(kinds)
    cells = [[c.all_text() for c in row.children][:4] for row in summary_rows(page)]
    assert ["broken", "-", "-", "FAIL 0/1"] in cells
    assert ("INTERRUPTED" in page.all_text()) is interrupted
