"""Small real ONNX models built for the tests (float, u8 QDQ via onnxruntime.quantization, Det), and
fault-injected variants."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator, Mapping, Optional, Tuple, Union

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 9
# ("add", offset in output LSB: scalar or array broadcastable to the output) or ("mul", gain)
Fault = Tuple[str, Union[int, np.ndarray, float]]


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def conv_matmul_float(path: Path, seed: int = 0, batch: int | str = 1) -> Path:
    """x[1,3,16,16] -> Conv(8,3x3) -> Relu -> Conv(8, 3x3, stride 2) -> Relu -> Flatten -> MatMul -> y[1,10]."""
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32)
    b1 = (rng.standard_normal(8) * 0.05).astype(np.float32)
    w2 = (rng.standard_normal((8, 8, 3, 3)) * 0.15).astype(np.float32)
    b2 = (rng.standard_normal(8) * 0.05).astype(np.float32)
    wm = (rng.standard_normal((8 * 8 * 8, 10)) * 0.05).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Flatten", ["r2"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "wm"], ["y"], name="matmul"),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"), (wm, "wm"))],
    )
    return _save(graph, path)


class _Calibration:
    def __init__(self, shape: Tuple[int, ...] = (1, 3, 16, 16), count: int = 16) -> None:
        rng = np.random.default_rng(123)
        self._feeds: Iterator = iter([{"x": rng.random(shape, dtype=np.float32)} for _ in range(count)])

    def get_next(self) -> Optional[dict]:
        return next(self._feeds, None)


def quantize_u8(float_path: Path, path: Path, shape: Tuple[int, ...] = (1, 3, 16, 16)) -> Path:
    """Static QDQ quantization, uint8 activations and weights (what QNN HTP runs), calibrated on random
    inputs ``x`` of ``shape``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(_Calibration, CalibrationDataReader):
        pass

    quantize_static(
        str(float_path),
        str(path),
        Reader(shape),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QUInt8,
    )
    return path


def conv_matmul_qdq(directory: Path) -> Path:
    """The u8 QDQ conv/matmul model (its float model lies beside it as conv_matmul.onnx)."""
    float_path = conv_matmul_float(directory / "conv_matmul.onnx")
    return quantize_u8(float_path, directory / "conv_matmul_qdq.onnx")


def with_changed_channel(qdq_path: Path, path: Path, weight: str = "w1", channel: int = 2) -> Path:
    """Copy of a QDQ model with one output channel of a quantized conv weight replaced (a real error)."""
    model = onnx.load(str(qdq_path))
    for init in model.graph.initializer:
        if (
            init.name.startswith(weight)
            and init.data_type in (TensorProto.UINT8, TensorProto.INT8)
            and len(init.dims) == 4
        ):
            array = numpy_helper.to_array(init).copy()
            info = np.iinfo(array.dtype)
            array[channel] = info.max - array[channel] + info.min  # mirrored weights: a wrong channel
            init.CopyFrom(numpy_helper.from_array(array, init.name))
            break
    else:
        raise ValueError(f"no quantized weight {weight!r} in {qdq_path}")
    onnx.save(model, str(path))
    return path


def det_model(path: Path, neighbours: bool = True, det: bool = True) -> Path:
    """x[1,4,4] -> Mul(2) -> Det -> Add(1) -> y[1]: QNN has no Det, so that node must fall back to CPU.

    ``neighbours=False`` keeps only the Det node: nothing in the graph can run on QNN. ``det=False``: the same
    graph with ReduceSum over axes 1, 2 in Det's place, which QNN runs (the variant before an op moved to CPU).
    """
    middle = (
        helper.make_node("Det", ["m"], ["d"], name="det_node")
        if det
        else helper.make_node("ReduceSum", ["m", "axes"], ["d"], name="det_node", keepdims=0)
    )
    if neighbours:
        nodes = [
            helper.make_node("Mul", ["x", "two"], ["m"], name="scale"),
            middle,
            helper.make_node("Add", ["d", "one"], ["y"], name="shift"),
        ]
    else:
        nodes = [helper.make_node("Det", ["x"], ["y"], name="det_node")]
    graph = helper.make_graph(
        nodes,
        "det",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [
            numpy_helper.from_array(np.array(2.0, np.float32), "two"),
            numpy_helper.from_array(np.array(1.0, np.float32), "one"),
            *([] if det else [numpy_helper.from_array(np.array([1, 2], np.int64), "axes")]),
        ],
    )
    return _save(graph, path)


