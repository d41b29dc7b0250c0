"""Where a model can be cut for layer-wise diagnosis (its candidate tensors, in topological order) and the
prefix subgraph that ends at given tensors.

In a QDQ model the candidates are the activations' ``QuantizeLinear -> DequantizeLinear`` pairs: the cut
ends after the pair, so the tensor compared is the quantized value, in its own LSB; the node named is the
one that computed the tensor the ``QuantizeLinear`` reads. In a float model every node output is one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

import onnx
from onnx import helper, numpy_helper

from .info import QuantParams, _requantization_depth, tensor_quant


@dataclass(frozen=True)
class Cut:
    """One candidate tensor: ``tensor`` is what the prefix outputs and both sides compare; ``node`` (of
    ``op_type``) computed it, as ``shown`` (the node's own output; for a Q/DQ pair the tensor the
    QuantizeLinear reads); ``inputs``: the candidates that feed ``node``."""

    index: int
    tensor: str
    node: str
    op_type: str
    shown: str
    quant: Optional[QuantParams]
    depth: int
    inputs: Tuple[str, ...]


def _constants(graph: onnx.GraphProto) -> Dict[str, onnx.TensorProto]:
    found = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.output and node.attribute and node.attribute[0].HasField("t"):
            found.setdefault(node.output[0], node.attribute[0].t)
    return found


def _subgraph_inputs(node: onnx.NodeProto) -> Iterator[str]:
    """Names the node's subgraphs (If/Loop/Scan bodies) read from the outer scope (and their own: harmless)."""
    for attribute in node.attribute:
        for graph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
            for inner in graph.node:
                yield from inner.input
                yield from _subgraph_inputs(inner)


def _node_name(node: onnx.NodeProto, index: int) -> str:
    return node.name or f"{node.op_type}_{index}"


def candidates(model: onnx.ModelProto, available: Optional[Set[str]] = None) -> List[Cut]:
    """The model's candidate tensors in topological order (see the module docstring), keeping only those
    in ``available`` (the tensors the reference model also has) when given."""
    graph = model.graph
    constants = _constants(graph)
    producers = {out: (i, node) for i, node in enumerate(graph.node) for out in node.output}
    depth = _requantization_depth(graph)
    scales = tensor_quant(graph, lambda name: numpy_helper.to_array(constants[name]) if name in constants else None)
    qdq = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node)
    pair_of: Dict[str, str] = {}  # a tensor a QuantizeLinear reads -> the DequantizeLinear output of its pair
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] in constants:
            continue
        _, quantize = producers.get(node.input[0], (0, None))
        if quantize is not None and quantize.op_type == "QuantizeLinear" and quantize.input[0] not in constants:
            pair_of.setdefault(quantize.input[0], node.output[0])
    outputs = [o.name for o in graph.output]
    found: List[Cut] = []
    seen: Set[str] = set()

    def feeds(node: onnx.NodeProto) -> Tuple[str, ...]:
        """The candidates that feed ``node``: its inputs, through the Q/DQ pair that dequantized them, or
        where an input is no candidate (the reference lacks it), the nearest candidates before it."""
        names: List[str] = []
        stack, visited = list(node.input), set()
        while stack:
            name = stack.pop(0)
            if not name or name in visited or name in constants:
                continue
            visited.add(name)
            _, producer = producers.get(name, (0, None))
            if producer is not None and producer.op_type == "DequantizeLinear":
                _, quantize = producers.get(producer.input[0], (0, None))
                if quantize is not None and quantize.op_type == "QuantizeLinear":
                    name = pair_of.get(quantize.input[0], name)
            if name in seen:
                names.append(name)
            elif producer is not None:
                stack.extend(producer.input)
        return tuple(dict.fromkeys(names))

    for position, node in enumerate(graph.node):
        if node.op_type in ("QuantizeLinear", "DequantizeLinear", "Constant"):
            continue
        for out in node.output:
            tensor = pair_of.get(out) if qdq else out
            if tensor is None and out in outputs:
                tensor = out  # a float graph output of a QDQ model
            if not tensor or tensor in seen or (available is not None and tensor not in available):
                continue
            quant = scales.get(tensor) if tensor != out else None
            name, fed = _node_name(node, position), feeds(node)
            found.append(Cut(len(found), tensor, name, node.op_type, out, quant, depth.get(tensor, 0), fed))
            seen.add(tensor)
    return found


def tensor_names(model: onnx.ModelProto) -> Set[str]:
    """Every tensor a node writes, and the graph inputs."""
    graph = model.graph
    return {out for node in graph.node for out in node.output} | {i.name for i in graph.input}


def prefix_model(model: onnx.ModelProto, outputs: Sequence[str]) -> onnx.ModelProto:
    """The nodes ``outputs`` depend on, as a model whose graph outputs are ``outputs`` (graph inputs and
    initializers it does not read dropped; opsets and functions kept)."""
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    needed: Set[str] = set()
    wanted: Set[int] = set()
    stack = list(outputs)
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        node = producers.get(name)
        if node is not None and id(node) not in wanted:
            wanted.add(id(node))
            stack.extend(n for n in (*node.input, *_subgraph_inputs(node)) if n)
    types = {v.name: v for v in (*graph.value_info, *graph.output, *graph.input)}
    try:
        inferred = onnx.shape_inference.infer_shapes(model).graph
        types = {v.name: v for v in (*inferred.value_info, *inferred.output, *inferred.input)}
    except Exception:  # custom-domain ops: keep the declared types
        pass
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(n for n in graph.node if id(n) in wanted)
    kept_inits = [t for t in graph.initializer if t.name in needed]
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept_inits)
    kept_inputs = [i for i in graph.input if i.name in needed]
    del out.graph.input[:]
    out.graph.input.extend(kept_inputs)
    del out.graph.output[:]
    out.graph.output.extend(
        types[name] if name in types else helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        for name in outputs
    )
    del out.graph.value_info[:]
    return out
