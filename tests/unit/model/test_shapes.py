"""Zero-length dimensions are static (issue 19): an empty ``axes`` input is data, not a dynamic shape."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from pytest_edgeort.errors import InputError
from pytest_edgeort.model.info import model_info
from pytest_edgeort.model.inputs import generate_inputs, static_shape
from pytest_edgeort.model.prepare import PrepareRecipe
from tests.support.models import IR_VERSION, OPSET


def empty_axes_model(path, axes_shape=(0,)):
    """ReduceSum(Relu(x[2, 3]), axes) with ``axes`` an input: empty axes reduce over every axis (the Relu
    gives QNN a node to take)."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("ReduceSum", ["r", "axes"], ["y"], keepdims=0)],
        "empty_axes",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("axes", TensorProto.INT64, list(axes_shape)),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.save(model, str(path))
    return path


def test_a_zero_length_dimension_is_static_and_generated_empty(tmp_path):
    info = model_info(empty_axes_model(tmp_path / "m.onnx"))
    axes = next(t for t in info.inputs if t.name == "axes")
    assert axes.is_static and static_shape(info, axes) == (0,)
    feed = generate_inputs(info, 1)
    assert feed["axes"].shape == (0,)
    y = ort.InferenceSession(str(info.path)).run(None, feed)[0]
    assert np.isclose(y, np.maximum(feed["x"], 0).sum())  # what the model computes with empty axes: the sum of all


def test_the_shape_advice_keeps_zero_length_dimensions(tmp_path):
    info = model_info(empty_axes_model(tmp_path / "m.onnx", (None, 0)))
    axes = next(t for t in info.inputs if t.name == "axes")
    with pytest.raises(InputError, match="--input_name axes --input_shape 1,0 m.onnx fixed.onnx"):
        static_shape(info, axes)  # the unknown dimension gets 1, the empty one stays empty


def test_fix_shapes_accepts_zero_length_dimensions():
    recipe = PrepareRecipe.from_mapping({"fix_shapes": {"axes": [0]}}, "suite/edge_suite.toml")
    assert recipe.fix_shapes == {"axes": [0]}
