"""The worker protocol: framing, bit-exact arrays of every I/O dtype, errors, stdout noise, crashes."""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pytest_edgeort.board import wire
from pytest_edgeort.devices.artifact import PACKAGE, WORKER_NAME
from pytest_edgeort.devices.client import WorkerClient, WorkerDied, WorkerError
from pytest_edgeort.devices.localworker import worker_command
from pytest_edgeort.devices.replies import outputs_bound
from pytest_edgeort.devices.transport import LocalTransport
from pytest_edgeort.model.info import model_info
from pytest_edgeort.model.inputs import generate_inputs

IO_DTYPES = ["float32", "float16", "int8", "int16", "int32", "int64", "uint8", "uint16", "bool"]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    worker = WorkerClient(
        LocalTransport(worker_command(sys.executable, tmp_path_factory.mktemp("worker"))), "test worker"
    )
    yield worker
    worker.close()


def roundtrip_frame(header, arrays):
    data = b"".join(bytes(part) for part in wire.frame_parts(header, arrays))
    return wire.read_frame(wire.stream_reader(io.BytesIO(data)))


@settings(max_examples=60)
@given(st.sampled_from(IO_DTYPES).flatmap(lambda d: hnp.arrays(np.dtype(d), hnp.array_shapes(min_dims=0, max_side=5))))
def test_frame_roundtrip_is_bit_exact(array):
    header, arrays = roundtrip_frame({"op": "x"}, [("a", array)])
    ((name, back),) = arrays
    assert header["op"] == "x" and name == "a"
    assert back.dtype == array.dtype and back.shape == array.shape
    assert back.tobytes() == np.ascontiguousarray(array).tobytes()


def test_frames_reject_pickled_objects_and_garbage():
    with pytest.raises(TypeError, match="array 'o' has dtype object"):
        wire.frame_parts({}, [("o", np.array([{"a": 1}], dtype=object))])
    with pytest.raises(wire.ProtocolError, match="bad frame magic"):
        wire.read_frame(wire.stream_reader(io.BytesIO(b"Hello world, QNN says hi")))


def test_worker_echo_roundtrips_every_dtype_bit_exactly(client):
    rng = np.random.default_rng(0)
    arrays = []
    for dtype in IO_DTYPES:
        if dtype == "bool":
            arrays.append((dtype, rng.random((3, 4)) < 0.5))
        elif dtype.startswith("float"):
            a = rng.standard_normal((3, 4)).astype(dtype)
            a[0, :3] = [np.nan, -0.0, np.inf]  # special values must survive too
            arrays.append((dtype, a))
        else:
            info = np.iinfo(dtype)
            arrays.append((dtype, rng.integers(info.min, info.max, size=(3, 4), dtype=dtype, endpoint=True)))
    arrays.append(("big_endian", np.arange(6, dtype=">i4")))
    back = client.echo(arrays)
    for (name, sent), (name_back, got) in zip(arrays, back):
        assert name == name_back
        expected = sent.astype(sent.dtype.newbyteorder("<")) if sent.dtype.byteorder == ">" else sent
        assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes(), name


def test_model_io_of_every_dtype_through_a_real_session(client, model_dir):
    info = model_info(model_dir / "identities.onnx")
    client.put_model(info.sha256, info.path.read_bytes(), timeout=30)
    reply = client.create_session("ids", info.sha256, "CPUExecutionProvider", {}, cpu_fallback=True, timeout=30)
    assert [i["type"] for i in reply["inputs"]] == [f"tensor({'float' if d == 'float32' else d})" for d in IO_DTYPES]
    feed = generate_inputs(info, seed=1)
    _, outputs = client.run("ids", feed, memory_check=False, timeout=30, outputs=outputs_bound(info.outputs, 0, "ids"))
    for name, got in outputs:
        sent = feed[name.replace("out_", "in_")]
        assert got.dtype == sent.dtype and got.tobytes() == sent.tobytes(), name


