"""The float math a QDQ model approximates: the model with its activation Q/DQ pairs replaced by their range.

Every ``QuantizeLinear`` of an activation whose output only feeds ``DequantizeLinear`` nodes is a round
trip through the integer grid: rounding to a step, and saturation at the ends of the range (which is
where a quantizer folds a Relu or Clip it removed). Replacing the pair by a ``Clip`` to that range keeps
the saturation and drops the rounding: the computation that quantization approximates, with the weights
as quantized (their ``DequantizeLinear`` of a constant stays). Run on the reference's CPU, it is the
yardstick of what quantization itself costs when the user gives no float model: the CPU-QDQ output's
deviation from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Set, Tuple

import numpy as np

from .._text import atomic_write

if TYPE_CHECKING:  # onnx is imported where a yardstick is built: its import costs ~0.4 s a run
    import onnx

#: the cache folder of the yardstick models (under the run's cache directory)
YARDSTICK_DIR = "yardstick"


def _constants(graph: onnx.GraphProto) -> Dict[str, np.ndarray]:
    from onnx import numpy_helper

    found = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].HasField("t"):
            found[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return found


def _range(node: onnx.NodeProto, constants: Dict[str, np.ndarray]) -> Optional[Tuple[float, float]]:
    """The float range a per-tensor QuantizeLinear saturates to (None: per-channel or computed parameters)."""
    scale = constants.get(node.input[1])
    zero = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else np.array(0, np.uint8)
    if scale is None or zero is None or scale.size != 1 or zero.size != 1:
        return None
    info = np.iinfo(zero.dtype)
    step, zp = float(scale.reshape(-1)[0]), int(zero.reshape(-1)[0])
    return (info.min - zp) * step, (info.max - zp) * step


def strip_activation_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with its activation Q/DQ pairs replaced by a Clip to their range (graph inputs
    and outputs keep their names; an output that was a dequantized tensor becomes an Identity of the float
    one). Pairs with per-channel or computed parameters stay."""
    import onnx
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    constants = _constants(graph)
    outputs = {o.name for o in graph.output}
    consumers: Dict[str, List[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    replace: Dict[str, str] = {}  # a DequantizeLinear's output -> the clipped float tensor of its pair
    dropped: Set[int] = set()
    clips: Dict[int, onnx.NodeProto] = {}  # in the place of the QuantizeLinear: after its input, before readers
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in constants or node.output[0] in outputs:
            continue
        readers = consumers.get(node.output[0], [])
        bounds = _range(node, constants)
        if bounds is None or not readers or any(r.op_type != "DequantizeLinear" for r in readers):
            continue
        clipped, names = f"{node.output[0]}_range", [f"{node.output[0]}_lo", f"{node.output[0]}_hi"]
        graph.initializer.extend(numpy_helper.from_array(np.array(b, np.float32), n) for b, n in zip(bounds, names))
        clips[id(node)] = helper.make_node("Clip", [node.input[0], *names], [clipped], name=clipped)
        for dq in readers:
            dropped.add(id(dq))
            replace[dq.output[0]] = clipped

    def resolve(name: str) -> str:
        while name in replace:
            name = replace[name]
        return name

    kept = [clips.get(id(n), n) for n in graph.node if id(n) not in dropped]
    for node in kept:
        node.input[:] = [resolve(i) for i in node.input]
    for o in graph.output:
        if o.name in replace:
            kept.append(helper.make_node("Identity", [resolve(o.name)], [o.name], name=f"{o.name}_yardstick"))
    del graph.node[:]
    graph.node.extend(kept)
    del graph.value_info[:]  # the float tensors keep their types; stale entries would name quantized ones
    return out


def yardstick_model(qdq_path: Path, sha256: str, cache: Path) -> Path:
    """The stripped copy of the QDQ model at ``qdq_path`` (content hash ``sha256``), cached in ``cache``."""
    target = cache / f"{sha256}.onnx"
    if not target.is_file():
        import onnx

        cache.mkdir(parents=True, exist_ok=True)
        stripped = strip_activation_qdq(onnx.load(str(qdq_path)))
        atomic_write(target, stripped.SerializeToString())
    return target
