"""What CI reads: the terminal summary table, skip counts, the JSON report and JUnit properties."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET

import pytest

from tests.support.runs import require_qnn

require_qnn()

TESTS = """
import pytest

@pytest.mark.edge_model(r"{qdq}")
@pytest.mark.edge_providers("qnn-htp", "cuda")
def test_matches_cpu(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))

@pytest.mark.edge_model(r"{det}")
@pytest.mark.edge_providers("qnn-htp")
def test_runs_fully_on_npu(edge_assert_no_fallback):
    edge_assert_no_fallback()
"""


@pytest.fixture
def result(pytester, model_dir):
    pytester.makepyfile(TESTS.format(qdq=model_dir / "conv_matmul_qdq.onnx", det=model_dir / "det.onnx"))
    return pytester.runpytest("-p", "no:cacheprovider", "--edge-report=out/report.json", "--junitxml=junit.xml")


def test_summary_rows_failures_first_and_skip_reasons_counted(result):
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*edgeort summary*",
            "model*device*provider*verdict*max LSB, output*SNRq dB*top-k %*NPU %*p50 ms*p90 ms*speedup",
            "*/det.onnx*local*qnn-htp*FAIL 0/1*",
            "*/conv_matmul_qdq.onnx*local*qnn-htp*PASS 1/1*",
            "NPU % *: with CPU fallback allowed*",
            "skipped 1x: device 'local' has no provider 'cuda'*",
        ]
    )
    row = next(line for line in result.stdout.lines if "/conv_matmul_qdq.onnx " in line)
    max_lsb, unit, output, snr, _, coverage = row.split()[5:11]
    assert 0 <= int(max_lsb) <= 5 and (unit, output) == ("u8", "y")
    assert float(snr) > 15 and 50 < int(coverage.rstrip("*")) <= 100


def test_summary_rows_are_keyed_by_path_and_count_checks():
    """528 models all called model.onnx are 528 rows; a passing test does not hide under a failing one."""
    from pathlib import Path

    from pytest_edgeort.reporting.schema import CheckRecord
    from pytest_edgeort.reporting.summary import build_rows, format_rows

    def record(nodeid, folder, snr):
        return CheckRecord.from_dict(
            {
                "nodeid": nodeid,
                "check": "conformance",
                "model": "model.onnx",
                "device": "local",
                "provider": "qnn-htp",
                "model_path": f"/repo/models/{folder}/model.onnx",
                "ep": "QNNExecutionProvider",
                "comparison": {"outputs": [{"max_lsb": 3, "snr_db": snr, "topk_agreement": None}]},
            }
        )

    records = [record("t::a", "det", "-inf"), record("t::b", "det", 40.0), record("t::c", "cls", 30.0)]
    rows = build_rows(records, {"t::a": "failed", "t::b": "passed", "t::c": "passed"}, Path("/repo"))
    assert [(r.model, r.verdict, r.checks) for r in rows] == [
        ("models/det/model.onnx", "FAIL", "1/2"),
        ("models/cls/model.onnx", "PASS", "1/1"),
    ]
    assert " -inf " in format_rows(rows)[2]  # a FAIL row must not look perfect


def test_json_report_is_versioned_and_has_provenance(result, pytester):
    report = json.loads((pytester.path / "out" / "report.json").read_text())
    assert report["schema"] == "pytest-edgeort/report" and report["version"] == 1
    assert set(report) == {
        "schema",
        "version",
        "created",
        "exitstatus",
        "interrupted",
        "seed",
        "devices",
        "outcomes",
        "skipped",
        "results",
    }  # the keys the README documents
    for record in report["results"]:
        assert {"nodeid", "check", "outcome", "started", "finished", "device", "provider", "model"} <= set(record)
    assert report["devices"]["local"]["board_lock"] is None  # local takes no board lock unless asked
    assert report["devices"]["local"]["onnxruntime"]
    by_check = {r["check"]: r for r in report["results"]}
    conformance = by_check["conformance"]
    assert conformance["outcome"] == "passed" and conformance["provider"] == "qnn-htp"
    assert len(conformance["model_sha256"]) == 64 and conformance["qnn_sdk"]
    assert conformance["placement"]["QNNExecutionProvider"]["Conv"] == 2
    # what makes a CPU u8 result host-dependent: the ISA of the u8 kernels, graph optimization, QDQ fusion
    assert conformance["graph_optimization"] == "ORT_ENABLE_ALL" and conformance["qdq_fusion"] is True
    flags = open("/proc/cpuinfo").read()
    assert ("avx512_vnni" in conformance["u8_isa"]) == (" avx512_vnni" in flags)
    assert ("avx2" in conformance["u8_isa"]) == (" avx2" in flags)
    assert report["devices"]["local"]["u8_isa"] == conformance["u8_isa"]  # what the summary's note compares
    assert conformance["reference_device"] == "local"
    output = conformance["comparison"]["outputs"][0]
    assert output["name"] == "y" and output["tolerance"]["min_snr_db"] == 10
    fallback = by_check["no_cpu_fallback"]
    assert fallback["outcome"] == "failed" and "Det x1 (det_node)" in fallback["error"]
    assert fallback["cpu_nodes"] == [{"op_type": "Det", "count": 1, "nodes": ["det_node"]}]  # as data, for CI
    assert not list((pytester.path / "out").glob(".*.tmp"))  # atomic write leaves no temp file
    assert report["exitstatus"] == 1 and report["interrupted"] is False
    assert report["skipped"] == [{"reason": report["skipped"][0]["reason"], "count": 1}]
    assert "has no provider 'cuda'" in report["skipped"][0]["reason"]
    assert conformance["started"] <= conformance["finished"] <= fallback["started"] + 60


def test_junit_properties_carry_device_versions_and_metrics(result, pytester):
    tree = ET.parse(pytester.path / "junit.xml")
    case = next(c for c in tree.iter("testcase") if c.get("name") == "test_matches_cpu[local-qnn-htp]")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["edge_device"] == "local" and props["edge_provider"] == "qnn-htp"
    assert len(props["edge_model_sha256"]) == 64 and props["edge_onnxruntime"] and props["edge_qnn_sdk"]
    assert float(props["edge_y_snr_db"]) > 15


SAMPLES = """
import numpy as np
import pytest

