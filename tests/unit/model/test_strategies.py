"""pytest_edgeort.strategies.inputs_for: valid feeds from model metadata, for property-based tests."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings

from pytest_edgeort.errors import InputError
from pytest_edgeort.model.info import model_info
from pytest_edgeort.model.inputs import generate_inputs
from pytest_edgeort.strategies import inputs_for


def test_feeds_match_metadata_and_stay_in_the_quantization_range(model_dir):
    info = model_info(model_dir / "conv_matmul_qdq.onnx")
    low, high = info.input_quant["x"].value_range
    session = ort.InferenceSession(str(info.path), providers=["CPUExecutionProvider"])

    @settings(max_examples=15, deadline=None)
    @given(feed=inputs_for(info.path))
    def check(feed):
        assert set(feed) == {"x"}
        assert feed["x"].dtype == np.float32 and feed["x"].shape == (1, 3, 16, 16)
        assert low <= feed["x"].min() and feed["x"].max() < high
        session.run(None, feed)  # ORT accepts every generated feed

    check()


def test_every_io_dtype_and_explicit_ranges(model_dir):
    info = model_info(model_dir / "identities.onnx")

    @settings(max_examples=15, deadline=None)
    @given(feed=inputs_for(info, ranges={"in_i32": (-5, 5), "in_f16": (2.0, 3.0)}))
    def check(feed):
        for tensor in info.inputs:
            assert feed[tensor.name].dtype == np.dtype(tensor.dtype) and feed[tensor.name].shape == (2, 3)
        assert feed["in_i32"].min() >= -5 and feed["in_i32"].max() < 5
        assert feed["in_f16"].min() >= 2.0 and feed["in_f16"].max() < 3.0

    check()


def test_ranges_or_shapes_naming_an_input_the_model_lacks_is_one_line(model_dir):
    """A typo in an input's name (``input_ranges``, ``[inputs.generate] ranges``, ``shapes``) fails where it was
    silently ignored: the input was generated with its default range, so a test checked other data than meant."""
    info = model_info(model_dir / "conv_matmul_qdq.onnx")
    expected = (
        "the value ranges given name input 'xx' (did you mean 'x'?), which the model does not have; its inputs: x"
    )
    for make in (lambda: generate_inputs(info, 0, 0, {"xx": (0.0, 1.0)}), lambda: inputs_for(info, {"xx": (0, 1)})):
        with pytest.raises(InputError) as info_error:
            make()
        assert str(info_error.value) == f"conv_matmul_qdq.onnx: {expected}"
    with pytest.raises(InputError, match="the shapes given name input 'y'"):
        generate_inputs(info, 0, 0, None, {"y": [1, 3, 16, 16]})
