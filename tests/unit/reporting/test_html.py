"""The HTML report rendered from a report document: structure, links, plots, escaping, atomic writing."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from pytest_edgeort.errors import ReportError
from pytest_edgeort.reporting.html import render_html as render_document
from pytest_edgeort.reporting.html import write_html as write_document
from pytest_edgeort.reporting.schema import ReportDocument
from pytest_edgeort.reporting.svg import histogram_svg
from tests.support.htmlpage import Node, histogram_bars, parse, summary_rows

ROOT = Path("/repo")
EVIL = "<script>alert(1)</script>.onnx"
HISTOGRAM_OK = [["0", 126], ["1", 34], ["2", 0], ["3-4", 0], ["5-8", 0], ["9-16", 0], ["17-32", 0], [">32", 0]]
HISTOGRAM_BAD = [
    ["0", 0],
    ["1", 0],
    ["2", 0],
    ["3-4", 1],
    ["5-8", 3],
    ["9-16", 5],
    ["17-32", 1],
    [">32", 0],
    ["non-finite", 2],
]
TOLERANCE = {
    "atol": None,
    "bias_lsb": 2.0,
    "gain": 0.03,
    "lsb": 3.0,
    "max_mismatch": 0.0,
    "min_cosine": None,
    "min_snr_db": 10.0,
    "quantile": 0.99,
    "rtol": None,
    "stat": "elemwise",
    "tie_lsb": 2.0,
    "topk": 1,
    "vs_float": None,
}
PROVENANCE = {
    "device": "local",
    "ep": "QNNExecutionProvider",
    "model_sha256": "e0d7" * 16,
    "onnxruntime": "1.32.0",
    "provider": "qnn-htp",
    "qnn_sdk": "2.51.0",
    "written": "2026-11-21T17:20:12+00:00",
}


def _output(passed: bool, histogram: List[List[Any]], worst: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {
        "name": "y",
        "passed": passed,
        "actual_shape": [1, 10],
        "expected_shape": [1, 10],
        "actual_dtype": "float32",
        "expected_dtype": "float32",
        "max_abs": 0.164,
        "mean_abs": 0.0629,
        "max_lsb": 29.0 if not passed else 1.0,
        "scale": 0.00566,
        "frac_within": 0.0 if not passed else 1.0,
        "snr_db": 11.56 if not passed else "inf",
        "cosine": 0.964,
        "topk_agreement": 1.0,
        "gain": -0.074,
        "failures": ["10 of 10 elements (100.00%) outside |err| <= 3 LSB (0.01699)"] if not passed else [],
        "pattern_text": "constant offset: median error -6.5 LSB over all 10 elements" if not passed else None,
        "tolerance": TOLERANCE,
        "smallest_passing": {"lsb": 29.0, "topk": 1},
        "histogram": histogram,
        "histogram_unit": "LSB",
        "worst": worst,
        "nan_actual": 0,
        "nan_expected": 0,
        "inf_actual": 0,
        "inf_expected": 0,
    }


def _record(nodeid: str, check: str, outcome: str, model: Optional[str] = "m.onnx", **fields: Any) -> Dict[str, Any]:
    base = {
        "nodeid": nodeid,
        "check": check,
        "outcome": outcome,
        "device": "local",
        "provider": "qnn-htp",
        "started": 1796186811.53,
        "finished": 1796186811.57,
    }
    if model is not None:
        base.update(
            model=model,
            model_path=f"/repo/models/{model}",
            model_sha256="b82b" * 16,
            ep="QNNExecutionProvider",
            ep_api="plugin",
            cpu_fallback=True,
            onnxruntime="1.32.0",
            qnn_sdk="2.51.0",
            provider_options={"backend_type": "htp"},
            npu_coverage=0.92,
            placement={
                "CPUExecutionProvider": {"DequantizeLinear": 1, "QuantizeLinear": 1},
                "QNNExecutionProvider": {"Conv": 2, "DequantizeLinear": 11, "QuantizeLinear": 6},
            },
        )
    return {**base, **fields}


def render_html(document: Dict[str, Any], rootdir: Optional[Path] = None) -> str:
    """The page of a report document's JSON form, loaded as the report's reader loads it."""
    return render_document(ReportDocument.from_dict(document), rootdir)


def write_html(path: Path, document: Dict[str, Any], rootdir: Optional[Path] = None) -> None:
    write_document(path, ReportDocument.from_dict(document), rootdir)


WORST = [
    {"index": [0, 0], "actual": 0.1416, "expected": -0.0227, "abs_err": 0.1642, "err_lsb": 29.0},
    {"index": [0, 8], "actual": -0.1416, "expected": -0.0510, "abs_err": 0.0906, "err_lsb": 16.0},
]
DOCUMENT = {
    "schema": "pytest-edgeort/report",
    "version": 1,
    "created": "2026-12-02T04:46:51+00:00",
    "exitstatus": 1,
    "interrupted": False,
    "seed": 20240607,
    "devices": {
        "local": {
            "platform": "Linux-6.18-x86_64-with-glibc2.36",
            "machine": "x86_64",
            "python": "3.11.2",
            "onnxruntime": "1.32.0",
            "providers": ["CPUExecutionProvider", "QNNExecutionProvider"],
            "qnn": {"backends": ["htp"], "sdk_version": "2.51.0", "ep_package_version": "2.7.0"},
            "soc": "",
            "board_lock": None,
        }
    },
    "results": [
        _record(
            "t.py::test_ok[local-qnn-htp]",
            "conformance",
            "passed",
            "good.onnx",
            comparison={"passed": True, "missing": [], "extra": [], "outputs": [_output(True, HISTOGRAM_OK, [])]},
        ),
        _record(
            "t.py::test_bad[local-qnn-htp]",
            "conformance",
            "failed",
            EVIL,
            phase="call",
            error=f"ComparisonError: {EVIL} on local/qnn-htp vs reference: 1 of 1 outputs failed",
            comparison={"passed": False, "missing": [], "extra": [], "outputs": [_output(False, HISTOGRAM_BAD, WORST)]},
        ),
        _record(
            "t.py::test_latency[local-qnn-htp]",
            "latency",
            "passed",
            "good.onnx",
            speedup_vs_cpu=0.108,
            latency={"p50_ms": 0.789, "p90_ms": 0.942, "mean_ms": 0.77, "min_ms": 0.57, "runs": 20},
            latency_gate_ms=10.0,
        ),
        _record(
            "t.py::test_golden[local-qnn-htp]",
            "golden",
            "passed",
            "good.onnx",
            # the golden names the model relative to the rootdir, the run its absolute path: not a change
            golden_provenance={**PROVENANCE, "onnxruntime": "1.31.1", "model_path": "models/good.onnx"},
            comparison={"passed": True, "missing": [], "extra": [], "outputs": []},
        ),
        _record(
            "t.py::test_npu[local-qnn-htp]",
            "no_cpu_fallback",
            "failed",
            "det.onnx",
            placement=None,
            error="det.onnx on local/qnn-htp does not run fully on QNNExecutionProvider: Det x1 (det_node)",
            cpu_nodes=[{"op_type": "Det", "count": 1, "nodes": ["det_node"]}],
        ),
        _record(
            "t.py::test_setup[local-qnn-htp]",
            "test",
            "error",
            model=None,
            phase="setup",
            error="/repo/models/missing.onnx: no such model file",
        ),
    ],
    "outcomes": {
        "t.py::test_ok[local-qnn-htp]": "passed",
        "t.py::test_bad[local-qnn-htp]": "failed",
        "t.py::test_latency[local-qnn-htp]": "passed",
        "t.py::test_golden[local-qnn-htp]": "passed",
        "t.py::test_npu[local-qnn-htp]": "failed",
        "t.py::test_setup[local-qnn-htp]": "error",
        "t.py::test_session_only[local-cpu]": "passed",
        "t.py::test_ok[local-cuda]": "skipped",
    },
    "skipped": [{"reason": "device 'local' has no provider 'cuda'", "count": 2}],
}


@pytest.fixture(scope="module")
def page() -> Node:
    return parse(render_html(DOCUMENT, ROOT))


def test_summary_has_a_row_per_model_device_provider_failures_first(page):
    rows = [[cell.all_text() for cell in row.children] for row in summary_rows(page)]
    assert [(r[0], r[3]) for r in rows] == [
        ("models/" + EVIL, "FAIL 0/1"),
        ("models/det.onnx", "FAIL 0/1"),
        ("t.py::test_setup", "FAIL 0/1"),  # failed before any session existed: its own row, named by the test
        ("models/good.onnx", "PASS 3/3"),
    ]
    assert rows[0][4:6] == ["29", "11.6"] and rows[3][8:11] == ["0.789", "0.942", "0.11"]
    verdicts = [n for row in summary_rows(page) for n in row.children[3].iter("span")]
    assert [v.classes() for v in verdicts] == [["badge", "fail"]] * 3 + [["badge", "pass"]]  # colour and text


def test_summary_rows_link_to_their_details_and_back(page):
    for index, row in enumerate(summary_rows(page)):
        anchor = row.children[0].children[0]
        assert (anchor.attrs["id"], anchor.attrs["href"]) == (f"row-{index}", f"#grp-{index}")
        page.by_id(f"grp-{index}")
        for link in row.children[-1].iter("a"):  # one link per check of the row, to that check's section
            section = page.by_id(link.attrs["href"][1:])
            assert section.tag == "section"
            backs = [a.attrs["href"] for a in section.iter("a")]
            assert backs == [f"#row-{index}"]
    assert len(list(page.iter("section"))) == len(DOCUMENT["results"])


def test_one_svg_histogram_per_output_with_a_bar_per_bin(page):
    plots, bars = list(page.iter("svg")), histogram_bars(page)
    assert len(plots) == 2  # the passing and the failing output (the golden record compared no output)
    assert sorted(len(b) for b in bars) == [len(HISTOGRAM_OK), len(HISTOGRAM_BAD)]
    failing = next(b for b in bars if len(b) == len(HISTOGRAM_BAD))
    assert ["beyond" in r.classes() for r in failing] == [False] * 4 + [True] * 5  # lsb=3: from '5-8' on
    labels = [t.all_text() for t in plots[0].iter("text")]
    assert "|error| in LSB" in labels and "elements (log scale)" in labels and ">32" in labels


def test_details_show_worst_elements_placement_latency_provenance_and_errors(page):
    text = page.all_text()
    assert "(0, 0)" in text and "29" in text  # the worst element's index and error in LSB
    assert "constant offset: median error -6.5 LSB over all 10 elements" in text
    assert "/repo/models/missing.onnx: no such model file" in text
    cpu = [n.all_text() for n in page.iter("span") if "cpu" in n.classes()]
    assert cpu == ["1 on CPU", "1 on CPU"] * 4  # per record with placement: CPU ops are marked in words
    header = ["op type", "QNNExecutionProvider", "CPUExecutionProvider"]
    placements = [t for t in page.iter("table") if [th.all_text() for th in t.iter("th")] == header]
    assert len(placements) == 4
    assert {[td.all_text() for td in t.iter("td")][0] for t in placements} == {"DequantizeLinear"}  # CPU ops first
    assert "Det" in text and "det_node" in text
    assert "1.31.1" in text and "1.32.0 (changed)" in text  # golden written with another onnxruntime
    assert "models/good.onnx" in text and "/repo/models/good.onnx (changed)" not in text
    assert "device 'local' has no provider 'cuda'" in text


def test_user_data_is_escaped_and_the_page_fetches_nothing():
    text = render_html(DOCUMENT, ROOT)
    assert "<script" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;.onnx" in text
    assert "http" not in text and "src=" not in text and "@import" not in text and "url(" not in text


def test_tests_without_a_check_record_are_listed_with_their_outcome(page):
    heading = next(h for h in page.iter("h2") if h.all_text() == "Edge tests without a check record")
    body = next(page.iter("body"))
    table = body.children[body.children.index(heading) + 1]
    rows = [[td.all_text() for td in tr.iter("td")] for tr in next(table.iter("tbody")).children]
    assert rows == [["t.py::test_session_only[local-cpu]", "PASSED"], ["t.py::test_ok[local-cuda]", "SKIPPED"]]


def test_interrupted_run_says_so():
    document = dict(DOCUMENT, interrupted=True, exitstatus=2)
    assert "INTERRUPTED" in parse(render_html(document)).all_text()
    assert "INTERRUPTED" not in parse(render_html(DOCUMENT)).all_text()


def test_a_document_without_records_renders():
    document = dict(DOCUMENT, results=[], outcomes={}, devices={})
    text = parse(render_html(document)).all_text()
    assert "no device was reached" in text and "no edge tests ran" in text


def test_write_html_is_atomic_and_an_unwritable_path_is_one_line(tmp_path):
    target = tmp_path / "out" / "report.html"
    write_html(target, DOCUMENT, ROOT)
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    with pytest.raises(ReportError) as excinfo:
        write_html(blocked, DOCUMENT)
    assert str(excinfo.value) == f"edgeort: cannot write the --edge-html {blocked}: Is a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked", "out"]  # no temp file left behind
    assert list((tmp_path / "out").iterdir()) == [target]


def test_histogram_marks_only_bins_wholly_above_the_limit():
    bins = [[label, 1] for label in ("0", "1", "2", "3-4", "5-8", "9-16", "17-32", ">32", "non-finite")]

    def beyond(limit):
        svg = parse(histogram_svg(bins, "LSB", limit))
        return ["beyond" in r.classes() for r in svg.iter("rect")]

    assert beyond(0) == [False] + [True] * 8  # exact zeros are never beyond
    assert beyond(2) == [False] * 3 + [True] * 6  # '3-4' holds (2, 4]
    assert beyond(3) == [False] * 4 + [True] * 5  # ... so 3 LSB does not put it all beyond
    assert beyond(32) == [False] * 7 + [True] * 2
    assert beyond(None) == [False] * 9
    original = copy.deepcopy(bins)
    assert "<title>&gt;32 LSB: 1 elements</title>" in histogram_svg(bins) and bins == original


def test_simulated_latency_is_labelled_and_every_measurement_is_shown():
    document = copy.deepcopy(DOCUMENT)
    record = next(r for r in document["results"] if r.get("check") == "latency")
    first = {"p50_ms": 0.8, "p90_ms": 21.0, "mean_ms": 3.0, "min_ms": 0.6, "runs": 20, "passed": False}
    record.update(
        latency_simulated=True,
        latency_gates={"latency_p90_ms": 10.0},
        latency_attempts=[first, {**record["latency"], "runs": 60, "passed": True}],
        latency_decided_by="re-measurement",
    )
    page = parse(render_html(document, ROOT))
    good = next(r for r in summary_rows(page) if r.children[0].all_text() == "models/good.onnx")
    assert [c.all_text() for c in good.children[8:11]] == ["0.789~", "0.942~", "0.11~"]
    text = page.all_text()
    assert "simulated latency" in [h.all_text() for h in page.iter("h4")]
    assert "QNN's HTP simulator on x86-64, not a board's latency" in text and "re-measurement" in text
    measurements = next(t for t in page.iter("table") if "measurement" in [th.all_text() for th in t.iter("th")])
    rows = [[td.all_text() for td in tr.iter("td")] for tr in next(measurements.iter("tbody")).children]
    assert rows == [["1", "0.800", "21.0", "20", "broken"], ["2", "0.789", "0.942", "60", "held"]]


def test_a_data_set_loop_shows_its_failure_and_a_few_passes_and_counts_the_rest():
    """A test that compared 300 samples and failed on the 150th: every record once had its section and its
    badge in the summary row (a 2,000-sample loop made a 10 MB page)."""
    ok = {"passed": True, "missing": [], "extra": [], "outputs": [_output(True, HISTOGRAM_OK, [])]}
    bad = {"passed": False, "missing": [], "extra": [], "outputs": [_output(False, HISTOGRAM_BAD, WORST)]}
    nodeid = "t.py::test_dataset[local-qnn-htp]"
    results = [
        _record(nodeid, "conformance", "failed", comparison=ok if i != 150 else bad)  # edge_compare's records
        for i in range(300)
    ]
    page = parse(render_html({**DOCUMENT, "results": results, "outcomes": {nodeid: "failed"}}, ROOT))
    sections = list(page.iter("section"))
    assert sorted(int(s.attrs["id"][4:]) for s in sections) == [*range(20), 150]  # the failing comparison is rec-150
    # the comparisons that passed say so, in the failed test's section and in the summary row
    assert [s.attrs["id"] for s in sections if "failed" in s.classes()] == ["rec-150"]
    assert "PASSED conformance t.py::test_dataset[local-qnn-htp] (its test failed on another check)" in (
        page.by_id("rec-0").all_text()
    )
    (row,) = summary_rows(page)
    assert len(list(row.iter("a"))) == 1 + 21 and "+279 passed" in row.all_text()
    assert row.children[-1].all_text().count("PASSED") == 20 and row.children[-1].all_text().count("FAILED") == 1
    assert f"279 more passed conformance records of {nodeid}: every one is in the JSON report" in page.all_text()
