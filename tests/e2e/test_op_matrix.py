"""``pytest --edge-op-matrix``: real ONNX node tests from the onnx wheel on the QNN HTP simulator, classified
the same in any order and selection, and reported in the terminal, the JSON report, the CSV and the HTML."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from pytest_edgeort.model.corpus import load_corpus
from tests.support.htmlpage import parse
from tests.support.runs import require_qnn, run

require_qnn()

# What each case is on onnxruntime 1.32.0 + onnxruntime-qnn 2.7.0 (QNN 2.51), measured (docs/op-matrix.md)
KNOWN = {
    "test_relu": "ok",
    "test_add": "ok",
    "test_acos": "cpu_fallback",  # no QNN Acos: the node needs the CPU
    "test_atan": "rejected",  # accepted, then QNN_COMMON_ERROR_MEM_ALLOC at graph finalize
    "test_convtranspose_pad": "stale_memory",  # 16 output elements QNN never writes
    "test_spacetodepth": "stale_memory",  # new in QNN 2.51
    "test_stft": "crashed",  # segfault in session creation
    "test_tanh": "ok",  # after the crash, in a fresh worker
    "test_sequence_insert_at_back": "unrepresentable",  # a sequence input
    "test_resize_upsample_sizes_nearest_floor_align_corners": "wrong",  # 39 of 64 elements off, against both
}
FILTER = "^(" + "|".join(KNOWN) + ")$"
UNRELATED = "def test_mine():\n    assert False, 'not part of the matrix'\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus cache, written once for this module (every run below links to it)."""
    cache = tmp_path_factory.mktemp("corpus")
    load_corpus(cache)
    return cache / "onnx-node-tests"


@pytest.fixture
def folder(pytester: pytest.Pytester, corpus: Path) -> pytest.Pytester:
    (pytester.path / ".edgeort-cache").mkdir()
    (pytester.path / ".edgeort-cache" / "onnx-node-tests").symlink_to(corpus)
    pytester.makepyfile(test_mine=UNRELATED)
    return pytester


def classes(report: Path) -> dict:
    return {r["op_matrix"]["case"]: r["op_matrix"]["class"] for r in json.loads(report.read_text())["results"]}


def test_known_cases_get_their_class_in_the_json_report_the_csv_the_terminal_and_the_html(folder):
    report, table, page = folder.path / "r.json", folder.path / "m.csv", folder.path / "r.html"
    result = run(
        folder,
        "--edge-op-matrix",
        f"--edge-op-filter={FILTER}",
        f"--edge-report={report}",
        f"--edge-op-matrix-csv={table}",
        f"--edge-html={page}",
    )
    result.assert_outcomes(passed=len(KNOWN))  # a classified case passes; test_mine.py is not collected
    assert classes(report) == KNOWN

    records = {r["op_matrix"]["case"]: r for r in json.loads(report.read_text())["results"]}
    atan = records["test_atan"]
    assert (atan["check"], atan["device"], atan["provider"], atan["outcome"]) == (
        "op_matrix",
        "local",
        "qnn-htp",
        "passed",
    )
    assert atan["op_matrix"]["op_type"] == "Atan" and atan["op_matrix"]["error_class"] == "QNN_COMMON_ERROR_MEM_ALLOC"
    assert records["test_stft"]["op_matrix"]["signal"] == "SIGSEGV"
    assert records["test_acos"]["op_matrix"]["cpu_ops"] == {"Acos": 1}
    assert "'Y': 16 elements differ bit for bit" in records["test_convtranspose_pad"]["op_matrix"]["detail"]
    relu = records["test_relu"]
    assert relu["cpu_fallback"] is False and relu["npu_coverage"] == 1.0 and relu["comparison"]["passed"]
    assert relu["op_matrix"]["matches_expected"] is True and relu["op_matrix"]["max_abs_error"] == 0.0
    resize = records["test_resize_upsample_sizes_nearest_floor_align_corners"]
    assert resize["op_matrix"]["detail"].startswith("Y: 39 of 64 elements (60.94%) outside |err| <= 0.01")
    assert resize["comparison"]["passed"] is False and resize["op_matrix"]["matches_expected"] is False

    rows = list(csv.DictReader(table.open()))
    assert [(r["case"], r["class"]) for r in rows] == sorted(KNOWN.items())
    assert {r["case"]: r["cpu_ops"] for r in rows}["test_acos"] == "Acosx1"

    result.stdout.fnmatch_lines(
        [
            "op matrix on local/qnn-htp:",
            "op type *ok wrong stale_memory cpu_fallback rejected crashed unrepresentable  cases",
            "Atan *.*.*.*.*1*.*.*1",
            "total *3*1*2*1*1*1*1*10",
            "op matrix: 10 cases classified in * s of case time*",
        ]
    )
    section = parse(page.read_text()).by_id("op-matrix")
    cells = [[td.all_text() for td in tr.iter("td")] for tr in section.iter("tr")]
    assert ["test_atan", "Atan", "local", "qnn-htp", "rejected"] in [row[:5] for row in cells]
    assert ["Relu", "1", "", "", "", "", "", ""] in cells  # the op x class table


def test_a_case_gets_the_same_class_alone_as_after_other_cases_and_under_xdist(folder):
    """Stale memory shows alone (fresh memory is 0, which equals the expected value) as after other graphs."""
    report = folder.path / "r.json"
    for cases in ("^test_convtranspose_pad$", "^test_(relu|atan|convtranspose_pad)$"):
        run(folder, "--edge-op-matrix", f"--edge-op-filter={cases}", f"--edge-report={report}")
        assert classes(report)["test_convtranspose_pad"] == "stale_memory", cases
    several = "^test_(relu|atan|acos|convtranspose_pad|stft|tanh)$"
    result = run(folder, "-n", "2", "--edge-op-matrix", f"--edge-op-filter={several}", f"--edge-report={report}")
    result.assert_outcomes(passed=6)  # test_mine.py is not collected by the xdist workers either
    assert classes(report) == {case: klass for case, klass in KNOWN.items() if re.search(several, case)}


def test_a_path_on_the_command_line_runs_its_tests_next_to_the_matrix_and_without_the_option_nothing_changes(folder):
    result = run(folder, "--edge-op-matrix", "--edge-op-filter=^test_relu$", "test_mine.py")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_mine.py::test_mine - AssertionError: not part of the matrix*"])
    result = run(folder, "--edge-op-filter=^test_relu$")
    result.assert_outcomes(failed=1)
    assert "op matrix" not in result.stdout.str()


def test_on_the_cpu_provider_the_reference_is_the_onnx_expected_output(folder):
    report = folder.path / "r.json"
    run(
        folder,
        "--edge-op-matrix",
        "--edge-provider=cpu",
        "--edge-op-filter=^test_(relu|acos)$",
        f"--edge-report={report}",
    )
    records = json.loads(report.read_text())["results"]
    assert {(r["op_matrix"]["case"], r["provider"], r["op_matrix"]["class"]) for r in records} == {
        ("test_relu", "cpu", "ok"),
        ("test_acos", "cpu", "ok"),
    }