def test_worker_errors_are_one_line_and_the_worker_survives(client):
    with pytest.raises(WorkerError, match="model 000000000000: bytes hash to .*, expected 0{64}"):
        client.put_model("0" * 64, bytes(4), timeout=30)
    with pytest.raises(WorkerError, match="model 000000000000 is not in the worker cache"):
        client.create_session("x", "0" * 64, "CPUExecutionProvider", {}, cpu_fallback=True, timeout=30)
    with pytest.raises(WorkerError, match="unknown op 'frobnicate'"):
        client.request("frobnicate")
    assert "CPUExecutionProvider" in client.capabilities(timeout=30)["providers"]


def test_library_output_on_stdout_cannot_corrupt_the_channel(tmp_path):
    """QNN libraries print to stdout: the worker points fd 1 at stderr, so protocol frames stay intact."""
    launcher = tmp_path / "noisy_worker.py"
    launcher.write_text(
        "import os, sys\n"
        f"sys.path.insert(0, {str(tmp_path / WORKER_NAME)!r})\n"
        f"import {PACKAGE}.worker as worker\n"
        "real = worker.Worker.capabilities\n"
        "def noisy(self, *args):\n"
        "    print('EORT python-level noise', flush=True)\n"
        "    os.write(1, b'EORT C-level noise on fd 1\\n')\n"
        "    return real(self, *args)\n"
        "worker.Worker.capabilities = noisy\n"
        "sys.exit(worker.main())\n"
    )
    transport = _Launch(launcher, tmp_path)
    client = WorkerClient(transport, "noisy worker")
    try:
        for _ in range(2):
            assert "CPUExecutionProvider" in client.capabilities(timeout=30)["providers"]
        deadline = time.monotonic() + 5
        while "C-level noise" not in transport.stderr.text(drain=0) and time.monotonic() < deadline:
            time.sleep(0.05)
        tail = transport.stderr.text(drain=0)
        assert "python-level noise" in tail and "C-level noise" in tail
    finally:
        client.close()


class _Launch(LocalTransport):
    """LocalTransport running a given script (next to the installed worker zipapp) instead of the worker."""

    def __init__(self, script: Path, workdir: Path) -> None:
        worker_command(sys.executable, workdir)  # installs the zipapp the script imports from
        super().__init__([sys.executable, str(script), "--workdir", str(workdir)])


def test_missing_numpy_or_onnxruntime_is_one_clear_line(tmp_path):
    fake = tmp_path / "python-without-ort"
    fake.write_text(f'#!/bin/sh\nexec {sys.executable} -S -I "$@"\n')  # -S: no site-packages
    fake.chmod(0o755)
    with pytest.raises(WorkerError, match=r"python-without-ort|cannot import numpy"):
        WorkerClient(LocalTransport(worker_command(str(fake), tmp_path)), "worker on device 'bare'")


def test_the_worker_starts_no_blas_thread_pool(tmp_path, monkeypatch):
    """numpy's OpenBLAS starts a thread per core that spins ~0.1 s of CPU beside the tests and the simulator; the
    worker does no BLAS work, so it starts as few threads as a worker told ``OPENBLAS_NUM_THREADS=1``."""
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)

    def threads(env):
        client = WorkerClient(LocalTransport(worker_command(sys.executable, tmp_path), env), "worker")
        try:
            return len(os.listdir(f"/proc/{client.pid}/task"))
        finally:
            client.close()

    assert threads({}) == threads({"OPENBLAS_NUM_THREADS": "1"})


def test_crashed_worker_is_reported_with_signal(tmp_path):
    client = WorkerClient(LocalTransport(worker_command(sys.executable, tmp_path)), "worker on device 'local'")
    os.kill(client.pid, signal.SIGSEGV)
    while Path(f"/proc/{client.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.01)  # dead before the request is written: a broken pipe must still say how it died
    with pytest.raises(WorkerDied, match="worker on device 'local' died during capabilities: killed by SIGSEGV"):
        client.capabilities(timeout=None)
    assert not client.alive


def test_hung_worker_times_out_and_is_stopped(tmp_path):
    client = WorkerClient(LocalTransport(worker_command(sys.executable, tmp_path)), "worker on device 'local'")
    os.kill(client.pid, signal.SIGSTOP)
    with pytest.raises(WorkerDied, match="did not answer capabilities within 0.5 s; the worker was stopped"):
        client.capabilities(timeout=0.5)
    assert client.transport.exit_status() is not None
