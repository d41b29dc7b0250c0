"""Plugins users already run, installed from PyPI into a throwaway venv (labgrid, pytest-rerunfailures,
pytest-randomly, pytest-html, pytest-cov; pytest-timeout from the project's environment): suites and marker
tests run next to each of them and give the verdicts they give alone."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, Tuple

import pytest

from tests.support.plugin_venv import make_plugin_venv, report_of, run_pytest
from tests.support.runs import require_qnn

require_qnn()

MARKER_TESTS = """
import pytest

pytestmark = [pytest.mark.edge_model(r"{model}"), pytest.mark.edge_providers("qnn-htp")]

def test_matches_cpu(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))

def test_against_wrong_arrays(edge_session, edge_inputs, edge_compare):
    actual = edge_session.run(edge_inputs)
    edge_compare(actual, {{name: value + 1.0 for name, value in actual.items()}})
"""
SUITE = 'model = "m.onnx"\nproviders = ["qnn-htp"]\n[checks]\ngolden = false\n'


@pytest.fixture(scope="session")
def plugin_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a venv with the plugins installed from PyPI (once per test session)."""
    return make_plugin_venv(tmp_path_factory.mktemp("plugin-venv"))


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    """A user's project: a suite (conformance, no-fallback, latency) and two marker tests, one failing."""
    root = tmp_path_factory.mktemp("project")
    (root / "suite").mkdir()
    shutil.copyfile(model_dir / "conv_matmul_qdq.onnx", root / "suite" / "m.onnx")
    (root / "suite" / "edge_suite.toml").write_text(SUITE)
    (root / "test_marker.py").write_text(MARKER_TESTS.format(model=model_dir / "conv_matmul_qdq.onnx"))
    (root / "pytest.ini").write_text("[pytest]\n")
    return root


def verdicts(python: Path, project: Path, name: str, *args: str, plugins=None) -> Tuple[Dict[str, str], str]:
    """Every edge test's outcome (from the JSON report) of one run in ``project``, and the run's output."""
    report = project / f"{name}.json"
    done = run_pytest(python, project, f"--edge-report={report}", *args, plugins=plugins)
    output = done.stdout + done.stderr
    assert report.exists(), output[-3000:]
    return report_of(report)["outcomes"], output


@pytest.fixture(scope="session")
def alone(plugin_python: Path, project: Path) -> Dict[str, str]:
    """The verdicts with no other plugin loaded."""
    outcomes, output = verdicts(plugin_python, project, "alone", plugins=())
    assert sorted(outcomes.values()).count("failed") == 1 and len(outcomes) == 5, output[-3000:]
    return outcomes


def test_suites_and_markers_run_with_every_plugin_autoloaded_as_a_user_has_them(plugin_python, project, alone):
    """labgrid's autoloaded plugin reads ``item.fixturenames`` of every item in its setup hook."""
    outcomes, output = verdicts(plugin_python, project, "autoloaded")
    assert "plugins: " in output and "labgrid-" in output
    assert "fixturenames" not in output
    assert outcomes == alone, output[-3000:]


@pytest.mark.parametrize(
    "plugins, args, produced",
    [
        (("labgrid.pytestplugin",), (), None),
        (("pytest_timeout",), ("--timeout=300",), None),
        (("pytest_randomly",), ("--randomly-seed=3",), None),
        (("pytest_metadata.plugin", "pytest_html.plugin", "pytest_html.fixtures"), ("--html=page.html",), "page.html"),
        (("pytest_cov.plugin",), ("--cov=pytest_edgeort", "--cov-report=xml:cov.xml"), "cov.xml"),
    ],
    ids=["labgrid", "pytest-timeout", "pytest-randomly", "pytest-html", "pytest-cov"],
)
def test_each_plugin_gives_the_same_verdicts(plugin_python, project, alone, plugins, args, produced):
    outcomes, output = verdicts(plugin_python, project, plugins[0], *args, plugins=plugins)
    assert outcomes == alone, output[-3000:]
    if produced is not None:
        assert (project / produced).stat().st_size > 0


FLAKY_TEST = """
import pathlib

import pytest

FIRST = pathlib.Path(__file__).with_name("first-attempt-done")

@pytest.mark.edge_model(r"{model}")
@pytest.mark.edge_providers("qnn-htp")
def test_flaky(edge_session, edge_reference, edge_inputs, edge_compare):
    actual = edge_session.run(edge_inputs)
    shift = 0.0 if FIRST.exists() else 1.0  # the first attempt fails, the rerun passes
    FIRST.touch()
    edge_compare(actual, {{name: value + shift for name, value in edge_reference.run(edge_inputs).items()}})
"""


def test_a_rerun_records_every_attempt_and_the_final_outcome(plugin_python, tmp_path, model_dir):
    """pytest-rerunfailures: the failed first attempt's record says it failed and was rerun, the rerun's
    record says it passed, and the test's outcome is the final one, as pytest reports them."""
    (tmp_path / "test_flaky.py").write_text(FLAKY_TEST.format(model=model_dir / "conv_matmul_qdq.onnx"))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    done = run_pytest(plugin_python, tmp_path, "--reruns=1", "--edge-report=r.json", plugins=("pytest_rerunfailures",))
    assert "1 passed, 1 rerun" in done.stdout, done.stdout[-3000:]
    report = report_of(tmp_path / "r.json")
    nodeid = "test_flaky.py::test_flaky[local-qnn-htp]"
    assert report["outcomes"] == {nodeid: "passed"}
    attempts = [
        (r["check"], r["attempt"], r["comparison"]["passed"], r["attempt_outcome"], r["outcome"])
        for r in report["results"]
        if r["nodeid"] == nodeid
    ]
    assert attempts == [
        ("conformance", 1, False, "rerun", "passed"),
        ("conformance", 2, True, "passed", "passed"),
    ]
