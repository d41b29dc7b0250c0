"""The heads of a Concat'ed output, read from the graph (pytest_edgeort.model.info)."""

from __future__ import annotations

import pytest

from pytest_edgeort.compare.layout import Head, Layout
from pytest_edgeort.model.info import model_info
from tests.support.models import concat_heads, conv_matmul_float

GRID_HEADS = (Head(0, 64, (8, 8)), Head(64, 80, (4, 4)), Head(80, 84, (2, 2)))


@pytest.mark.parametrize("anchors_last, axis", [(True, 2), (False, 1)])
def test_concat_of_flattened_grids_is_read_per_head(tmp_path, anchors_last, axis):
    info = model_info(concat_heads(tmp_path / "heads.onnx", anchors_last))
    assert info.layout("y") == Layout(axis, GRID_HEADS, 3)


def test_heads_are_read_through_16_bit_qdq_of_the_com_microsoft_domain(tmp_path):
    info = model_info(concat_heads(tmp_path / "heads16.onnx", anchors_last=False, u16=True))
    assert info.layout("y") == Layout(1, GRID_HEADS, 3)  # ONNX shape inference stops at a custom-domain node


def test_outputs_without_concat_have_no_layout(tmp_path):
    info = model_info(conv_matmul_float(tmp_path / "m.onnx"))
    assert info.layout("y") is None


def test_the_op_computing_an_output_is_read_behind_qdq_and_bias(tmp_path):
    assert model_info(concat_heads(tmp_path / "heads.onnx")).computed_by("y") == "Concat"
    assert model_info(conv_matmul_float(tmp_path / "m.onnx")).computed_by("y") == "MatMul"
