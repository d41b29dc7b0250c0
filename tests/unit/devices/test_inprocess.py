"""Devices and sessions against the real worker code, in process: sessions, runs, error kinds, protocol version."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from pytest_edgeort.board import wire
from pytest_edgeort.config.inventory import DeviceConfig
from pytest_edgeort.config.providers import resolve_provider
from pytest_edgeort.devices.client import WorkerClient, WorkerError
from pytest_edgeort.devices.protocol import SessionBackend
from pytest_edgeort.devices.replies import NO_ARRAYS
from pytest_edgeort.devices.session import EdgeSession
from pytest_edgeort.errors import DeviceUnavailable, EdgeSessionError, InputError
from pytest_edgeort.model.info import model_info
from pytest_edgeort.model.inputs import generate_inputs
from tests.support.inprocess import InProcessDevice, InProcessTransport

CPU = resolve_provider("cpu")


def open_session(device, path):
    return EdgeSession(device, model_info(path), CPU, {}, cpu_fallback=True, on_create=lambda session: None)


def test_a_cpu_session_runs_and_matches_onnxruntime(device, model_dir):
    path = model_dir / "conv_matmul_qdq.onnx"
    session = open_session(device, path)
    feed = generate_inputs(model_info(path), seed=3)
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)
    outputs = session.run(feed)
    assert [o.tobytes() for o in outputs.values()] == [e.tobytes() for e in expected]
    assert session.placement.count("CPUExecutionProvider") == session.placement.total > 0
    times = session.time(feed, runs=3, warmup=1)
    assert len(times) == 3 and all(t >= 0 for t in times)
    assert device.uploads == 1
    open_session(device, path)  # the same model again: already in the worker's cache
    assert device.uploads == 1


def test_run_all_gives_each_feed_its_own_outputs_in_order(device, model_dir):
    path = model_dir / "conv_matmul_qdq.onnx"
    session = open_session(device, path)
    feeds = [generate_inputs(model_info(path), seed=seed) for seed in (1, 2, 3)]
    reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = session.run_all(feeds)
    assert [[o.tobytes() for o in outputs.values()] for outputs in batch] == [
        [e.tobytes() for e in reference.run(None, feed)] for feed in feeds
    ]
    for feed, outputs in zip(feeds, batch):  # each output's own feed: what edge_compare's yardstick runs on
        origin = session.inputs_of(outputs)
        assert origin is not None and all((origin[k] == feed[k]).all() for k in feed)
    assert session.run_all([]) == []
    assert isinstance(device.open_session(model_info(path), CPU, {}, True), SessionBackend)
    with pytest.raises(InputError, match=r"^conv_matmul_qdq.onnx on local/cpu: inputs do not match .*'nope'"):
        session.run_all([feeds[0], {"nope": feeds[0]["x"]}])


def test_a_tampered_cached_model_is_uploaded_again(device, model_dir):
    """missing-model (the cached file no longer hashes right) is read by its kind: upload, retry once."""
    path = model_dir / "conv_matmul_qdq.onnx"
    open_session(device, path).close()
    info = model_info(path)
    (device.workdir / "models" / f"{info.sha256}.onnx").write_bytes((model_dir / "det.onnx").read_bytes())
    device.close()  # a fresh worker: the hash is checked again
    open_session(device, path)
    assert device.uploads == 2


def test_error_kinds_reach_the_host(device, model_dir, tmp_path):
    client = device.client()
    with pytest.raises(WorkerError, match="is not in the worker cache") as info:
        client.create_session("s", "0" * 64, "CPUExecutionProvider", {}, True, timeout=30)
    assert info.value.kind == wire.Kind.MISSING_MODEL
    with pytest.raises(WorkerError, match="no open session 'nope'") as info:
        client.run("nope", {}, memory_check=False, timeout=30, outputs=NO_ARRAYS)
    assert info.value.kind == wire.Kind.BAD_REQUEST
    bad = tmp_path / "bad.onnx"
    graph = helper.make_graph(
        [helper.make_node("NoSuchOp", ["x"], ["y"])],
        "bad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(bad))
    sha = model_info(bad).sha256
    client.put_model(sha, bad.read_bytes(), timeout=30)
    with pytest.raises(WorkerError) as info:
        client.create_session("s", sha, "CPUExecutionProvider", {}, True, timeout=30)
    assert info.value.kind == wire.Kind.CREATE
    with pytest.raises(EdgeSessionError, match=r"bad.onnx on local/cpu: session creation failed: .*NoSuchOp"):
        open_session(device, bad)


def test_a_lock_only_worker_answers_nothing_but_lock(tmp_path):
    client = WorkerClient(InProcessTransport(tmp_path, lock_only=True), "lock worker")
    try:
        with pytest.raises(WorkerError, match="op 'run' sent to a lock-only worker") as info:
            client.run("s", {}, memory_check=False, timeout=30, outputs=NO_ARRAYS)
        assert info.value.kind == wire.Kind.BAD_REQUEST
        assert client.lock(str(tmp_path / "board.lock"), {"who": "me", "run": "r"}, timeout=30)["acquired"]
    finally:
        client.close()
    assert client.transport.exit_status() == 0


def old_worker(workdir, lock_only, reader, write):
    """A worker of another plugin version: its hello names protocol 0."""
    write([wire.encode_header_only({"ok": True, "hello": True, "protocol": 0, "pid": 1})])
    return 0


def test_a_worker_of_another_protocol_version_is_refused(tmp_path):
    with pytest.raises(WorkerError, match=r"^worker speaks protocol version 0, this plugin 1$") as info:
        WorkerClient(InProcessTransport(tmp_path, start=old_worker), "worker")
    assert info.value.kind == wire.Kind.ENVIRONMENT

    class OldDevice(InProcessDevice):
        start = staticmethod(old_worker)

    device = OldDevice(DeviceConfig("local", workdir=str(tmp_path / "work")))
    with pytest.raises(
        DeviceUnavailable,
        match=r"^device 'local': worker on device 'local' speaks protocol "
        r"version 0, this plugin 1$",
    ):
        device.describe()


def test_an_echo_is_bit_exact_in_process(tmp_path):
    client = WorkerClient(InProcessTransport(tmp_path), "worker")
    try:
        sent = [("a", np.arange(12, dtype=np.float16).reshape(3, 4)), ("b", np.array(True))]
        back = client.echo(sent, timeout=30)
        assert [(n, a.dtype, a.tobytes()) for n, a in back] == [(n, a.dtype, a.tobytes()) for n, a in sent]
    finally:
        client.close()


def test_a_model_with_external_data_is_cached_as_a_bundle(device, tmp_path):
    weights = helper.make_tensor("w", TensorProto.FLOAT, [4], np.arange(1, 5, dtype=np.float32).tobytes(), raw=True)
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "ext",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [weights],
    )
    path = tmp_path / "src" / "ext.onnx"
    path.parent.mkdir()
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
        str(path),
        save_as_external_data=True,
        location="w.bin",
        size_threshold=0,
    )
    session = open_session(device, path)
    assert session.run({"x": np.zeros(4, np.float32)})["y"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert device.uploads == 2  # the model file and its data file
    cached = device.workdir / "models" / model_info(path).cache_id
    assert sorted(p.name for p in cached.iterdir()) == sorted([f"{model_info(path).sha256}.onnx", "w.bin"])


def _slow_matmul(path):
    """x[256, 256] @ W[256, 256] twenty times: a model whose inference takes milliseconds."""
    rng = np.random.default_rng(0)
    nodes, inits, name = [], [], "x"
    for n in range(20):
        inits.append(helper.make_tensor(f"w{n}", TensorProto.FLOAT, [256, 256], rng.random(256 * 256).tolist()))
        nodes.append(helper.make_node("MatMul", [name, f"w{n}"], [f"y{n}"]))
        name = f"y{n}"
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [256, 256])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [256, 256])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    return path


def test_timed_runs_stop_at_the_time_budget_but_not_before_the_floor(device, tmp_path):
    path = _slow_matmul(tmp_path / "slow.onnx")
    session = open_session(device, path)
    feed = {"x": np.zeros((256, 256), np.float32)}
    assert len(session.time(feed, runs=5, warmup=1, max_s=1e-9, min_runs=3)) == 3  # the floor
    assert len(session.time(feed, runs=4, warmup=1, max_s=None, min_runs=1)) == 4  # no budget: the count
    budgeted = session.time(feed, runs=100000, warmup=2, max_s=0.3, min_runs=2)
    assert 2 <= len(budgeted) < 100000  # 100000 runs of 20 MatMuls would take minutes
