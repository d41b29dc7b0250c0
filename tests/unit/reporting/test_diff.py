"""What ``diff`` makes of two report documents: op-matrix classes, the latency gate, device pairing, the CLI."""

from __future__ import annotations

import io
import json

import pytest

from pytest_edgeort.__main__ import main as package_main
from pytest_edgeort.reporting.diff import LatencyGate, diff_reports, renamed_nodeid
from pytest_edgeort.reporting.diff_cli import main
from pytest_edgeort.reporting.schema import CheckRecord, ReportDocument


def case(name: str, op_type: str, klass: str, device: str = "local") -> CheckRecord:
    """An op-matrix case's record as the op-matrix check writes it (its ``op_matrix`` field)."""
    return CheckRecord.from_dict(
        {
            "nodeid": f"onnx-node-tests::{name}[{device}-qnn-htp]",
            "check": "op_matrix",
            "device": device,
            "provider": "qnn-htp",
            "model": f"{name}.onnx",
            "op_matrix": {"case": name, "op_type": op_type, "class": klass},
        }
    )


def document(records, outcome: str = "passed") -> ReportDocument:
    return ReportDocument(records=records, outcomes={r.nodeid: outcome for r in records})


def test_op_matrix_class_changes_per_case_and_per_op_type():
    old = document(
        [case("test_conv", "Conv", "ok"), case("test_conv_pads", "Conv", "cpu_fallback"), case("test_erf", "Erf", "ok")]
    )
    new = document(
        [
            case("test_conv", "Conv", "rejected", "board2"),
            case("test_conv_pads", "Conv", "ok", "board2"),
            case("test_erf", "Erf", "ok", "board2"),
        ]
    )
    result = diff_reports(old, new)
    lines = [(c.severity, c.kind, c.subject, c.text) for c in result.changes]
    assert lines == [
        ("worse", "op-matrix", "Conv test_conv on board2/qnn-htp", "ok -> rejected"),
        ("better", "op-matrix", "Conv test_conv_pads on board2/qnn-htp", "cpu_fallback -> ok"),
        ("changed", "op-type", "Conv on board2/qnn-htp", "cpu_fallback 1 -> 0, rejected 0 -> 1"),
    ]
    assert result.worse and result.paired_tests == 3 and result.devices == {"local": "board2"}
    assert result.rows == []  # the cases are summed up per op type, not as one summary row per case
    fewer_passing = document([case("test_conv_pads", "Conv", "cpu_fallback", "board2")])
    per_type = diff_reports(document([case("test_conv_pads", "Conv", "ok")]), fewer_passing).changes
    assert [(c.severity, c.kind) for c in per_type] == [("worse", "op-matrix"), ("worse", "op-type")]


def _latency_row(p50: float, device: str = "local") -> CheckRecord:
    return CheckRecord.from_dict(
        {
            "nodeid": f"s/edge_suite.toml::latency[{device}-qnn-htp]",
            "check": "latency",
            "model": "s",
            "device": device,
            "provider": "qnn-htp",
            "ep": "QNNExecutionProvider",
            "latency": {"p50_ms": p50, "p90_ms": p50 * 2},
        }
    )


def test_latency_gates_only_when_asked_and_on_its_statistic():
    old, new = document([_latency_row(10.0)]), document([_latency_row(11.5)])
    [ungated] = diff_reports(old, new).changes
    assert (ungated.severity, ungated.text) == ("changed", "p50 10.0 -> 11.5 ms (x1.15), p90 20.0 -> 23.0 ms (x1.15)")
    [gated] = diff_reports(old, new, latency_gate=LatencyGate.parse("10%")).changes
    assert gated.severity == "worse" and gated.text.endswith(": p50 beyond --fail-latency 10%")
    assert diff_reports(old, new, latency_gate=LatencyGate.parse("p90:20")).changes[0].severity == "changed"
    assert diff_reports(new, old, latency_gate=LatencyGate.parse("10%")).changes[0].severity == "better"
    for bad, message in (("p99:10%", "the statistic must be p50 or p90"), ("ten%", "expected a percentage >= 0")):
        with pytest.raises(ValueError, match=message):
            LatencyGate.parse(bad)


def test_node_ids_are_renamed_where_the_device_is_a_parameter():
    devices = {"local": "rb3"}
    assert renamed_nodeid("t.py::test_a[local-qnn-htp]", devices, "local", "qnn-htp") == "t.py::test_a[rb3-qnn-htp]"
    assert renamed_nodeid("t.py::test_a[1-local-cpu]", devices) == "t.py::test_a[1-rb3-cpu]"
    assert renamed_nodeid("t.py::test_local[x-local2-cpu]", devices) == "t.py::test_local[x-local2-cpu]"
    assert renamed_nodeid("t.py::test_a", devices) == "t.py::test_a"