def all_dtypes_identity(path: Path) -> Path:
    """One Identity per tensor type model I/O can have: for protocol round-trip tests."""
    types = {
        "f32": TensorProto.FLOAT,
        "f16": TensorProto.FLOAT16,
        "i8": TensorProto.INT8,
        "i16": TensorProto.INT16,
        "i32": TensorProto.INT32,
        "i64": TensorProto.INT64,
        "u8": TensorProto.UINT8,
        "u16": TensorProto.UINT16,
        "b": TensorProto.BOOL,
    }
    nodes = [helper.make_node("Identity", [f"in_{k}"], [f"out_{k}"], name=f"id_{k}") for k in types]
    graph = helper.make_graph(
        nodes,
        "identities",
        [helper.make_tensor_value_info(f"in_{k}", t, [2, 3]) for k, t in types.items()],
        [helper.make_tensor_value_info(f"out_{k}", t, [2, 3]) for k, t in types.items()],
    )
    return _save(graph, path)


def with_output_faults(
    qdq_path: Path, path: Path, output: str, faults: Mapping[str, Fault], keep_original: bool = True
) -> Path:
    """Copy of a QDQ model with one extra output per fault: ``<output>_<name>``, a copy of ``output`` with the
    fault applied in front of a final QuantizeLinear of the output's own scale and zero point.
    ``keep_original=False`` (one fault only): the faulty tensor replaces ``output`` under its name.

    A fault is ``("add", lsb)`` -- an integer offset in output LSB, a scalar or an array broadcastable to the
    output shape (one element, one channel, a region) -- or ``("mul", gain)``. Offsets are exact: the added
    constant is quantized with the output's scale, so ``add`` moves every element by exactly that many LSB
    (saturating at the integer range), on the CPU EP and on QNN HTP alike.
    """
    model = onnx.load(str(qdq_path))
    graph = model.graph
    dq = next(n for n in graph.node if output in n.output)
    if dq.op_type != "DequantizeLinear":
        raise ValueError(f"{qdq_path}: output {output!r} is not produced by a DequantizeLinear")
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    scale_name, zp_name = dq.input[1], dq.input[2]
    out_info = next(o for o in graph.output if o.name == output)
    for name, fault in faults.items():
        tag = f"{output}_{name}"
        graph.initializer.extend(_fault_constants(tag, fault, inits, scale_name, zp_name))
        graph.node.extend(_fault_nodes(output, tag, fault[0], scale_name, zp_name))
        info = onnx.ValueInfoProto()
        info.CopyFrom(out_info)
        info.name = tag
        graph.output.append(info)
    if not keep_original:
        if len(faults) != 1:
            raise ValueError("keep_original=False needs exactly one fault")
        _rename_output(graph, output, f"{output}_{next(iter(faults))}")
    onnx.save(model, str(path))
    return path


