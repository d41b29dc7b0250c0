"""The op matrix's reading of errors: a session error's class and the operator a node test tests."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from pytest_edgeort.checks.opmatrix import error_class
from pytest_edgeort.model.corpus import _op_names, _op_type, _unrepresentable


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


def graph(*ops: str) -> onnx.GraphProto:
    nodes = [helper.make_node(op, ["x"], [f"y{i}"]) for i, op in enumerate(ops)]
    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    return helper.make_graph(nodes, "g", [value], [value])


def test_the_op_type_is_the_only_node_s_else_the_longest_operator_the_name_starts_with():
    names = _op_names()
    assert _op_type("test_convtranspose_pad", graph("ConvTranspose"), names) == "ConvTranspose"
    expanded = graph("ReduceMean", "Sub", "Mul")
    assert _op_type("test_layer_normalization_2d_axis0_expanded", expanded, names) == "LayerNormalization"
    assert _op_type("test_convtranspose_expanded", expanded, names) == "ConvTranspose"
    assert _op_type("test_something_new", expanded, names) == "ReduceMean"


def test_inputs_that_are_no_plain_numeric_tensors_are_named():
    seq = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, [1])
    text = helper.make_tensor_value_info("t", TensorProto.STRING, [1])
    bf16 = helper.make_tensor_value_info("b", TensorProto.BFLOAT16, [1])
    ok = helper.make_tensor_value_info("x", TensorProto.UINT8, [1])
    assert _unrepresentable([ok, seq], "input") == "input 's' is a sequence, not a tensor"
    assert _unrepresentable([text], "input") == "input 't' has element type string"
    assert _unrepresentable([bf16], "output") == "output 'b' has element type bfloat16"
    assert _unrepresentable([ok], "input") is None
