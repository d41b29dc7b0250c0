"""What the host needs to know about a model: I/O metadata, quantization scales, precision, hash."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .._text import file_sha256, missing_model, one_line
from ..compare.layout import Head, Layout
from ..errors import ModelError
from .dtypes import ONNX_TO_NUMPY
from .protoread import EXTERNAL, Graph, Node, Tensor, ValueInfo, read_graph

if TYPE_CHECKING:
    import onnx

_PASS_THROUGH = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Identity"}
#: ops whose output has the shape of their first input, element for element: a Concat behind them still
#: lays out the graph output (Q/DQ pairs and activations between a detector's Concat and its output)
_SAME_LAYOUT = {
    "DequantizeLinear",
    "QuantizeLinear",
    "Identity",
    "Sigmoid",
    "Relu",
    "Clip",
    "Tanh",
    "LeakyRelu",
    "HardSigmoid",
    "Exp",
    "Cast",
}
_QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
_QUANT_PRECISION = {"uint8": "u8", "uint16": "u16", "int8": "i8", "int16": "i16"}


@dataclass(frozen=True)
class TensorInfo:
    """One graph input or output."""

    name: str
    dtype: str  # numpy dtype name
    shape: Tuple[Union[int, str], ...]  # str for a dynamic dimension

    @property
    def is_static(self) -> bool:
        """True when every dimension is a number; a zero-length one (an empty ``axes`` input) is static too."""
        return self.static_dims is not None

    @cached_property
    def static_dims(self) -> Optional[Tuple[int, ...]]:
        """The shape as numbers where it is static, else None (worked out once: every run checks its feed)."""
        return tuple(int(d) for d in self.shape) if all(isinstance(d, int) and d >= 0 for d in self.shape) else None


@dataclass(frozen=True)
class QuantParams:
    """Scale/zero point of a quantized tensor and its integer type."""

    scale: float
    zero_point: int
    qtype: str  # numpy dtype name of the quantized type

    @property
    def value_range(self) -> Tuple[float, float]:
        info = np.iinfo(self.qtype)
        return ((info.min - self.zero_point) * self.scale, (info.max - self.zero_point) * self.scale)


@dataclass(frozen=True)
class ModelInfo:
    """Static facts about one ONNX model file."""

    path: Path
    sha256: str
    inputs: Tuple[TensorInfo, ...]
    outputs: Tuple[TensorInfo, ...]
    output_quant: Dict[str, QuantParams] = field(default_factory=dict)
    input_quant: Dict[str, QuantParams] = field(default_factory=dict)
    is_qdq: bool = False
    op_types: Tuple[str, ...] = ()
    output_depth: Dict[str, int] = field(default_factory=dict)
    external_data: Tuple[Tuple[str, str], ...] = ()  # (location relative to the model's folder, sha256)
    output_layout: Dict[str, Layout] = field(default_factory=dict)
    output_op: Dict[str, str] = field(default_factory=dict)  # the op computing it, behind Q/DQ and reshapes
    io_quantization: Dict[str, int] = field(default_factory=dict)  # graph-I/O (de)quantizing nodes by op type

    @cached_property
    def input_tensors(self) -> Dict[str, TensorInfo]:
        """The graph inputs by name (worked out once: every run checks its feed against them)."""
        return {tensor.name: tensor for tensor in self.inputs}

    @property
    def cache_id(self) -> str:
        """The model's identity in a device's cache: its sha256, or for a model with external data a
        hash over the model and every data file (a changed weights file is another model there)."""
        if not self.external_data:
            return self.sha256
        digest = hashlib.sha256(self.sha256.encode())
        for location, sha in self.external_data:
            digest.update(f"\0{location}\0{sha}".encode())
        return digest.hexdigest()

    def precision(self, output: str, float_as_fp16: bool) -> str:
        """Precision class of an output: u8/u16/i8/i16 (QDQ), fp16, fp32, int or bool."""
        info = {o.name: o for o in self.outputs}[output]
        quant = self.output_quant.get(output)
        if info.dtype == "bool":
            return "bool"
        if quant is not None:
            return _QUANT_PRECISION.get(quant.qtype, "u8")
        if np.issubdtype(np.dtype(info.dtype), np.integer):
            return "int"
        if self.is_qdq:
            return "u16" if self._dominant_activation() == "uint16" else "u8"
        if info.dtype == "float16" or float_as_fp16:
            return "fp16"
        return "fp32"

    def _dominant_activation(self) -> str:
        types = [q.qtype for q in self.output_quant.values()] + [q.qtype for q in self.input_quant.values()]
        return max(set(types), key=types.count) if types else "uint8"

    def depth(self, output: str) -> Optional[int]:
        """Requantizations (QuantizeLinear nodes) on the longest path from a graph input to ``output``;
        None for a model without QuantizeLinear."""
        return self.output_depth.get(output)

    def layout(self, output: str) -> Optional[Layout]:
        """The heads the graph concatenates into ``output`` (None: not a Concat of static heads)."""
        return self.output_layout.get(output)

    def computed_by(self, output: str) -> Optional[str]:
        """The op that computes ``output`` behind Q/DQ and reshapes (``Add`` of a bias after a MatMul/Gemm
        counts as that MatMul/Gemm): ``Softmax``, ``Gemm``, ``Conv``..."""
        return self.output_op.get(output)

    def shape(self, output: str) -> Tuple[Union[int, str], ...]:
        return {o.name: o for o in self.outputs}[output].shape

    def scale(self, output: str) -> Optional[float]:
        quant = self.output_quant.get(output)
        return None if quant is None else quant.scale


def _external_data(graph: Graph, path: Path) -> Tuple[Tuple[str, str], ...]:
    """The external data files of a model, each inside the model's folder, with their sha256."""
    tensors = list(graph.initializer) + [a.t for n in graph.node for a in n.attribute if a.t is not None]
    locations = sorted(
        {
            entry.value
            for t in tensors
            if t.data_location == EXTERNAL
            for entry in t.external_data
            if entry.key == "location"
        }
    )
    folder = path.parent.resolve()
    files = []
    for location in locations:
        target = (folder / location).resolve()
        if Path(location).is_absolute() or folder not in target.parents:
            raise ModelError(f"{path}: external data location {location!r} is outside the model's folder {folder}")
        if not target.is_file():
            raise ModelError(f"{path}: external data file {location!r} not found: {target}")
        files.append((Path(location).as_posix(), file_sha256(target)))
    return tuple(files)