def _fault_constants(tag: str, fault: Fault, inits: Mapping[str, np.ndarray], scale_name: str, zp_name: str) -> list:
    """The quantized constant of a fault (see :func:`with_output_faults`), its scale and zero point."""
    kind, value = fault
    qtype = inits[zp_name].dtype
    if kind == "add":
        lsb = np.asarray(value, dtype=np.int64)
        zero = -min(int(lsb.min()), 0)
        if int(lsb.max()) + zero > np.iinfo(qtype).max:
            raise ValueError(f"fault {tag!r}: offsets span more than the {qtype} range")
        return [
            numpy_helper.from_array((lsb + zero).astype(qtype), f"{tag}_q"),
            numpy_helper.from_array(inits[scale_name], f"{tag}_scale"),
            numpy_helper.from_array(np.array(zero, qtype), f"{tag}_zp"),
        ]
    if kind == "mul":
        top = np.iinfo(qtype).max
        return [
            numpy_helper.from_array(np.array(top, qtype), f"{tag}_q"),
            numpy_helper.from_array(np.array(value / top, np.float32), f"{tag}_scale"),
            numpy_helper.from_array(np.array(0, qtype), f"{tag}_zp"),
        ]
    raise ValueError(f"fault {tag!r}: kind must be 'add' or 'mul', got {kind!r}")


def _fault_nodes(source: str, tag: str, kind: str, scale_name: str, zp_name: str) -> list:
    """``source`` (+ or x) the fault's constant, requantized with ``source``'s own scale into tensor ``tag``."""
    constant = [f"{tag}_q", f"{tag}_scale", f"{tag}_zp"]
    return [
        helper.make_node("DequantizeLinear", constant, [f"{tag}_c"], name=f"{tag}_dq_c"),
        helper.make_node("Add" if kind == "add" else "Mul", [source, f"{tag}_c"], [f"{tag}_f"], name=f"{tag}_op"),
        helper.make_node("QuantizeLinear", [f"{tag}_f", scale_name, zp_name], [f"{tag}_fq"], name=f"{tag}_q"),
        helper.make_node("DequantizeLinear", [f"{tag}_fq", scale_name, zp_name], [tag], name=f"{tag}_dq"),
    ]


