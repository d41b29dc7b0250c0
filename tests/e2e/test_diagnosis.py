"""A failing conformance check names the first divergent node (``--edge-diagnose``), in the failure message,
the JSON record and the HTML report, on the real QNN HTP simulator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support import models
from tests.support.runs import require_qnn, run

require_qnn()

LAYER6 = "r6_DequantizeLinear_Output"
TEST = """
import pytest

@pytest.mark.edge_model(r"{faulty}", reference_model=r"{healthy}")
@pytest.mark.edge_providers("qnn-htp")
def test_matches_cpu(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))
"""


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    directory = tmp_path_factory.mktemp("deep")
    healthy = models.deep_qdq_chain(directory)
    return healthy, models.with_inner_fault(healthy, directory / "faulty.onnx", LAYER6, ("add", 40))


def test_a_failing_check_names_the_injected_node_in_its_message_and_record(pytester, faulty):
    healthy, wrong = faulty
    pytester.makepyfile(TEST.format(faulty=wrong, healthy=healthy))
    result = run(pytester, "--edge-report=report.json", "--edge-html=report.html")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*faulty.onnx on local/qnn-htp vs cpu reference deep_chain_qdq.onnx: 1 of 1 outputs failed*",
            f"*first divergence: node '{LAYER6}_fault_op' (Add) -> tensor '{LAYER6}_fault_f': constant offset: "
            "median error +40 LSB over all 256 elements, its inputs agree within * LSB (bisection over 12 tensors: "
            "* sessions, * s of a 60 s budget)*",
        ]
    )
    record = json.loads((pytester.path / "report.json").read_text())["results"][0]
    assert record["diagnosis"]["found"]["node"] == f"{LAYER6}_fault_op"
    assert [step["index"] for step in record["diagnosis"]["path"]][0] == 11
    page = (pytester.path / "report.html").read_text()
    assert "first divergence" in page and "<svg" in page.split("first divergence", 1)[1]


@pytest.mark.parametrize(("mode", "diagnosed"), [("off", False), ("on", False), ("always", True)])
def test_a_passing_check_is_diagnosed_only_with_always(pytester, faulty, mode, diagnosed):
    healthy, _ = faulty
    pytester.makepyfile(TEST.format(faulty=healthy, healthy=healthy))
    result = run(pytester, f"--edge-diagnose={mode}", "--edge-report=report.json")
    result.assert_outcomes(passed=1)
    record = json.loads((pytester.path / "report.json").read_text())["results"][0]
    assert ("diagnosis" in record) is diagnosed
    if diagnosed:
        assert record["diagnosis"]["message"].startswith("no divergence")


def test_diagnosis_off_leaves_the_failure_message_alone(pytester, faulty):
    healthy, wrong = faulty
    pytester.makepyfile(TEST.format(faulty=wrong, healthy=healthy))
    result = run(pytester, "--edge-diagnose=off")
    result.assert_outcomes(failed=1)
    assert "first divergence" not in result.stdout.str()


def test_an_unknown_diagnose_mode_is_a_usage_error(pytester, faulty):
    healthy, _ = faulty
    pytester.makepyfile(TEST.format(faulty=healthy, healthy=healthy))
    result = run(pytester, "--edge-diagnose=alway")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*edge_diagnose must be one of off, on, always, got 'alway' (did you mean 'always'?)*"]
    )


def make_suite(pytester, model, manifest: str) -> None:
    folder = pytester.path / "deep"
    folder.mkdir()
    shutil.copyfile(model, folder / "m.onnx")
    (folder / "edge_suite.toml").write_text('model = "m.onnx"\nproviders = ["qnn-htp"]\n' + manifest)


def test_a_suite_conformance_failure_is_diagnosed_on_its_examples(pytester, faulty):
    healthy, _ = faulty
    make_suite(pytester, healthy, "[inputs.generate]\ncount = 2\n[tolerance]\natol = 0\n")
    result = run(pytester, "-k", "conformance", "--edge-report=report.json")
    result.assert_outcomes(failed=1)
    diagnosis = json.loads((pytester.path / "report.json").read_text())["results"][0]["diagnosis"]
    result.stdout.fnmatch_lines(["*vs cpu reference: 1 of 1 outputs failed", diagnosis["message"]])
    assert diagnosis["path"][0]["tensor"] == "y_QuantizeLinear_Input"  # the output, under the check's atol = 0


def test_a_suite_with_profile_true_has_the_per_op_profile_in_its_latency_record(pytester, faulty, tmp_path):
    healthy, _ = faulty
    make_suite(pytester, healthy, "[checks]\nprofile = true\n")
    result = run(pytester, "-k", "latency", "--edge-report=report.json", "--edge-html=report.html")
    result.assert_outcomes(passed=1)
    profile = json.loads((pytester.path / "report.json").read_text())["results"][0]["profile"]
    assert profile["op_types"][0]["op_type"] == "Conv" and profile["covered"] == profile["compute_nodes"] == 12
    assert all(Path(f).is_file() and ".edgeort-cache/profiles/local/" in f for f in profile["files"])
    page = (pytester.path / "report.html").read_text()
    assert "per-op profile (QNN cycles)" in page and "not a board&#x27;s latency" in page


def test_a_passing_suite_diagnosed_always_judges_its_outputs_without_a_session(pytester, faulty):
    healthy, _ = faulty
    make_suite(pytester, healthy, "[inputs.generate]\ncount = 2\n")
    result = run(pytester, "-k", "conformance", "--edge-diagnose=always", "--edge-report=report.json")
    result.assert_outcomes(passed=1)
    diagnosis = json.loads((pytester.path / "report.json").read_text())["results"][0]["diagnosis"]
    assert diagnosis["message"].startswith("no divergence: the outputs agree with the reference")
    assert diagnosis["sessions"] == 0  # the check's own outputs, both sides