def _requantization_depth(graph: Union[Graph, onnx.GraphProto]) -> Dict[str, int]:
    """Per tensor: the most QuantizeLinear nodes on any path from a graph input (nodes are topologically sorted)."""
    depth: Dict[str, int] = {}
    for node in graph.node:
        here = max((depth.get(name, 0) for name in node.input), default=0) + (node.op_type == "QuantizeLinear")
        for out in node.output:
            depth[out] = here
    return depth


#: a constant's values by tensor name (None: no constant of that name)
Constant = Callable[[str], Optional[np.ndarray]]


def tensor_quant(graph: Union[Graph, onnx.GraphProto], constant: Constant) -> Dict[str, QuantParams]:
    """Per tensor, the per-tensor scale/zero point of the QuantizeLinear that reads or writes it or the
    DequantizeLinear that writes it (the first such node in graph order wins)."""
    found: Dict[str, QuantParams] = {}
    for node in graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        params = _quant_params(node, constant)
        if params is None:
            continue
        names = (node.input[0], node.output[0]) if node.op_type == "QuantizeLinear" else (node.output[0],)
        for name in names:
            found.setdefault(name, params)
    return found


def _tensor_info(value: ValueInfo) -> TensorInfo:
    ttype = value.type.tensor_type
    dims = tuple(d.value if isinstance(d.value, int) else d.value or "?" for d in ttype.shape.dim)
    return TensorInfo(value.name, ONNX_TO_NUMPY.get(ttype.elem_type, f"onnx-type-{ttype.elem_type}"), dims)


def _quant_params(node: Union[Node, onnx.NodeProto], constant: Constant) -> Optional[QuantParams]:
    """Scale/zero point of a QuantizeLinear/DequantizeLinear node with per-tensor constants."""
    scale = constant(node.input[1]) if len(node.input) >= 2 else None
    if scale is None or scale.size != 1:
        return None
    zp = constant(node.input[2]) if len(node.input) > 2 else None
    if zp is not None:
        qtype, zero = zp.dtype.name, int(zp.reshape(-1)[0])
    else:
        qtype, zero = "uint8", 0
    return QuantParams(float(scale.reshape(-1)[0]), zero, qtype)