def feed(seed):
    return {{"x": np.random.default_rng(seed).random((1, 3, 16, 16), dtype=np.float32)}}

@pytest.mark.edge_model(r"{qdq}")
@pytest.mark.edge_providers("qnn-htp")
@pytest.mark.parametrize("seed", range(3))
def test_passes(seed, edge_session, edge_reference, edge_compare):
    edge_compare(edge_session.run(feed(seed)), edge_reference.run(feed(seed)))

@pytest.mark.edge_model(r"{qdq}")
@pytest.mark.edge_providers("qnn-htp")
def test_shifted(edge_session, edge_reference, edge_compare):
    edge_compare({{"y": edge_session.run(feed(7))["y"] + 0.2}}, edge_reference.run(feed(7)))
"""

#: what travels on each test's report (pytest-xdist and report-log plugins see it), one record a line
CAPTURE = """
import json
import os

def pytest_runtest_logreport(report):
    for record in (getattr(report, "edgeort", None) or {}).get("records", ()):
        with open(os.environ["RECORDS_OUT"], "a") as out:
            out.write(json.dumps(record) + "\\n")
"""


def test_a_passing_comparisons_record_keeps_every_statistic_only_for_a_report_file(pytester, model_dir, monkeypatch):
    """Without ``--edge-report``/``--edge-html`` nothing shows a passing comparison's worst elements, histogram or
    rules: its record holds what the terminal summary and the JUnit metrics read, and they come out the same; a
    failing comparison's record keeps everything."""
    from pytest_edgeort.compare.result import SUMMARY_FIELDS

    pytester.makepyfile(SAMPLES.format(qdq=model_dir / "conv_matmul_qdq.onnx"))
    pytester.makeconftest(CAPTURE)
    runs = {}
    for name, extra in (("plain", []), ("report", ["--edge-report=report.json"])):
        monkeypatch.setenv("RECORDS_OUT", str(pytester.path / f"{name}.jsonl"))
        result = pytester.runpytest("-p", "no:cacheprovider", f"--junitxml={name}.xml", *extra)
        result.assert_outcomes(passed=3, failed=1)
        lines = (pytester.path / f"{name}.jsonl").read_text().splitlines()
        records = {r["nodeid"]: r["comparison"]["outputs"][0] for r in map(json.loads, lines)}
        row = next(line for line in result.outlines if "/conv_matmul_qdq.onnx " in line)
        cases = ET.parse(pytester.path / f"{name}.xml").iter("testcase")
        metrics = {
            c.get("name"): [(p.get("name"), p.get("value")) for p in c.iter("property") if "_y_" in p.get("name")]
            for c in cases
        }
        runs[name] = records, row, metrics
    (plain, plain_row, plain_metrics), (full, full_row, full_metrics) = runs["plain"], runs["report"]
    passing = [nodeid for nodeid in plain if "test_passes" in nodeid]
    assert len(passing) == 3 and all(set(plain[n]) == {*SUMMARY_FIELDS, "precision"} for n in passing)
    assert all({"worst", "histogram", "tolerance", "bias", "smallest_passing"} <= set(full[n]) for n in passing)
    assert all(plain[n] == {key: full[n][key] for key in plain[n]} for n in passing)
    shifted = next(nodeid for nodeid in plain if "test_shifted" in nodeid)
    assert plain[shifted] == full[shifted] and plain[shifted]["worst"] and plain[shifted]["histogram"]
    assert plain_row == full_row and "FAIL 3/4" in plain_row
    assert plain_metrics == full_metrics and len(plain_metrics) == 4 and all(plain_metrics.values())