def deep_conv_chain(path: Path, layers: int = 12, channels: int = 4, size: int = 8, seed: int = 3) -> Path:
    """x[1,C,S,S] -> ``layers`` x (Conv 3x3 ``conv<i>`` -> Relu ``relu<i>``) -> y: a deep float chain."""
    rng = np.random.default_rng(seed)
    nodes, inits, source = [], [], "x"
    for i in range(1, layers + 1):
        w = (rng.standard_normal((channels, channels, 3, 3)) * (1.0 / (3 * np.sqrt(channels)))).astype(np.float32)
        b = (rng.standard_normal(channels) * 0.05 + 0.05).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        out = "y" if i == layers else f"r{i}"
        nodes += [
            helper.make_node("Conv", [source, f"w{i}", f"b{i}"], [f"c{i}"], name=f"conv{i}", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", [f"c{i}"], [out], name=f"relu{i}"),
        ]
        source = out
    shape = [1, channels, size, size]
    graph = helper.make_graph(
        nodes,
        "deep_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        inits,
    )
    return _save(graph, path)


def deep_qdq_chain(directory: Path, layers: int = 12) -> Path:
    """The u8 QDQ version of :func:`deep_conv_chain` (calibrated on random inputs), its float model beside it."""
    float_path = deep_conv_chain(directory / "deep_chain.onnx", layers)
    shape = tuple(d.dim_value for d in onnx.load(str(float_path)).graph.input[0].type.tensor_type.shape.dim)
    return quantize_u8(float_path, directory / "deep_chain_qdq.onnx", shape)


def with_inner_fault(qdq_path: Path, path: Path, tensor: str, fault: Fault) -> Path:
    """Copy of a QDQ model with ``fault`` (see :func:`with_output_faults`) applied to the inner dequantized
    tensor ``tensor``: a new Add/Mul node ``<tensor>_fault_op`` and its own Q/DQ pair, whose output takes the
    name ``tensor`` (the original becomes ``<tensor>_healthy``), so every later node reads the faulty value."""
    model = onnx.load(str(qdq_path))
    graph = model.graph
    position, dq = next((i, n) for i, n in enumerate(graph.node) if tensor in n.output)
    if dq.op_type != "DequantizeLinear":
        raise ValueError(f"{qdq_path}: tensor {tensor!r} is not produced by a DequantizeLinear")
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    tag, healthy = f"{tensor}_fault", f"{tensor}_healthy"
    dq.output[:] = [healthy]
    graph.initializer.extend(_fault_constants(tag, fault, inits, dq.input[1], dq.input[2]))
    nodes = _fault_nodes(healthy, tag, fault[0], dq.input[1], dq.input[2])
    nodes[-1].output[:] = [tensor]
    for offset, node in enumerate(nodes, 1):
        graph.node.insert(position + offset, node)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _rename_output(graph: onnx.GraphProto, output: str, replacement: str) -> None:
    """Drop graph output ``output`` and publish tensor ``replacement`` under that name."""
    internal = f"{output}_healthy"
    for node in graph.node:
        node.input[:] = [internal if i == output else i for i in node.input]
        node.output[:] = [internal if o == output else output if o == replacement else o for o in node.output]
    info = next(o for o in graph.output if o.name == output)
    kept = [o for o in graph.output if o.name not in (output, replacement)]
    del graph.output[:]
    graph.output.extend([info] + kept)


def concat_heads(
    path: Path, anchors_last: bool = True, grids: Tuple[int, ...] = (8, 4, 2), channels: int = 4, u16: bool = False
) -> Path:
    """A detector's output tail: x[1, C, 8, 8] pooled to ``grids`` (8x8, 4x4, 2x2), each Reshape'd to
    ``[1, C, H*W]``, Concat'ed along the anchors and quantized (Q/DQ) into y: ``[1, C, 84]``, or with
    ``anchors_last=False`` Transpose'd to ``[1, 84, C]`` before the Concat (YOLOX style). ``u16``: 16-bit
    Q/DQ of the com.microsoft domain, as onnxruntime's quantizer writes them below opset 21."""
    size = grids[0]
    nodes, heads, inits = [], [], [numpy_helper.from_array(np.array(1 / 64, np.float32), "s")]
    inits.append(numpy_helper.from_array(np.array(128, np.uint16 if u16 else np.uint8), "z"))
    domain = "com.microsoft" if u16 else ""
    for g in grids:
        k = size // g
        pooled = "x" if k == 1 else f"p{g}"
        if k > 1:
            nodes.append(helper.make_node("AveragePool", ["x"], [pooled], kernel_shape=[k, k], strides=[k, k]))
        inits.append(numpy_helper.from_array(np.array([1, channels, g * g], np.int64), f"shape{g}"))
        nodes.append(helper.make_node("Reshape", [pooled, f"shape{g}"], [f"flat{g}"]))
        head = f"flat{g}"
        if not anchors_last:
            nodes.append(helper.make_node("Transpose", [head], [f"t{g}"], perm=[0, 2, 1]))
            head = f"t{g}"
        nodes += [  # every head quantized before the Concat, as in a QDQ model
            helper.make_node("QuantizeLinear", [head, "s", "z"], [f"{head}_q"], domain=domain),
            helper.make_node("DequantizeLinear", [f"{head}_q", "s", "z"], [f"{head}_dq"], domain=domain),
        ]
        heads.append(f"{head}_dq")
    nodes += [
        helper.make_node("Concat", heads, ["cat"], axis=2 if anchors_last else 1),
        helper.make_node("QuantizeLinear", ["cat", "s", "z"], ["q"], domain=domain),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], domain=domain),
    ]
    anchors = sum(g * g for g in grids)
    out = [1, channels, anchors] if anchors_last else [1, anchors, channels]
    graph = helper.make_graph(
        nodes,
        "heads",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)],
        inits,
    )
    if not u16:
        return _save(graph, path)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)]
    )
    model.ir_version = IR_VERSION
    onnx.save(model, str(path))
    return path


