"""Running the plugin as a user would: an isolated pytest run, the basic test, the skip without QNN."""

from __future__ import annotations

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