#: ops that move values without computing them: the op behind them computes the output
_CARRIERS = {"DequantizeLinear", "QuantizeLinear", "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast"}
_BIASED = {"MatMul", "Gemm"}

Shapes = Dict[str, Tuple[int, ...]]
Producers = Dict[str, Node]


#: the opset whose QuantizeLinear / DequantizeLinear take 16-bit types (ORT writes com.microsoft ones before it)
_QDQ16_OPSET = 21


def _inferable(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model``, or a copy with com.microsoft Q/DQ nodes (16-bit QDQ) in the ONNX domain at opset 21, which
    ONNX shape inference propagates through (it stops at a node of another domain)."""
    custom = [n for n in model.graph.node if n.domain == "com.microsoft" and n.op_type in _QDQ_OPS]
    if not custom:
        return model
    copy = type(model)()
    copy.CopyFrom(model)
    for node in copy.graph.node:
        if node.domain == "com.microsoft" and node.op_type in _QDQ_OPS:
            node.domain = ""
    for opset in copy.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = max(opset.version, _QDQ16_OPSET)
    return copy


def _static_shapes(path: Path) -> Shapes:
    """Static shapes of the graph's tensors, by ONNX shape inference (empty when it fails)."""
    import onnx  # only here: its import costs ~0.4 s (ml_dtypes), and only a Concat's layout needs it

    try:
        model = onnx.load(str(path), load_external_data=False)
        graph = onnx.shape_inference.infer_shapes(_inferable(model)).graph
    except Exception:  # a model ONNX cannot infer is judged without its layout, not refused
        return {}
    shapes = {}
    for value in (*graph.input, *graph.value_info, *graph.output):
        dims = value.type.tensor_type.shape.dim
        if value.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(int(d.dim_value) for d in dims)
    return shapes


def _behind(name: str, producers: Producers, axis: int) -> Tuple[Optional[Node], int]:
    """The first node behind ``name`` that is no same-layout op or Transpose, and where ``axis`` of
    ``name`` is in that node's output."""
    node = producers.get(name)
    while node is not None and (node.op_type in _SAME_LAYOUT or node.op_type == "Transpose"):
        if node.op_type == "Transpose":
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            if perm is None:
                return None, axis
            axis = perm[axis]
        node = producers.get(node.input[0])
    return node, axis


def _grid(name: str, producers: Producers, shapes: Shapes, axis: int) -> Optional[Tuple[int, int]]:
    """``(H, W)`` when ``axis`` of ``name`` is a Reshape's flattening of the last two axes ``H x W``."""
    node, axis = _behind(name, producers, axis)
    if node is None or node.op_type not in ("Reshape", "Flatten"):
        return None
    before, after = shapes.get(node.input[0]), shapes.get(node.output[0])
    if before is None or after is None or len(before) < 3 or axis != len(after) - 1:
        return None
    if tuple(before[:-2]) != tuple(after[:-1]) or before[-2] * before[-1] != after[-1]:
        return None
    return before[-2], before[-1]


def _layout(output: str, producers: Producers, shapes: Shapes) -> Optional[Layout]:
    """The heads of an output built by a Concat of static inputs (through Q/DQ, activations, Transposes)."""
    out_shape = shapes.get(output)
    if out_shape is None:
        return None
    for out_axis in range(len(out_shape)):
        node, axis = _behind(output, producers, out_axis)
        if node is None or node.op_type != "Concat":
            return None
        concat_axis = next((a.i for a in node.attribute if a.name == "axis"), 0) % len(out_shape)
        if axis != concat_axis:
            continue
        sizes = [shapes.get(i, ())[axis : axis + 1] for i in node.input]
        if not all(sizes) or len(sizes) < 2:
            return None
        heads, start = [], 0
        for part, (size,) in zip(node.input, sizes):
            heads.append(Head(start, start + size, _grid(part, producers, shapes, axis)))
            start += size
        return Layout(out_axis, tuple(heads), len(out_shape))
    return None


def _computing(name: str, producers: Producers) -> Optional[Node]:
    node = producers.get(name)
    while node is not None and node.op_type in _CARRIERS:
        node = producers.get(node.input[0])
    return node


def _computed_by(name: str, producers: Producers) -> Optional[str]:
    """The op computing ``name`` (see :meth:`ModelInfo.computed_by`)."""
    node = _computing(name, producers)
    if node is None:
        return None
    if node.op_type == "Add":
        inner = [_computing(i, producers) for i in node.input]
        return next((n.op_type for n in inner if n is not None and n.op_type in _BIASED), "Add")
    return node.op_type


@lru_cache(maxsize=64)
def _load(path_str: str, mtime_ns: int, size: int) -> ModelInfo:
    path = Path(path_str)
    try:
        graph = read_graph(path.read_bytes())
    except Exception as exc:
        raise ModelError(f"{path}: not a readable ONNX model ({one_line(exc, 200)})") from None
    inits: Dict[str, Tensor] = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.output and node.attribute and node.attribute[0].t is not None:
            inits.setdefault(node.output[0], node.attribute[0].t)

    def constant(name: str) -> Optional[np.ndarray]:
        return inits[name].to_array() if name in inits else None

    producers = {out: node for node in graph.node for out in node.output}
    consumers: Dict[str, List[Node]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    initializer_names = set(inits)
    inputs = tuple(_tensor_info(v) for v in graph.input if v.name not in initializer_names)
    outputs = tuple(_tensor_info(v) for v in graph.output)

    output_quant = {}
    for out in outputs:
        node = producers.get(out.name)
        while node is not None and node.op_type in _PASS_THROUGH:
            node = producers.get(node.input[0])
        if node is not None and node.op_type in ("DequantizeLinear", "QuantizeLinear"):
            params = _quant_params(node, constant)
            if params is not None:
                output_quant[out.name] = params
    input_quant = {}
    for inp in inputs:
        for node in consumers.get(inp.name, []):
            if node.op_type == "QuantizeLinear":
                params = _quant_params(node, constant)
                if params is not None:
                    input_quant[inp.name] = params
                    break
    op_types = tuple(sorted({n.op_type for n in graph.node}))
    is_qdq = "DequantizeLinear" in op_types or "QuantizeLinear" in op_types
    depth = _requantization_depth(graph) if "QuantizeLinear" in op_types else {}
    output_depth = {o.name: depth.get(o.name, 0) for o in outputs} if depth else {}
    output_layout = {}
    if "Concat" in op_types:
        shapes = _static_shapes(path)
        found = {o.name: _layout(o.name, producers, shapes) for o in outputs}
        output_layout = {name: layout for name, layout in found.items() if layout is not None}
    return ModelInfo(
        path,
        file_sha256(path),
        inputs,
        outputs,
        output_quant,
        input_quant,
        is_qdq,
        op_types,
        output_depth,
        _external_data(graph, path),
        output_layout,
        {o.name: op for o in outputs if (op := _computed_by(o.name, producers)) is not None},
        _io_quantization(inputs, outputs, producers, consumers),
    )


def _io_quantization(
    inputs: Sequence[TensorInfo],
    outputs: Sequence[TensorInfo],
    producers: Producers,
    consumers: Dict[str, List[Node]],
) -> Dict[str, int]:
    """How many QuantizeLinear nodes quantize a graph input and DequantizeLinear nodes dequantize into a graph
    output: what QNN offloads to the CPU by design while CPU fallback is on (``offload_graph_io_quantization``)."""
    quantize = sum(1 for i in inputs for n in consumers.get(i.name, []) if n.op_type == "QuantizeLinear")
    dequantize = sum(1 for o in outputs if (n := producers.get(o.name)) is not None and n.op_type == "DequantizeLinear")
    return {"QuantizeLinear": quantize, "DequantizeLinear": dequantize}


@lru_cache(maxsize=256)
def _resolved(joined: str, device: int, inode: int, mtime_ns: int, size: int) -> str:
    """The real path of ``joined``, once per file it names (a retargeted symlink names another inode)."""
    return str(Path(joined).resolve())


def model_info(path: Union[str, Path]) -> ModelInfo:
    """Read (and cache by real path, mtime and size) the facts about a model file; ModelError names the file.

    Each call costs one ``stat``: the real path is resolved again only when the file it names changed
    (fixtures ask for a model's facts several times per test)."""
    joined = os.fspath(path)  # not normalized: ``..`` after a symlink stays the kernel's to follow
    if not os.path.isabs(joined):
        joined = os.path.join(os.getcwd(), joined)
    try:
        stat = os.stat(joined)
    except OSError:
        raise ModelError(missing_model(Path(joined).resolve())) from None
    real = _resolved(joined, stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)
    return _load(real, stat.st_mtime_ns, stat.st_size)