def conv_chain_float(path: Path, layers: int = 10, seed: int = 3) -> Path:
    """x[1,3,16,16] -> ``layers`` x (Conv 3x3 -> Relu) -> y[1,3,16,16]: quantized, a deep output (``layers`` + 1
    requantizations)."""
    rng = np.random.default_rng(seed)
    nodes, inits, prev = [], [], "x"
    for i in range(layers):
        w = (rng.standard_normal((3, 3, 3, 3)) * 0.1 + np.eye(3)[:, :, None, None] * 0.4).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(np.zeros(3, np.float32), f"b{i}")]
        out = "y" if i == layers - 1 else f"r{i}"
        nodes += [
            helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", [f"c{i}"], [out]),
        ]
        prev = out
    graph = helper.make_graph(
        nodes,
        "conv_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 16, 16])],
        inits,
    )
    return _save(graph, path)


def float_atan(path: Path) -> Path:
    """x[1,16] -> Atan -> y[1,16], float: QNN's HTP accepts the node but cannot finalize the graph (MEM_ALLOC)."""
    graph = helper.make_graph(
        [helper.make_node("Atan", ["x"], ["y"], name="atan")],
        "float_atan",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
    )
    return _save(graph, path)


def det_chain(path: Path, steps: int = 5) -> Path:
    """x[1,2,4,4] -> Det ``det`` (QNN has none: on CPU) -> ``steps`` x Mul/Add by constants (``op<i>``) -> y[1,2]:
    a float chain whose first prefix QNN takes no node of."""
    nodes = [helper.make_node("Det", ["x"], ["d"], name="det")]
    inits, source = [], "d"
    for i in range(1, steps + 1):
        out = "y" if i == steps else f"t{i}"
        inits.append(numpy_helper.from_array(np.array([1.0 + 0.1 * i, 0.5], np.float32), f"k{i}"))
        nodes.append(helper.make_node("Mul" if i % 2 else "Add", [source, f"k{i}"], [out], name=f"op{i}"))
        source = out
    graph = helper.make_graph(
        nodes,
        "det_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        inits,
    )
    return _save(graph, path)


def with_float_fault(model_path: Path, path: Path, tensor: str, offset: float) -> Path:
    """Copy of a float model with ``offset`` added to tensor ``tensor`` by a new Add node ``<tensor>_fault``,
    whose output takes the name ``tensor`` (the original becomes ``<tensor>_healthy``)."""
    model = onnx.load(str(model_path))
    graph = model.graph
    position, node = next((i, n) for i, n in enumerate(graph.node) if tensor in n.output)
    healthy = f"{tensor}_healthy"
    node.output[:] = [healthy if o == tensor else o for o in node.output]
    graph.initializer.append(numpy_helper.from_array(np.array(offset, np.float32), f"{tensor}_offset"))
    fault = helper.make_node("Add", [healthy, f"{tensor}_offset"], [tensor], name=f"{tensor}_fault")
    graph.node.insert(position + 1, fault)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def quantizing_suite(folder: Path, float_model: Path, checks: str) -> Path:
    """``folder/edge_suite.toml`` whose ``[prepare]`` quantizes ``float_model`` (copied in as m.onnx) to u8
    QDQ with a calib.npz of 8 seeded examples, for qnn-htp; ``checks``: the ``[checks]`` lines."""
    folder.mkdir()
    shutil.copyfile(float_model, folder / "m.onnx")
    np.savez(folder / "calib.npz", x=np.random.default_rng(7).random((8, 1, 3, 16, 16), dtype=np.float32))
    (folder / "edge_suite.toml").write_text(
        'model = "m.onnx"\nproviders = ["qnn-htp"]\n'
        '[prepare]\nquantize = {activations = "uint8", weights = "uint8", calibration = "calib.npz"}\n'
        f"[checks]\n{checks}\n"
    )
    return folder / "edge_suite.toml"
