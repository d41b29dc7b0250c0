"""HTP rewrites for magika's standard_v3_3 content-type model (see README.md).

The jax2tf export spells two LayerNorms and the final softmax out of primitive ops. QNN HTP fails at
graph finalize on that (QNN_COMMON_ERROR_MEM_ALLOC), and u8 quantization of E[x^2] - E[x]^2 is poor.
Rewrites (CPU outputs stay within 1e-5 of the original):

* LayerNorm_0 over the 512 axis of [1, 512, 256], followed by Unsqueeze/Slice/Transpose to the Conv's
  [1, 256, 512, 1] layout  ->  Transpose(0, 2, 1) -> LayerNormalization(axis=-1) -> Unsqueeze(3)
* LayerNorm_1 on [1, 512]  ->  LayerNormalization(axis=-1)
* softmax tail (ReduceMax, Max(x, -inf), Sub, Exp, ReduceSum, Div)  ->  Softmax(axis=-1)

The opset goes 15 -> 17 (LayerNormalization); no op used here changed between 15 and 17.
"""

from __future__ import annotations

import onnx
from onnx import helper, numpy_helper

EPS = 1e-6


def _producer(model: onnx.ModelProto, suffix: str) -> tuple[int, onnx.NodeProto]:
    for i, n in enumerate(model.graph.node):
        if any(o.endswith(suffix) for o in n.output):
            return i, n
    raise ValueError(f"no node produces a tensor ending in {suffix!r}: not magika standard_v3_3?")


def _vector(model: onnx.ModelProto, name_suffix: str, new_name: str) -> str:
    init = next(i for i in model.graph.initializer if i.name.endswith(name_suffix))
    model.graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(init).reshape(-1), new_name))
    return new_name


def _replace(model: onnx.ModelProto, old_output_suffix: str, new_nodes: list[onnx.NodeProto]) -> None:
    """Put new_nodes where the producer of old_output was; the last one takes over its output name."""
    idx, old = _producer(model, old_output_suffix)
    new_nodes[-1].output[0] = old.output[0]
    nodes = list(model.graph.node)
    nodes[idx : idx + 1] = new_nodes
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _remove_dead(model: onnx.ModelProto) -> None:
    g = model.graph
    while True:
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        keep = [n for n in g.node if any(o in used for o in n.output)]
        if len(keep) == len(g.node):
            break
        del g.node[:]
        g.node.extend(keep)
    used = {i for n in g.node for i in n.input}
    inits = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(inits)


def prepare(model: onnx.ModelProto) -> onnx.ModelProto:
    # LayerNorm_0: its input is the output of MagikaV2/Reshape ([1, 512, 256]); the Conv wants [1, 256, 512, 1]
    _, reshape = _producer(model, "MagikaV2/Reshape:0")
    x0 = reshape.output[0]
    g0 = _vector(model, "LayerNorm_0/Reshape_2:0", "ln0_scale")
    b0 = _vector(model, "LayerNorm_0/Reshape_3:0", "ln0_bias")
    model.graph.initializer.append(numpy_helper.from_array(__import__("numpy").array([3], "int64"), "ln0_unsq_axes"))
    _replace(
        model,
        "Conv_0/Conv2D__120:0",
        [
            helper.make_node("Transpose", [x0], ["ln0_in"], name="ln0_transpose", perm=[0, 2, 1]),
            helper.make_node("LayerNormalization", ["ln0_in", g0, b0], ["ln0_out"], name="ln0", axis=-1, epsilon=EPS),
            helper.make_node("Unsqueeze", ["ln0_out", "ln0_unsq_axes"], ["_"], name="ln0_unsqueeze"),
        ],
    )
    # LayerNorm_1 on [1, 512]
    _, squeeze = _producer(model, "MagikaV2/Max_Squeeze__213:0")
    g1 = _vector(model, "LayerNorm_1/Reshape_2:0", "ln1_scale")
    b1 = _vector(model, "LayerNorm_1/Reshape_3:0", "ln1_bias")
    _replace(
        model,
        "LayerNorm_1/AddV2_1:0",
        [
            helper.make_node(
                "LayerNormalization", [squeeze.output[0], g1, b1], ["_"], name="ln1", axis=-1, epsilon=EPS
            ),
        ],
    )
    # softmax tail
    _, logits = _producer(model, "Dense_1/AddV2:0")
    _replace(model, "target_label", [helper.make_node("Softmax", [logits.output[0]], ["_"], name="softmax", axis=-1)])

    _remove_dead(model)
    for op in model.opset_import:
        if op.domain in ("", "ai.onnx") and op.version < 17:
            op.version = 17
    return model
