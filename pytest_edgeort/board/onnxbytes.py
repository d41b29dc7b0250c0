"""ONNX ModelProto bytes of one-node graphs, written by hand: the board has no onnx package."""

FLOAT, INT32 = 1, 6  # TensorProto element types


def _varint(n):
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if not n:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def _int(field, value):
    return _varint(field << 3) + _varint(value)


def _bytes(field, data):
    data = data if isinstance(data, bytes) else data.encode("utf-8")
    return _varint((field << 3) | 2) + _varint(len(data)) + data


def one_node_model(op, elem_type, n):
    """``y = op(x, x)`` with x and y of ``elem_type`` and shape [n], opset 13."""

    def value_info(name):
        tensor = _int(1, elem_type) + _bytes(2, _bytes(1, _int(1, n)))  # elem_type, shape [n]
        return _bytes(1, name) + _bytes(2, _bytes(1, tensor))

    node = _bytes(1, "x") + _bytes(1, "x") + _bytes(2, "y") + _bytes(3, "node") + _bytes(4, op)
    graph = (
        _bytes(1, node) + _bytes(2, "edgeort_" + op.lower()) + _bytes(11, value_info("x")) + _bytes(12, value_info("y"))
    )
    return _int(1, 8) + _bytes(7, graph) + _bytes(8, _bytes(1, "") + _int(2, 13))