INTERRUPTED = """
import os
import signal
import pytest

@pytest.mark.edge_model(r"{qdq}")
@pytest.mark.edge_providers("qnn-htp")
def test_a_matches_cpu(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))

def test_b_ctrl_c():
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even where CI ignores SIGINT
    os.kill(os.getpid(), signal.SIGINT)

@pytest.mark.edge_model(r"{qdq}")
@pytest.mark.edge_providers("cpu")
def test_c_never_runs(edge_session):
    pass
"""


def test_json_report_is_written_when_the_run_is_interrupted(pytester, model_dir):
    pytester.makepyfile(INTERRUPTED.format(qdq=model_dir / "conv_matmul_qdq.onnx"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--edge-report=report.json", timeout=120)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["interrupted"] is True and report["exitstatus"] == 2
    assert [(r["check"], r["outcome"]) for r in report["results"]] == [("conformance", "passed")]
    assert list(report["outcomes"]) == [
        "test_json_report_is_written_when_the_run_is_interrupted.py::test_a_matches_cpu[local-qnn-htp]"
    ]


def test_every_edge_test_carries_device_provider_and_failure_reason_in_junit(pytester, model_dir):
    pytester.makepyfile(f'''
import pytest

@pytest.mark.edge_model(r"{model_dir / "no_such_model.onnx"}")
@pytest.mark.edge_providers("cpu", "cuda")
def test_setup_fails(edge_session):
    pass
''')
    pytester.runpytest("-p", "no:cacheprovider", "--junitxml=junit.xml").assert_outcomes(errors=1, skipped=1)
    cases = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in ET.parse(pytester.path / "junit.xml").iter("testcase")
    }
    failed, skipped = cases["test_setup_fails[local-cpu]"], cases["test_setup_fails[local-cuda]"]
    assert failed["edge_device"] == "local" and failed["edge_provider"] == "cpu"
    assert "no_such_model.onnx" in failed["edge_error"]
    assert (skipped["edge_device"], skipped["edge_provider"]) == ("local", "cuda")


def test_tests_without_a_session_carry_the_model_path_hash_and_versions(pytester, model_dir):
    qdq = model_dir / "conv_matmul_qdq.onnx"
    pytester.makepyfile(f'''
import pytest

@pytest.mark.edge_model(r"{qdq}")
@pytest.mark.edge_providers("cuda")
def test_a_skipped_before_a_session(edge_session):
    pass

@pytest.mark.edge_model(r"{qdq}")
@pytest.mark.edge_providers("cpu")
def test_b_fails_before_a_session(edge_device):
    raise RuntimeError("the test body broke")
''')
    pytester.runpytest("-p", "no:cacheprovider", "--junitxml=junit.xml", "--edge-report=report.json").assert_outcomes(
        failed=1, skipped=1
    )
    cases = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in ET.parse(pytester.path / "junit.xml").iter("testcase")
    }
    sha = hashlib.sha256(qdq.read_bytes()).hexdigest()
    skipped, failed = (
        cases["test_a_skipped_before_a_session[local-cuda]"],
        cases["test_b_fails_before_a_session[local-cpu]"],
    )
    assert skipped["edge_model"] == str(qdq) and skipped["edge_model_sha256"] == sha
    assert skipped["edge_onnxruntime"] and skipped["edge_platform"]  # the device was reached for its providers
    assert failed["edge_model_sha256"] == sha and "the test body broke" in failed["edge_error"]
    record = json.loads((pytester.path / "report.json").read_text())["results"][0]
    assert (record["check"], record["phase"], record["model_path"], record["model_sha256"]) == (
        "test",
        "call",
        str(qdq),
        sha,
    )


