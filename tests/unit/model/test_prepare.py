"""Tests for pytest_edgeort.model.prepare (small onnx.helper models, CPU only)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_edgeort.model import prepare as prep
from pytest_edgeort.model.prepare import PrepareError, PrepareRecipe, prepare_model

WHERE = "suite/edge_suite.toml"


def conv_model(path: Path, opset: int = 13, batch: str = "batch", metadata: bool = True) -> Path:
    """x[batch,3,8,8] -> Conv(4) -> Relu -> Mul(0.5) -> y[batch,4,8,8]."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "B")
    half = numpy_helper.from_array(np.array(0.5, np.float32), "half")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4, 8, 8])
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Mul", ["r", "half"], ["y"], name="mul"),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y], [w, b, half])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    if metadata:
        helper.set_model_props(model, {"author": "test", "version": "1"})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def gelu_model(path: Path) -> Path:
    """x[1,16] -> Erf-decomposed GELU -> y (qnn_preprocess fuses it into Gelu)."""
    c = {
        n: numpy_helper.from_array(np.array(v, np.float32), n)
        for n, v in {"sqrt2": np.sqrt(2.0), "one": 1.0, "halfc": 0.5}.items()
    }
    nodes = [
        helper.make_node("Div", ["x", "sqrt2"], ["d"], name="div"),
        helper.make_node("Erf", ["d"], ["e"], name="erf"),
        helper.make_node("Add", ["e", "one"], ["a"], name="add"),
        helper.make_node("Mul", ["x", "a"], ["m"], name="mul1"),
        helper.make_node("Mul", ["m", "halfc"], ["y"], name="mul2"),
    ]
    graph = helper.make_graph(
        nodes,
        "gelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
        list(c.values()),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    helper.set_model_props(model, {"producer": "test"})
    onnx.save(model, str(path))
    return path


def write_calibration(path: Path, n: int = 4, shape=(1, 3, 8, 8), seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.standard_normal((n, *shape)).astype(np.float32))
    return path


def run_cpu(model_path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def dims(value_info) -> list:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value_info.type.tensor_type.shape.dim]


def qdq_types(model: onnx.ModelProto) -> dict[str, int]:
    """Zero-point element type of each QuantizeLinear output, by quantized tensor name."""
    inits = {i.name: i for i in model.graph.initializer}
    out = {}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and len(node.input) > 2:
            out[node.input[0]] = inits[node.input[2]].data_type
    return out


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    d = tmp_path / "suite"
    d.mkdir()
    return d


# ------------------------------------------------------------------------------------ recipe


def test_from_mapping_full_recipe_normalised():
    r = PrepareRecipe.from_mapping(
        {
            "fix_shapes": {"x": [1, 3, 48, 192]},
            "qnn_preprocess": True,
            "script": "prepare.py",
            "quantize": {"activations": "uint16", "weights": "int8", "calibration": "calib.npz"},
        },
        WHERE,
    )
    assert r.fix_shapes == {"x": [1, 3, 48, 192]}
    assert r.qnn_preprocess is True
    assert r.script == "prepare.py"
    assert r.quantize == {"activations": "uint16", "weights": "int8", "calibration": "calib.npz", "per_channel": False}
    assert r.float_baseline() == PrepareRecipe(
        fix_shapes={"x": [1, 3, 48, 192]}, qnn_preprocess=True, script="prepare.py"
    )
    assert not r.is_empty and PrepareRecipe.from_mapping({}, WHERE).is_empty


@pytest.mark.parametrize(
    "mapping, message",
    [
        (
            {"fix_shape": {"x": [1]}},
            "suite/edge_suite.toml: [prepare] unknown key 'fix_shape': expected one of fix_shapes, "
            "qnn_preprocess, script, quantize",
        ),
        (
            {"fix_shapes": [1, 3]},
            "suite/edge_suite.toml: [prepare] fix_shapes: expected a table of input name -> list of non-negative "
            "integers, got list [1, 3]",
        ),
        (
            {"fix_shapes": {"x": [1, -1, 8]}},
            "suite/edge_suite.toml: [prepare] fix_shapes.x: expected a list of non-negative integers, "
            "got list [1, -1, 8]",
        ),
        (
            {"fix_shapes": {"x": [1, True]}},
            "suite/edge_suite.toml: [prepare] fix_shapes.x: expected a list of non-negative integers, "
            "got list [1, True]",
        ),
        (
            {"qnn_preprocess": "yes"},
            "suite/edge_suite.toml: [prepare] qnn_preprocess: expected true or false, got str 'yes'",
        ),
        ({"script": 3}, "suite/edge_suite.toml: [prepare] script: expected a file name in the suite folder, got int 3"),
        (
            {"script": "../other/prepare.py"},
            "suite/edge_suite.toml: [prepare] script: expected a file name inside the suite folder, got "
            "'../other/prepare.py'",
        ),
        (
            {"quantize": "uint8"},
            "suite/edge_suite.toml: [prepare] quantize: expected a table with keys activations, weights, "
            "calibration, per_channel, got str 'uint8'",
        ),
        (
            {"quantize": {"activations": "uint8", "weights": "uint8", "calibration": "c.npz", "method": "minmax"}},
            "suite/edge_suite.toml: [prepare] unknown key 'quantize.method': expected one of activations, "
            "weights, calibration, per_channel",
        ),
        (
            {"quantize": {"activations": "int16", "weights": "uint8", "calibration": "c.npz"}},
            "suite/edge_suite.toml: [prepare] quantize.activations: expected one of 'uint8', 'uint16', got str 'int16'",
        ),
        (
            {"quantize": {"activations": "uint8", "calibration": "c.npz"}},
            "suite/edge_suite.toml: [prepare] quantize.weights: missing, expected one of 'uint8', 'int8'",
        ),
        (
            {"quantize": {"activations": "uint8", "weights": "uint16", "calibration": "c.npz"}},
            "suite/edge_suite.toml: [prepare] quantize.weights: expected one of 'uint8', 'int8', got str 'uint16'",
        ),
        (
            {"quantize": {"activations": "uint8", "weights": "uint8"}},
            "suite/edge_suite.toml: [prepare] quantize.calibration: missing, expected an .npz file name in "
            "the suite folder",
        ),
        (
            {"quantize": {"activations": "uint8", "weights": "uint8", "calibration": "calib.npy"}},
            "suite/edge_suite.toml: [prepare] quantize.calibration: expected an .npz file name in the suite "
            "folder, got 'calib.npy'",
        ),
        (
            {"quantize": {"activations": "uint8", "weights": "uint8", "calibration": "c.npz", "per_channel": 1}},
            "suite/edge_suite.toml: [prepare] quantize.per_channel: expected true or false, got int 1",
        ),
    ],
)
def test_from_mapping_errors_are_one_exact_line(mapping, message):
    with pytest.raises(ValueError) as info:
        PrepareRecipe.from_mapping(mapping, WHERE)
    assert str(info.value) == message
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------ steps


def test_fix_shapes_fixes_dynamic_batch_in_inputs_and_outputs(tmp_path, suite):
    model = conv_model(tmp_path / "m.onnx")
    out = prepare_model(model, PrepareRecipe(fix_shapes={"x": [1, 3, 8, 8]}), suite, tmp_path / "cache")
    m = onnx.load(str(out))
    assert dims(m.graph.input[0]) == [1, 3, 8, 8]
    assert dims(m.graph.output[0]) == [1, 4, 8, 8]
    x = np.random.default_rng(2).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(run_cpu(out, x), run_cpu(model, x))


def test_fix_shapes_unknown_input_names_step(tmp_path, suite):
    model = conv_model(tmp_path / "m.onnx")
    with pytest.raises(PrepareError) as info:
        prepare_model(model, PrepareRecipe(fix_shapes={"image": [1, 3, 8, 8]}), suite, tmp_path / "cache")
    msg = str(info.value)
    assert msg.startswith(f"{suite}: prepare step 'fix_shapes' failed: ValueError: Input image was not found")
    assert "\n" not in msg and info.value.step == "fix_shapes"


@pytest.mark.parametrize(
    "activations, weights, act_type, weight_type",
    [
        ("uint8", "uint8", TensorProto.UINT8, TensorProto.UINT8),
        ("uint16", "uint8", TensorProto.UINT16, TensorProto.UINT8),
        ("uint16", "int8", TensorProto.UINT16, TensorProto.INT8),
    ],
)
def test_quantize_produces_qdq_with_requested_types(tmp_path, suite, activations, weights, act_type, weight_type):
    model = conv_model(tmp_path / "m.onnx")
    write_calibration(suite / "calib.npz")
    recipe = PrepareRecipe.from_mapping(
        {
            "fix_shapes": {"x": [1, 3, 8, 8]},
            "qnn_preprocess": True,
            "quantize": {"activations": activations, "weights": weights, "calibration": "calib.npz"},
        },
        WHERE,
    )
    out = prepare_model(model, recipe, suite, tmp_path / "cache")
    m = onnx.load(str(out))
    ops = [n.op_type for n in m.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops and "Conv" in ops
    types = qdq_types(m)
    assert types["x"] == act_type  # graph input activation
    inits = {i.name: i for i in m.graph.initializer}
    conv = next(n for n in m.graph.node if n.op_type == "Conv")
    w_dq = next(n for n in m.graph.node if n.output[0] == conv.input[1])
    assert inits[w_dq.input[0]].data_type == weight_type
    if activations == "uint16":  # opset 13 has no 16-bit Q/DQ: contrib ops are used
        assert {n.domain for n in m.graph.node if n.op_type.endswith("Linear")} == {"com.microsoft"}
    # quantized model still computes the same function, roughly
    x = np.load(suite / "calib.npz")["x"][0]
    ref, got = run_cpu(model, x), run_cpu(out, x)
    assert np.abs(got - ref).max() < 0.05 * np.abs(ref).max()


def test_quantize_per_channel_on_opset11_upgrades_opset(tmp_path, suite):
    model = conv_model(tmp_path / "m.onnx", opset=11, batch=1)
    write_calibration(suite / "calib.npz")
    recipe = PrepareRecipe(
        quantize={"activations": "uint8", "weights": "int8", "calibration": "calib.npz", "per_channel": True}
    )
    out = prepare_model(model, recipe, suite, tmp_path / "cache")
    m = onnx.load(str(out))
    assert next(o.version for o in m.opset_import if o.domain == "") >= 13
    conv = next(n for n in m.graph.node if n.op_type == "Conv")
    w_dq = next(n for n in m.graph.node if n.output[0] == conv.input[1])
    scale = next(i for i in m.graph.initializer if i.name == w_dq.input[1])
    assert list(scale.dims) == [4]  # one scale per output channel
    run_cpu(out, np.load(suite / "calib.npz")["x"][0])


def test_quantize_calibration_shape_mismatch_is_a_prepare_error(tmp_path, suite):
    model = conv_model(tmp_path / "m.onnx", batch=1)
    write_calibration(suite / "calib.npz", shape=(3, 8, 8))  # forgot the batch dim
    recipe = PrepareRecipe(
        quantize={"activations": "uint8", "weights": "uint8", "calibration": "calib.npz", "per_channel": False}
    )
    with pytest.raises(PrepareError) as info:
        prepare_model(model, recipe, suite, tmp_path / "cache")
    assert str(info.value) == (
        f"{suite}: prepare step 'quantize' failed: ValueError: calib.npz['x'] has shape [4, 3, 8, 8], "
        "expected [N, *[1, 3, 8, 8]] (N samples stacked on a new axis 0)"
    )


def test_missing_calibration_file(tmp_path, suite):
    model = conv_model(tmp_path / "m.onnx", batch=1)
    recipe = PrepareRecipe(
        quantize={"activations": "uint8", "weights": "uint8", "calibration": "calib.npz", "per_channel": False}
    )
    with pytest.raises(PrepareError) as info:
        prepare_model(model, recipe, suite, tmp_path / "cache")
    assert str(info.value) == f"{suite}: prepare step 'quantize' failed: file not found: {suite / 'calib.npz'}"


def test_script_step_is_applied_after_fix_shapes(tmp_path, suite):
    model = conv_model(tmp_path / "m.onnx")
    (suite / "prepare.py").write_text(
        "import onnx\n"
        "from onnx import helper\n"
        "def prepare(model: onnx.ModelProto) -> onnx.ModelProto:\n"
        "    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]\n"
        "    assert shape == [1, 3, 8, 8], shape  # fix_shapes ran first\n"
        "    for node in model.graph.node:\n"
        "        if node.op_type == 'Relu':\n"
        "            node.op_type = 'Neg'\n"
        "            node.name = 'rewritten'\n"
        "    return model\n"
    )
    out = prepare_model(
        model, PrepareRecipe(fix_shapes={"x": [1, 3, 8, 8]}, script="prepare.py"), suite, tmp_path / "c"
    )
    m = onnx.load(str(out))
    assert [n.name for n in m.graph.node] == ["conv", "rewritten", "mul"]
    x = np.random.default_rng(3).standard_normal((1, 3, 8, 8)).astype(np.float32)
    got, ref = run_cpu(out, x), run_cpu(model, x)  # got = -0.5*conv, ref = 0.5*relu(conv)
    np.testing.assert_allclose(np.maximum(-got, 0), ref, rtol=1e-6, atol=1e-7)
    assert (got > 0).any()


def test_script_without_prepare_function(tmp_path, suite):
    model = conv_model(tmp_path / "m.onnx")
    (suite / "prepare.py").write_text("def rewrite(model):\n    return model\n")
    with pytest.raises(PrepareError) as info:
        prepare_model(model, PrepareRecipe(script="prepare.py"), suite, tmp_path / "c")
    assert str(info.value) == (
        f"{suite}: prepare step 'script' failed: ValueError: prepare.py does not define "
        "prepare(model: onnx.ModelProto) -> onnx.ModelProto"
    )


def test_script_returning_wrong_type(tmp_path, suite):
    model = conv_model(tmp_path / "m.onnx")
    (suite / "prepare.py").write_text("def prepare(model):\n    return None\n")
    with pytest.raises(PrepareError) as info:
        prepare_model(model, PrepareRecipe(script="prepare.py"), suite, tmp_path / "c")
    assert str(info.value) == (
        f"{suite}: prepare step 'script' failed: TypeError: prepare.py: prepare() returned NoneType, "
        "expected onnx.ModelProto"
    )


def test_qnn_preprocess_fuses_gelu_on_model_with_metadata(tmp_path, suite):
    model = gelu_model(tmp_path / "g.onnx")
    out = prepare_model(model, PrepareRecipe(qnn_preprocess=True), suite, tmp_path / "c")
    m = onnx.load(str(out))
    assert [n.op_type for n in m.graph.node] == ["Gelu"]
    x = np.linspace(-3, 3, 16, dtype=np.float32)[None]
    np.testing.assert_allclose(run_cpu(out, x), run_cpu(model, x), atol=1e-6)


# ------------------------------------------------------------------------------------ cache


def _counting(monkeypatch, name: str) -> list[int]:
    calls: list[int] = []
    original = getattr(prep, name)

    def wrapper(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(prep, name, wrapper)
    return calls


def test_rerun_hits_cache_without_redoing_work(tmp_path, suite, monkeypatch):
    model = conv_model(tmp_path / "m.onnx")
    write_calibration(suite / "calib.npz")
    recipe = PrepareRecipe.from_mapping(
        {
            "fix_shapes": {"x": [1, 3, 8, 8]},
            "quantize": {"activations": "uint8", "weights": "uint8", "calibration": "calib.npz"},
        },
        WHERE,
    )
    calls = _counting(monkeypatch, "_step_quantize")
    cache = tmp_path / "cache"
    first = prepare_model(model, recipe, suite, cache)
    assert len(calls) == 1
    os.utime(first, (1_000_000, 1_000_000))  # any rewrite would bump the mtime
    second = prepare_model(model, recipe, suite, cache)
    assert second == first and len(calls) == 1
    assert first.stat().st_mtime == 1_000_000
    assert sorted(p.name for p in cache.iterdir()) == sorted([first.name, first.with_suffix(".json").name])

    # any input of the hash changes -> new work, new file
    write_calibration(suite / "calib.npz", seed=7)
    third = prepare_model(model, recipe, suite, cache)
    assert third != first and len(calls) == 2
    fourth = prepare_model(model, recipe.float_baseline(), suite, cache)
    assert fourth not in (first, third) and len(calls) == 2
    assert "QuantizeLinear" not in {n.op_type for n in onnx.load(str(fourth)).graph.node}


def test_cache_key_covers_script_bytes_and_ort_version(tmp_path, suite, monkeypatch):
    model = conv_model(tmp_path / "m.onnx")
    (suite / "prepare.py").write_text("def prepare(model):\n    return model\n")
    recipe = PrepareRecipe(script="prepare.py")
    k1 = prep.cache_key(model, recipe, suite)
    assert prep.cache_key(model, recipe, suite) == k1
    (suite / "prepare.py").write_text("def prepare(model):\n    return model  # changed\n")
    k2 = prep.cache_key(model, recipe, suite)
    assert k2 != k1
    monkeypatch.setattr(prep, "_ort_version", lambda: "0.0.0")
    assert prep.cache_key(model, recipe, suite) != k2


def test_failed_step_leaves_no_partial_file(tmp_path, suite):
    model = conv_model(tmp_path / "m.onnx")
    (suite / "prepare.py").write_text("def prepare(model):\n    raise RuntimeError('boom')\n")
    cache = tmp_path / "cache"
    with pytest.raises(PrepareError, match=r"prepare step 'script' failed: RuntimeError: boom$"):
        prepare_model(model, PrepareRecipe(script="prepare.py"), suite, cache)
    assert list(cache.iterdir()) == []


def test_missing_model(tmp_path, suite):
    with pytest.raises(PrepareError) as info:
        prepare_model(tmp_path / "nope.onnx", PrepareRecipe(), suite, tmp_path / "c")
    assert str(info.value) == f"{suite}: prepare step 'load' failed: model not found: {tmp_path / 'nope.onnx'}"


def test_fix_shapes_with_one_dim_param_for_several_dims(tmp_path, suite):
    """Exporters (e.g. rapidocr's Paddle models) name every unknown dim '?': x[-1, 3, '?', '?']."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((2, 3, 1, 1)).astype(np.float32), "W")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 3, "?", "?"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [-1, 2, "?", "?"])
    graph = helper.make_graph([helper.make_node("Conv", ["x", "W"], ["y"], name="conv")], "g", [x], [y], [w])
    path = tmp_path / "q.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=7), str(path))
    out = prepare_model(path, PrepareRecipe(fix_shapes={"x": [1, 3, 4, 16]}), suite, tmp_path / "c")
    m = onnx.load(str(out))
    assert dims(m.graph.input[0]) == [1, 3, 4, 16]
    assert dims(m.graph.output[0]) == [1, 2, 4, 16]


def test_qnn_preprocess_keeps_basic_optimizations_when_nothing_fuses(tmp_path, suite):
    """Conv -> BatchNormalization must reach quantization fused (the HTP runs unfused QDQ BN wrongly)."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.uniform(0.5, 2, 4).astype(np.float32), "gamma"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "beta"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "mean"),
        numpy_helper.from_array(rng.uniform(0.5, 2, 4).astype(np.float32), "var"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["y"], name="bn"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        inits,
    )
    path = tmp_path / "bn.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    out = prepare_model(path, PrepareRecipe(qnn_preprocess=True), suite, tmp_path / "c")
    assert [n.op_type for n in onnx.load(str(out)).graph.node] == ["Conv"]
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(run_cpu(out, x), run_cpu(path, x), rtol=1e-5, atol=1e-5)
