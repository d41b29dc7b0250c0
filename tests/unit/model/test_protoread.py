"""The host's protobuf reader reads every field ModelInfo uses exactly as onnx itself reads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_edgeort.model.info import QuantParams, model_info
from pytest_edgeort.model.protoread import DecodeError, Graph, read_graph
from tests.support.models import concat_heads, conv_matmul_qdq, deep_qdq_chain

ONNX_DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"


def _dims(value: onnx.ValueInfoProto) -> List[Any]:
    return [
        d.dim_value if d.HasField("dim_value") else d.dim_param if d.HasField("dim_param") else None
        for d in value.type.tensor_type.shape.dim
    ]


def _tensor_fields(t: Any) -> tuple:
    entries = [(e.key, e.value) for e in t.external_data]
    return (t.name, t.data_type, list(t.dims), t.data_location, entries)


def assert_reads_like_onnx(path: Path) -> None:
    model = onnx.load(str(path), load_external_data=False)
    ours: Graph = read_graph(path.read_bytes())
    graph = model.graph
    for mine, theirs in ((ours.input, graph.input), (ours.output, graph.output)):
        read = [(v.name, v.type.tensor_type.elem_type, [d.value for d in v.type.tensor_type.shape.dim]) for v in mine]
        assert read == [(v.name, v.type.tensor_type.elem_type, _dims(v)) for v in theirs]
    assert len(ours.node) == len(graph.node)
    for mine, theirs in zip(ours.node, graph.node):
        assert (mine.op_type, mine.domain, mine.input, mine.output) == (
            theirs.op_type,
            theirs.domain,
            list(theirs.input),
            list(theirs.output),
        )
        assert [(a.name, a.i, a.ints, a.t is not None) for a in mine.attribute] == [
            (a.name, a.i, list(a.ints), a.HasField("t")) for a in theirs.attribute
        ]
        for a, b in zip(mine.attribute, theirs.attribute):
            if a.t is not None:
                assert _tensor_fields(a.t) == _tensor_fields(b.t)
    assert [_tensor_fields(t) for t in ours.initializer] == [_tensor_fields(t) for t in graph.initializer]
    for mine, theirs in zip(ours.initializer, graph.initializer):
        if theirs.data_location != TensorProto.EXTERNAL and np.prod(theirs.dims) <= 100_000:
            expected, got = numpy_helper.to_array(theirs), mine.to_array()
            assert got.dtype == expected.dtype and got.shape == expected.shape, theirs.name
            assert got.tobytes() == expected.tobytes(), theirs.name  # bit for bit (NaN payloads too)


def _onnx_data_models() -> List[Path]:
    return sorted(p for p in ONNX_DATA.rglob("*.onnx") if p.stat().st_size < 2_000_000)


def test_onnx_wheel_models_read_as_onnx_reads_them():
    models = _onnx_data_models()
    assert len(models) > 100
    for path in models:
        assert_reads_like_onnx(path)


def test_quantized_test_models_read_as_onnx_reads_them(tmp_path):
    for path in (conv_matmul_qdq(tmp_path), deep_qdq_chain(tmp_path), concat_heads(tmp_path / "heads.onnx")):
        assert_reads_like_onnx(path)


def _odd_encodings_model(path: Path) -> Path:
    """Typed (not raw) data fields, a float16 scale, negative and named and empty dims, a non-tensor input,
    a Constant scale, a bfloat16 and an int4 initializer (left to onnx)."""
    scale16 = helper.make_tensor("s16", TensorProto.FLOAT16, [], [0.25])  # int32_data holds the bits
    zp8 = helper.make_tensor("z8", TensorProto.INT8, [], [-3])  # a negative varint in int32_data
    big64 = helper.make_tensor("i64", TensorProto.INT64, [3], [-(2**40), 0, 7])
    u64 = helper.make_tensor("u64", TensorProto.UINT64, [2], [2**63 + 5, 1])
    dbl = helper.make_tensor("f64", TensorProto.DOUBLE, [2], [1.5, -2.25])
    bf16 = helper.make_tensor("bf", TensorProto.BFLOAT16, [2], [1.0, 2.0])
    int4 = helper.make_tensor("i4", TensorProto.INT4, [3], [-1, 2, 7])
    boolean = helper.make_tensor("b", TensorProto.BOOL, [2], [True, False])
    constant = helper.make_node("Constant", [], ["cs"], value=helper.make_tensor("v", TensorProto.FLOAT, [], [0.5]))
    nodes = [
        constant,
        helper.make_node("QuantizeLinear", ["x", "cs", "z8"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "cs", "z8"], ["y"]),
        helper.make_node("Transpose", ["y"], ["t"], perm=[1, 0]),
    ]
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
        helper.make_tensor_value_info("n", TensorProto.FLOAT, [-1, None]),
        helper.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, [2]),
    ]
    outputs = [helper.make_tensor_value_info("t", TensorProto.FLOAT, [4, "batch"])]
    graph = helper.make_graph(nodes, "odd", inputs, outputs, [scale16, zp8, big64, u64, dbl, bf16, int4, boolean])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), str(path))
    return path


def test_typed_fields_and_odd_types_read_as_onnx_reads_them(tmp_path):
    path = _odd_encodings_model(tmp_path / "odd.onnx")
    assert_reads_like_onnx(path)
    info = model_info(path)
    assert [(i.name, i.dtype, i.shape) for i in info.inputs][:2] == [
        ("x", "float32", ("batch", 4)),
        ("n", "float32", (-1, "?")),
    ]
    params = QuantParams(0.5, -3, "int8")  # the Constant's scale, the int8 zero point from int32_data
    assert (info.input_quant, info.output_quant) == ({"x": params}, {"t": params})  # through the Transpose


def test_external_data_reads_as_onnx_reads_it(tmp_path):
    weight = numpy_helper.from_array(np.arange(4096, dtype=np.float32).reshape(64, 64), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "ext",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        [weight],
    )
    path = tmp_path / "ext.onnx"
    onnx.save(helper.make_model(graph), str(path), save_as_external_data=True, location="ext.bin")
    assert_reads_like_onnx(path)
    assert [location for location, _ in model_info(path).external_data] == ["ext.bin"]


def test_bytes_that_are_no_protobuf_are_refused():
    with pytest.raises(DecodeError):
        read_graph(b"\x3a\xff\xff")  # field 7 (the graph) longer than the bytes
    with pytest.raises(DecodeError):
        read_graph(b"\x0b")  # wire type 3 (a group): no ONNX field has one


def test_model_info_follows_the_file_a_path_names_now(tmp_path, monkeypatch):
    """The cache behind ``model_info`` (one stat per call) notices a retargeted symlink, a file rewritten in
    place and a relative path read from another directory, and reports the real path."""
    qdq = conv_matmul_qdq(tmp_path)
    other = deep_qdq_chain(tmp_path)
    link = tmp_path / "model.onnx"
    link.symlink_to(qdq.name)
    first = model_info(link)
    assert (first.path, first.sha256) == (qdq, model_info(qdq).sha256)
    link.unlink()
    link.symlink_to(other.name)
    assert (model_info(link).path, model_info(link).sha256) == (other, model_info(other).sha256)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder, model in (("a", qdq), ("b", other)):
        (tmp_path / folder / "m.onnx").write_bytes(model.read_bytes())
    for folder, model in (("a", qdq), ("b", other)):
        monkeypatch.chdir(tmp_path / folder)
        assert model_info("m.onnx").sha256 == model_info(model).sha256
    rewritten = tmp_path / "a" / "m.onnx"
    rewritten.write_bytes(other.read_bytes())
    assert model_info(rewritten).sha256 == model_info(other).sha256
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()  # a test that removed its working directory still reads models by absolute path
    assert model_info(qdq).path == qdq
