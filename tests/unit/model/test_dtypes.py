"""The one ONNX -> numpy dtype table agrees with onnx's own mapping."""

import numpy as np
import onnx
import pytest

from pytest_edgeort.model.dtypes import ONNX_TO_NUMPY


@pytest.mark.parametrize("code, name", sorted(ONNX_TO_NUMPY.items()))
def test_table_matches_onnx(code, name):
    assert np.dtype(onnx.helper.tensor_dtype_to_np_dtype(code)) == np.dtype(name)


def test_table_has_every_integer_and_float_type_model_io_uses():
    wanted = {
        onnx.TensorProto.UINT16,
        onnx.TensorProto.INT16,
        onnx.TensorProto.UINT8,
        onnx.TensorProto.INT8,
        onnx.TensorProto.FLOAT16,
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.BOOL,
        onnx.TensorProto.INT64,
    }
    assert wanted <= set(ONNX_TO_NUMPY)
