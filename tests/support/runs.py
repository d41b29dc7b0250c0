"""Running the plugin as a user would: an isolated pytest run, and the skip for machines without QNN."""

from __future__ import annotations

import pytest

QNN_REASON = "the QNN HTP simulator (onnxruntime-qnn) is the NPU under test"


def require_qnn() -> None:
    """Skip the calling test module unless the QNN HTP simulator (onnxruntime-qnn) is installed."""
    pytest.importorskip("onnxruntime_qnn", reason=QNN_REASON)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """``pytest`` in pytester's folder, in-process, reporting skips/failures/errors/xfails in the summary."""
    return pytester.runpytest("-p", "no:cacheprovider", "-rsfExX", *args)