def test_several_devices_pair_by_name_unless_matched(tmp_path):
    old = document([_latency_row(1.0, "b1"), _latency_row(1.0, "b2")])
    new = document([_latency_row(1.0, "b1"), _latency_row(1.0, "b3")])
    result = diff_reports(old, new)
    assert (result.paired_tests, result.only_old, result.only_new) == (
        1,
        ["s/edge_suite.toml::latency[b2-qnn-htp]"],
        ["s/edge_suite.toml::latency[b3-qnn-htp]"],
    )
    matched = diff_reports(old, new, {"b1": "b1", "b2": "b3"})
    assert (matched.paired_tests, matched.only_old, matched.only_new) == (2, [], [])


def test_cli_exit_codes_text_and_json(tmp_path, capsys):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(document([case("test_conv", "Conv", "ok")]).to_dict()))
    new.write_text(json.dumps(document([case("test_conv", "Conv", "crashed")], "failed").to_dict()))
    out = io.StringIO()
    assert main([str(old), str(new)], out=out) == 1
    flip = "worse   verdict   onnx-node-tests::test_conv[local-qnn-htp]: passed -> failed"
    assert out.getvalue().splitlines()[2] == flip
    out = io.StringIO()
    assert main(["--json", str(new), str(old)], out=out) == 0
    assert json.loads(out.getvalue())["counts"] == {"worse": 0, "better": 3, "changed": 0}
    assert package_main(["dif"]) == 2
    assert "unknown command 'dif' (did you mean 'diff'?)" in capsys.readouterr().err


def test_a_json_file_that_is_no_report_is_refused_not_read_as_empty(tmp_path):
    """``diff`` gates upgrades: a wrong file (another tool's JSON) read as an empty report said "nothing worse"."""
    report, other = tmp_path / "edge.json", tmp_path / "other.json"
    report.write_text(json.dumps(document([case("test_conv", "Conv", "ok")]).to_dict()))
    other.write_text(json.dumps({"tests": [{"name": "test_conv", "outcome": "failed"}]}))
    err = io.StringIO()
    assert main([str(report), str(other)], out=io.StringIO(), err=err) == 2
    refused = f'NEW {other}: not a pytest-edgeort report (no "schema"; --edge-report writes one)'
    assert err.getvalue() == f"edgeort diff: {refused}\n"


def _sample(label: str, max_lsb: float) -> CheckRecord:
    """One comparison of a data-set loop, named by ``edge_compare(..., label=)``."""
    output = {"name": "y", "max_lsb": max_lsb, "max_abs": max_lsb / 10}
    comparison = {"passed": True, "outputs": [output]}
    return CheckRecord(
        nodeid="t.py::test_dataset[local-qnn-htp]", check="conformance", label=label, comparison=comparison
    )


def test_a_data_sets_comparisons_pair_by_label_whatever_their_order():
    """A data set read in another order (a directory listing, a shuffled loader) still pairs each sample with
    itself; by order, OLD's cat.png would pair with NEW's dog.png."""
    old = document([_sample("cat.png", 1.0), _sample("dog.png", 4.0)])
    new = document([_sample("dog.png", 4.0), _sample("cat.png", 4.0)])
    changes = [c for c in diff_reports(old, new).changes if c.kind == "metrics"]
    assert [(c.subject, c.text) for c in changes] == [
        ("t.py::test_dataset[local-qnn-htp] (cat.png)", "output y: max LSB 1 -> 4, max |err| 0.1 -> 0.4")
    ]


def test_a_new_run_that_cannot_stand_for_the_old_one_is_worse():
    """The gate must not say "nothing worse" for a NEW report of a cancelled run, of other tests, or with a failure
    OLD had no test for (a suite whose file broke is a new ``::suite`` item)."""
    old = document([case("test_conv", "Conv", "ok"), case("test_relu", "Relu", "ok")])
    cancelled = document([case("test_conv", "Conv", "ok")])
    cancelled.interrupted = True
    other = document([case("test_add", "Add", "ok")])
    broken = ReportDocument(records=old.records, outcomes={**old.outcomes, "s/edge_suite.toml::suite": "failed"})

    def worse(new: ReportDocument) -> list:
        return [(c.kind, c.subject, c.text) for c in diff_reports(old, new).changes if c.severity == "worse"]

    assert worse(cancelled) == [("run", "NEW", "the run was interrupted: 1 of OLD's 2 tests are not in it")]
    assert worse(other) == [
        ("run", "NEW", "no test of OLD is in it (2 of OLD's 2 tests are not in it): not a run of the same tests")
    ]
    assert worse(broken) == [("verdict", "s/edge_suite.toml::suite", "failed (not in OLD)")]
    assert worse(document(old.records[:1])) == []  # a subset that ran whole: listed as only in OLD, not worse