def test_a_float_model_passing_on_the_simulators_qnn_htp_points_at_fp16(pytester, model_dir):
    """The x86-64 simulator computes float in fp32 on qnn-htp, real HTP in fp16: a pass needs the hint."""
    pytester.makepyfile(f'''
import pytest

@pytest.mark.edge_model(r"{model_dir / "conv_matmul.onnx"}")
@pytest.mark.edge_providers("qnn-htp")
def test_float(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))

@pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}")
@pytest.mark.edge_providers("qnn-htp")
def test_quantized(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))
''')
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    notes = [line for line in result.outlines if line.startswith("note: ")]
    assert len(notes) == 1, result.stdout.str()
    assert notes[0].startswith(
        f"note: {model_dir / 'conv_matmul.onnx'} is a float model: on qnn-htp the x86-64 "
        "simulator computes it in fp32 (SNR "
    )
    assert notes[0].endswith(
        " dB here), real HTP in fp16; check it with qnn-htp-fp16 (on the simulator with soc_model set)"
    )


def test_non_finite_results_of_edge_compare_are_strict_json_and_junit_properties(pytester, model_dir):
    """A comparison that meets NaN and infinity: its record in the JSON report spells them as strings (strict JSON
    that any parser reads); the test's JUnit properties spell infinity ``inf``."""
    pytester.makepyfile(f'''
import numpy as np
import pytest

@pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}")
@pytest.mark.edge_providers("cpu")
def test_blows_up(edge_session, edge_reference, edge_inputs, edge_compare):
    expected = edge_reference.run(edge_inputs)
    edge_compare(expected, expected, label="healthy")
    broken = {{name: np.full_like(array, np.inf) for name, array in expected.items()}}
    broken["y"].flat[0] = np.nan
    edge_compare(broken, expected, label="broken")
''')
    pytester.runpytest("-p", "no:cacheprovider", "--junitxml=junit.xml", "--edge-report=report.json").assert_outcomes(
        failed=1
    )
    text = (pytester.path / "report.json").read_text()
    records = json.loads(text, parse_constant=lambda token: pytest.fail(f"non-strict JSON token {token}"))["results"]
    healthy, broken = ([r for r in records if r.get("label") == label][0] for label in ("healthy", "broken"))
    assert healthy["comparison"]["passed"] is True and healthy["comparison"]["outputs"][0]["max_abs"] == 0.0
    output = broken["comparison"]["outputs"][0]
    assert broken["comparison"]["passed"] is False and output["nonfinite_mismatch"] == output["size"]
    assert output["worst"] and all(w["abs_err"] == "inf" for w in output["worst"])
    assert output["worst"][0]["actual"] in ("inf", "nan")
    properties = {p.get("name"): p.get("value") for p in ET.parse(pytester.path / "junit.xml").iter("property")}
    # SNR over the elements finite on both sides: the healthy comparison's inf; top-k: the broken one's
    assert (properties["edge_y_snr_db"], properties["edge_y_topk_agreement"]) == ("inf", "0")
