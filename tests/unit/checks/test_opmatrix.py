"""The op matrix's reading of a session error: its class."""

from __future__ import annotations

from pytest_edgeort.checks.opmatrix import error_class


def test_the_error_class_is_qnn_s_code_else_onnxruntime_s_status():
    finalize = (
        "t.onnx on local/qnn-htp: session creation failed with CPU fallback disabled: [ONNXRuntimeError] : 11 : "
        "EP_FAIL : Failed to finalize QNN graph. Error: QNN_COMMON_ERROR_MEM_ALLOC: Memory allocation related error."
    )
    assert error_class(finalize) == "QNN_COMMON_ERROR_MEM_ALLOC"
    assert error_class("[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation") == (
        "NOT_IMPLEMENTED"
    )
    assert error_class("t.onnx on local/qnn-htp: no node of the graph is left after ...") == "FOLDED_TO_CONSTANTS"
    assert error_class("something else") is None
