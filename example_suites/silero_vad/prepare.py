"""Make silero-vad's op18 'ifless' export a static, single-rate graph for the HTP (see README.md).

The export's LSTM is already unrolled into Gemm/Sigmoid/Tanh, but the graph still starts with
``If(sr == 16000)`` choosing between the 16 kHz and 8 kHz subgraphs. QNN cannot take an If, so the
16 kHz branch is inlined into the main graph and the ``sr`` input is dropped. The stacked LSTM state
is split into h and c (see ``_split_state``). Inputs: ``input`` [1, 576] (64 samples of context + a
512-sample chunk), ``h``, ``c`` [1, 128]; outputs: ``output`` [1, 1] (speech probability), ``hN``,
``cN`` [1, 128] (the next step's h and c).
"""

from __future__ import annotations

import onnx
from onnx import helper, numpy_helper


def prepare(model: onnx.ModelProto) -> onnx.ModelProto:
    g = model.graph
    if_node = next(n for n in g.node if n.op_type == "If")
    # which branch is 16 kHz: If(Equal(sr[0], C)) -> then_branch when C == 16000
    eq = next(n for n in g.node if n.output[0] == if_node.input[0])
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    rate = int(next(inits[i] for i in eq.input if i in inits))
    branch = {a.name: a.g for a in if_node.attribute}["then_branch" if rate == 16000 else "else_branch"]

    rename = dict(zip([o.name for o in branch.output], list(if_node.output)))
    nodes = []
    for n in branch.node:
        n2 = onnx.NodeProto()
        n2.CopyFrom(n)
        for i, o in enumerate(n2.output):
            n2.output[i] = rename.get(o, o)
        for i, x in enumerate(n2.input):
            n2.input[i] = rename.get(x, x)
        nodes.append(n2)
    g.initializer.extend(branch.initializer)
    del g.node[:]
    g.node.extend(nodes)

    _split_state(g)
    keep_inputs = [i for i in g.input if i.name not in ("sr", "state")]
    del g.input[:]
    g.input.extend(keep_inputs)
    _remove_dead(g)
    return model


def _split_state(g: onnx.GraphProto) -> None:
    """state [2, 1, 128] -> inputs h, c [1, 128]; stateN -> outputs hN, cN [1, 128].

    The stacked state holds the LSTM's h (within [-1, 1]) and c (tens): one u8 scale for both leaves
    h with about 8 levels. Separate tensors get separate scales. The graph reads the state only
    through Gather(state, 0 | 1, axis=0) and writes stateN = Concat(Unsqueeze(h'), Unsqueeze(c')).
    """
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    rename = {}
    for n in list(g.node):
        if n.op_type == "Gather" and n.input[0] == "state":
            rename[n.output[0]] = "h" if int(inits[n.input[1]]) == 0 else "c"
            g.node.remove(n)
    concat = next(n for n in g.node if n.op_type == "Concat" and n.output[0] == "stateN")
    producers = {o: n for n in g.node for o in n.output}
    h_new, c_new = (producers[x].input[0] for x in concat.input)  # the Unsqueeze inputs
    g.node.remove(concat)
    for n in g.node:
        for i, x in enumerate(n.input):
            n.input[i] = rename.get(x, x)
    g.node.extend(
        [
            helper.make_node("Identity", [h_new], ["hN"], name="hN"),
            helper.make_node("Identity", [c_new], ["cN"], name="cN"),
        ]
    )
    g.input.extend([helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, [1, 128]) for x in ("h", "c")])
    outputs = [o for o in g.output if o.name != "stateN"]
    outputs += [helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, [1, 128]) for x in ("hN", "cN")]
    del g.output[:]
    g.output.extend(outputs)


def _remove_dead(g: onnx.GraphProto) -> None:
    while True:
        used = {x for n in g.node for x in n.input} | {o.name for o in g.output}
        keep = [n for n in g.node if any(o in used for o in n.output)]
        if len(keep) == len(g.node):
            break
        del g.node[:]
        g.node.extend(keep)
    used = {x for n in g.node for x in n.input}
    keep_init = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep_init)
