"""The node-test corpus as cached: the operator a case tests, I/O that cannot cross to a worker, and examples
whose values the onnx wheel gives as numpy scalars or TensorProtos."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pytest_edgeort.model.corpus import Case, _op_names, _op_type, _unrepresentable, _write_case


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
    optional = helper.make_value_info("o", helper.make_optional_type_proto(helper.make_tensor_type_proto(1, [1])))
    assert _unrepresentable([ok, seq], "input") == "input 's' is a sequence, not a tensor"
    assert _unrepresentable([text], "input") == "input 't' has element type string"
    assert _unrepresentable([bf16], "output") == "output 'b' has element type bfloat16"
    assert _unrepresentable([optional], "input") == "input 'o' is an optional, not a tensor"
    assert _unrepresentable([ok], "input") is None


def test_numpy_scalars_and_tensor_protos_in_an_example_are_stored_as_arrays(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT16, [])
    model = helper.make_model(helper.make_graph([helper.make_node("Cast", ["x"], ["y"], to=10)], "g", [x], [y]))
    expected = numpy_helper.from_array(np.array(1.5, np.float16))
    test = SimpleNamespace(name="test_cast_scalar", model=model, data_sets=[([np.float32(1.5)], [expected])])
    case = _write_case(tmp_path / "test_cast_scalar", test, _op_names())
    assert case == Case("test_cast_scalar", "Cast", ("Cast",), onnx.defs.onnx_opset_version(), 1, None)
    inputs, outputs = case.example(tmp_path, 0)
    assert inputs["x"].dtype == np.float32 and outputs["y"] == np.float16(1.5)
    assert case.model(tmp_path).is_file()
