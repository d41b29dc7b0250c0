"""HTP rewrites for rapidocr's ch_ppocr_mobile_v2.0_cls_mobile.onnx (see README.md).

Each rewrite keeps the CPU output within float rounding (measured max |d| < 1e-6), and each removes a
construct that makes QNN HTP fail at graph finalize (QNN_COMMON_ERROR_MEM_ALLOC):

* depthwise/grouped Conv with unequal strides, e.g. (2, 1) -> dense Conv with a block-diagonal weight
* HardSigmoid(alpha, beta)                          -> Clip(Add(Mul(x, alpha), beta), 0, 1)
* Div(x, constant)                                  -> Mul(x, 1 / constant)
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def _constants_to_initializers(model: onnx.ModelProto) -> None:
    keep = []
    for node in model.graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            t = onnx.TensorProto()
            t.CopyFrom(node.attribute[0].t)
            t.name = node.output[0]
            model.graph.initializer.append(t)
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def prepare(model: onnx.ModelProto) -> onnx.ModelProto:
    _constants_to_initializers(model)
    inits = {i.name: i for i in model.graph.initializer}
    new_nodes = []
    for node in model.graph.node:
        a = _attrs(node)
        if node.op_type == "Conv" and a.get("group", 1) > 1 and len(set(a.get("strides", [1, 1]))) > 1:
            w = numpy_helper.to_array(inits[node.input[1]])
            group = a["group"]
            c_out, c_per_group = w.shape[:2]
            out_per_group = c_out // group
            dense = np.zeros((c_out, c_per_group * group, *w.shape[2:]), w.dtype)
            for o in range(c_out):
                g = o // out_per_group
                dense[o, g * c_per_group : (g + 1) * c_per_group] = w[o]
            name = node.input[1] + "_dense"
            model.graph.initializer.append(numpy_helper.from_array(dense, name))
            node.input[1] = name
            for attr in node.attribute:
                if attr.name == "group":
                    attr.i = 1
            new_nodes.append(node)
        elif node.op_type == "HardSigmoid":
            alpha, beta = a.get("alpha", 0.2), a.get("beta", 0.5)
            p = node.name or node.output[0]
            for suffix, value in (("alpha", alpha), ("beta", beta), ("zero", 0.0), ("one", 1.0)):
                model.graph.initializer.append(numpy_helper.from_array(np.array(value, np.float32), f"{p}_{suffix}"))
            new_nodes += [
                helper.make_node("Mul", [node.input[0], f"{p}_alpha"], [f"{p}_scaled"], name=f"{p}_mul"),
                helper.make_node("Add", [f"{p}_scaled", f"{p}_beta"], [f"{p}_shifted"], name=f"{p}_add"),
                helper.make_node(
                    "Clip", [f"{p}_shifted", f"{p}_zero", f"{p}_one"], list(node.output), name=f"{p}_clip"
                ),
            ]
        elif node.op_type == "Div" and node.input[1] in inits:
            d = numpy_helper.to_array(inits[node.input[1]])
            name = node.input[1] + "_reciprocal"
            model.graph.initializer.append(numpy_helper.from_array((1.0 / d).astype(d.dtype), name))
            new_nodes.append(
                helper.make_node(
                    "Mul", [node.input[0], name], list(node.output), name=(node.name or node.output[0]) + "_as_mul"
                )
            )
        else:
            new_nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    return model
