"""Running the plugin as a user would: an isolated pytest run, a run as its own process (a CI job), the basic
test, a test that holds its device until told to stop, the skip without QNN."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Callable

import pytest

QNN_REASON = "the QNN HTP simulator (onnxruntime-qnn) is the NPU under test"

# The basic conformance test a user writes; ``.format(model=path)`` (replace "qnn-htp" for another provider).
MATCH_TEST = """
import pytest

@pytest.mark.edge_model(r"{model}")
@pytest.mark.edge_providers("qnn-htp")
def test_matches_cpu(edge_session, edge_reference, edge_inputs, edge_compare):
    result = edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))
    assert result.passed
"""


def require_qnn() -> None:
    """Skip the calling test module unless the QNN HTP simulator (onnxruntime-qnn) is installed."""
    pytest.importorskip("onnxruntime_qnn", reason=QNN_REASON)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """``pytest`` in pytester's folder, in-process, reporting skips/failures/errors/xfails in the summary."""
    return pytester.runpytest("-p", "no:cacheprovider", "-rsfExX", *args)


HOLD_TEST = """
import pathlib
import time
import pytest

@pytest.mark.edge_model(r"{models}/conv_matmul_qdq.onnx")
@pytest.mark.edge_providers("cpu")
def test_hold(edge_session):
    pathlib.Path("holding").write_text("1")
    deadline = time.monotonic() + 120
    while not pathlib.Path("release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
"""

QUICK_TEST = """
import pytest

@pytest.mark.edge_model(r"{models}/conv_matmul_qdq.onnx")
@pytest.mark.edge_providers("cpu")
def test_quick(edge_session, edge_inputs):
    assert edge_session.run(edge_inputs)
"""


def start_pytest(pytester: pytest.Pytester, log: str, *args: str) -> subprocess.Popen:
    """A pytest process in the pytester folder (its own process, like a CI job: not an xdist worker, even when
    this suite runs under ``-n``), output to ``log``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rsfE", *args],
        cwd=pytester.path,
        env=env,
        stdout=(pytester.path / log).open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
