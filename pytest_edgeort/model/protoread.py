"""The fields of an ONNX model the host reads (graph I/O, nodes, initializers), decoded straight from the
protobuf wire format: importing onnx costs ~0.4 s a run (most of it ml_dtypes), more than the plugin's
whole per-run overhead. Field numbers are onnx.proto's; names mirror onnx's classes."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from .dtypes import ONNX_TO_NUMPY

Buffer = Union[bytes, memoryview]
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


class DecodeError(ValueError):
    """The bytes are not a protobuf message (a truncated or foreign file)."""


def _varint(data: Buffer, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise DecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise DecodeError("varint longer than 10 bytes")


def _signed(value: int) -> int:
    """A varint as int64 (negative numbers are sent as their 64-bit two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def fields(data: Buffer) -> Iterator[Tuple[int, int, Union[int, memoryview]]]:
    """``(field number, wire type, value)`` of each field of one message: an int for varints and fixed
    widths (their raw bits), a memoryview for length-delimited fields."""
    data = memoryview(data)
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _varint(data, pos)
        elif wire == _LENGTH:
            size, pos = _varint(data, pos)
            if pos + size > end:
                raise DecodeError(f"field {number}: {size} bytes past the end of the message")
            value, pos = data[pos : pos + size], pos + size
        elif wire in (_FIXED64, _FIXED32):
            width = 8 if wire == _FIXED64 else 4
            if pos + width > end:
                raise DecodeError(f"field {number}: truncated fixed-width value")
            value, pos = int.from_bytes(data[pos : pos + width], "little"), pos + width
        else:
            raise DecodeError(f"field {number}: unsupported wire type {wire}")
        if number == 0:
            raise DecodeError("field number 0")
        yield number, wire, value


Value = Union[int, memoryview]
_SKIP = object()  # a field sent with another wire type than its declared one: protobuf skips it too


def _text(wire: int, value: Value) -> Any:
    return bytes(value).decode("utf-8") if isinstance(value, memoryview) else _SKIP


def _int(wire: int, value: Value) -> Any:
    return _signed(value) if wire == _VARINT else _SKIP


def _ints(wire: int, value: Value) -> Any:
    """The int64 values of one occurrence of a repeated integer field, packed or not."""
    if wire == _VARINT:
        return [_signed(value)]
    if not isinstance(value, memoryview):
        return _SKIP
    out, pos = [], 0
    while pos < len(value):
        item, pos = _varint(value, pos)
        out.append(_signed(item))
    return out


def _message(kind: type) -> Callable[[int, Value], Any]:
    return lambda wire, value: kind.parse(value) if isinstance(value, memoryview) else _SKIP


class _Message:
    """A message of the fields in ``FIELDS`` (field number -> attribute, reader); every other field is
    skipped. A list attribute collects a repeated field (a reader's list is one packed occurrence)."""

    FIELDS: ClassVar[Dict[int, Tuple[str, Callable[[int, Value], Any]]]] = {}

    @classmethod
    def parse(cls, data: Buffer) -> Any:
        message = cls()
        for number, wire, value in fields(data):
            if number not in cls.FIELDS:
                continue
            name, read = cls.FIELDS[number]
            item = read(wire, value)
            current = getattr(message, name)
            if item is _SKIP:
                continue
            if isinstance(current, list):
                current.extend(item) if isinstance(item, list) else current.append(item)
            else:
                setattr(message, name, item)
        return message


@dataclass
class StringStringEntry(_Message):
    key: str = ""
    value: str = ""


StringStringEntry.FIELDS = {1: ("key", _text), 2: ("value", _text)}


@dataclass
class Tensor(_Message):
    """A TensorProto: its metadata decoded, its data kept as the message's bytes until :meth:`to_array`."""

    name: str = ""
    data_type: int = 0
    dims: List[int] = field(default_factory=list)
    data_location: int = 0
    external_data: List[StringStringEntry] = field(default_factory=list)
    message: Buffer = b""

    @classmethod
    def parse(cls, data: Buffer) -> Tensor:
        tensor = super().parse(data)
        tensor.message = data
        return tensor

    def to_array(self) -> np.ndarray:
        """The tensor's values, as ``onnx.numpy_helper.to_array`` gives them; element types without a plain
        numpy dtype (bfloat16, float8, 4-bit, strings) and external data are left to onnx itself."""
        dtype = ONNX_TO_NUMPY.get(self.data_type)
        if dtype is None or self.data_location == EXTERNAL:
            return _onnx_array(self.message)
        raw: Optional[memoryview] = None
        values: List[Union[int, float]] = []
        typed = _TYPED_FIELD[dtype]
        for number, wire, value in fields(self.message):
            if number == 9 and isinstance(value, memoryview):
                raw = value
            elif number == typed:
                values.extend(_typed_values(dtype, wire, value))
        if raw is not None:
            return np.frombuffer(bytes(raw), dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(self.dims)
        if dtype == "float16":  # int32_data holds the half floats' bit patterns
            return np.asarray(values, dtype=np.uint16).view(np.float16).reshape(self.dims)
        return np.asarray(values, dtype=dtype).reshape(self.dims)


#: the TensorProto field that holds each numpy dtype's values when raw_data is absent
_TYPED_FIELD = {
    "float32": 4,
    "uint8": 5,
    "int8": 5,
    "uint16": 5,
    "int16": 5,
    "int32": 5,
    "bool": 5,
    "float16": 5,
    "int64": 7,
    "float64": 10,
    "uint32": 11,
    "uint64": 11,
}


def _typed_values(dtype: str, wire: int, value: Value) -> List[Union[int, float]]:
    """The values of one occurrence of a typed data field (float_data, int32_data, ...), packed or not."""
    if dtype in ("float32", "float64"):
        fmt, single = ("<f", _FIXED32) if dtype == "float32" else ("<d", _FIXED64)
        if isinstance(value, memoryview):
            return [item for (item,) in struct.iter_unpack(fmt, value)]
        return [struct.unpack(fmt, value.to_bytes(struct.calcsize(fmt), "little"))[0]] if wire == single else []
    items = _ints(wire, value)
    if items is _SKIP:
        return []
    return [item & 0xFFFFFFFFFFFFFFFF for item in items] if dtype in ("uint32", "uint64") else items


def _onnx_array(message: Buffer) -> np.ndarray:
    import onnx
    from onnx import numpy_helper

    return numpy_helper.to_array(onnx.TensorProto.FromString(bytes(message)))


Tensor.FIELDS = {
    1: ("dims", _ints),
    2: ("data_type", _int),
    8: ("name", _text),
    13: ("external_data", _message(StringStringEntry)),
    14: ("data_location", _int),
}


@dataclass
class Attribute(_Message):
    name: str = ""
    i: int = 0
    ints: List[int] = field(default_factory=list)
    t: Optional[Tensor] = None


Attribute.FIELDS = {1: ("name", _text), 3: ("i", _int), 5: ("t", _message(Tensor)), 8: ("ints", _ints)}


@dataclass
class Node(_Message):
    op_type: str = ""
    domain: str = ""
    input: List[str] = field(default_factory=list)
    output: List[str] = field(default_factory=list)
    attribute: List[Attribute] = field(default_factory=list)


Node.FIELDS = {
    1: ("input", _text),
    2: ("output", _text),
    4: ("op_type", _text),
    5: ("attribute", _message(Attribute)),
    7: ("domain", _text),
}


@dataclass
class Dimension(_Message):
    """One dimension: ``value`` is its dim_value (int) or dim_param (str), None when it has neither."""

    value: Union[int, str, None] = None


Dimension.FIELDS = {1: ("value", _int), 2: ("value", _text)}  # a oneof: the last one sent wins


@dataclass
class Shape(_Message):
    dim: List[Dimension] = field(default_factory=list)


Shape.FIELDS = {1: ("dim", _message(Dimension))}


@dataclass
class TensorType(_Message):
    """TypeProto.Tensor."""

    elem_type: int = 0
    shape: Shape = field(default_factory=Shape)


TensorType.FIELDS = {1: ("elem_type", _int), 2: ("shape", _message(Shape))}


@dataclass
class TypeInfo(_Message):
    """A TypeProto: its tensor_type (an empty one for other types, as onnx reads it)."""

    tensor_type: TensorType = field(default_factory=TensorType)


TypeInfo.FIELDS = {1: ("tensor_type", _message(TensorType))}


@dataclass
class ValueInfo(_Message):
    """A graph input or output."""

    name: str = ""
    type: TypeInfo = field(default_factory=TypeInfo)


ValueInfo.FIELDS = {1: ("name", _text), 2: ("type", _message(TypeInfo))}


@dataclass
class Graph(_Message):
    node: List[Node] = field(default_factory=list)
    initializer: List[Tensor] = field(default_factory=list)
    input: List[ValueInfo] = field(default_factory=list)
    output: List[ValueInfo] = field(default_factory=list)


Graph.FIELDS = {
    1: ("node", _message(Node)),
    5: ("initializer", _message(Tensor)),
    11: ("input", _message(ValueInfo)),
    12: ("output", _message(ValueInfo)),
}


@dataclass
class _Model(_Message):
    graph: List[Graph] = field(default_factory=list)


_Model.FIELDS = {7: ("graph", _message(Graph))}


def read_graph(data: Buffer) -> Graph:
    """The main graph of a serialized ModelProto (an empty one when it has none, as onnx reads it);
    DecodeError when the bytes are no protobuf message."""
    graph = Graph()
    for part in _Model.parse(data).graph:  # a message field sent more than once is merged: its lists add up
        for name in ("node", "initializer", "input", "output"):
            getattr(graph, name).extend(getattr(part, name))
    return graph
