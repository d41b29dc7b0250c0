"""What a reply may declare: the model's outputs, the arrays sent, or nothing."""

from __future__ import annotations

import numpy as np

from pytest_edgeort.devices.replies import NO_ARRAYS, like, outputs_bound
from pytest_edgeort.model.info import TensorInfo


def meta(name: str, dtype: str, nbytes: int) -> dict:
    return {"name": name, "dtype": dtype, "shape": [nbytes], "nbytes": nbytes}


def test_a_run_reply_may_declare_each_output_once_up_to_the_cap_or_its_static_size():
    check = outputs_bound([TensorInfo("y", "float32", (1, 10)), TensorInfo("boxes", "float32", ("n", 4))], 16, "m.onnx")
    assert check([meta("y", "<f4", 40), meta("boxes", "<f4", 16)]) is None
    assert "'y' (<f4, 41 bytes)" in check([meta("y", "<f4", 41)])  # more than its static shape and the cap
    assert "'boxes' (<f4, 17 bytes)" in check([meta("boxes", "<f4", 17)])  # over the cap
    assert "'y' (<f8, 40 bytes)" in check([meta("y", "<f8", 40)])  # another dtype
    assert "'z' (<f4, 4 bytes)" in check([meta("z", "<f4", 4)])  # not an output
    assert check([meta("y", "<f4", 40), meta("y", "<f4", 40)]).endswith(
        "but m.onnx's outputs can only produce: 'y' (<f4, up to 40 bytes), 'boxes' (<f4, up to 16 bytes)"
    )  # twice


def test_other_replies_declare_no_arrays_and_an_echo_only_what_was_sent():
    assert "this request can only produce: none" in NO_ARRAYS([meta("x", "|u1", 1)])
    sent = [("x", np.zeros(3, ">i4"))]
    assert like(sent)([meta("x", "<i4", 12)]) is None and like(sent)([meta("x", "<i4", 16)])


def test_an_output_of_an_unknown_type_may_come_in_any_dtype_up_to_the_cap():
    check = outputs_bound([TensorInfo("s", "float32", ()), TensorInfo("b", "onnx-type-16", (4,))], 100, "m.onnx")
    assert check([meta("s", "<f4", 100), meta("b", "<u2", 8)]) is None
    assert "'b' (any dtype, up to 100 bytes)" in check([meta("b", "<u2", 101)])
