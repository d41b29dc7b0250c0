"""The QDQ model's own float yardstick: activation Q/DQ pairs removed, quantized weights kept."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from pytest_edgeort.model.info import model_info
from pytest_edgeort.model.yardstick import strip_activation_qdq, yardstick_model
from tests.support.models import conv_matmul_float, quantize_u8


def run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_the_yardstick_is_the_float_math_with_quantized_weights(tmp_path):
    float_path = conv_matmul_float(tmp_path / "f.onnx")
    qdq = quantize_u8(float_path, tmp_path / "q.onnx")
    info = model_info(qdq)
    yard = yardstick_model(qdq, info.sha256, tmp_path / "cache")
    assert yardstick_model(qdq, info.sha256, tmp_path / "cache") == yard  # cached
    model = onnx.load(str(yard))
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" not in ops and "DequantizeLinear" in ops  # the weights' dequantization stays
    assert [o.name for o in model.graph.output] == ["y"] and [i.name for i in model.graph.input] == ["x"]
    x = np.random.default_rng(0).uniform(0, 1, (8, 1, 3, 16, 16)).astype(np.float32)
    f, q, y = (np.stack([run(p, xi) for xi in x]) for p in (float_path, qdq, yard))
    scale = info.scale("y")
    rms = {name: float(np.sqrt(np.mean((v - f) ** 2))) for name, v in (("yardstick", y), ("qdq", q))}
    assert rms["yardstick"] < rms["qdq"], rms  # nearer the float model (the weights stay quantized)
    assert np.abs(q - y).max() > scale  # the activations' rounding is gone: more than one output step apart
    assert not np.array_equal(y, f)  # the weights are the quantized ones


def test_a_model_without_activation_pairs_is_unchanged(tmp_path):
    model = onnx.load(str(conv_matmul_float(tmp_path / "f.onnx")))
    assert strip_activation_qdq(model).graph.node == model.graph.node
