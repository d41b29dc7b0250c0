"""Shared fixtures for the plugin's own tests: real models built once per run, real sshd boards."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.support import models
from tests.support.sshd import SSHKit, SSHServer, cmdline, sshd_missing


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the test models: float + u8 QDQ conv/matmul, a wrong-channel variant, Det models."""
    directory = tmp_path_factory.mktemp("models")
    qdq = models.conv_matmul_qdq(directory)
    models.with_changed_channel(qdq, directory / "conv_matmul_qdq_wrong.onnx")
    models.det_model(directory / "det.onnx")
    models.det_model(directory / "det_only.onnx", neighbours=False)
    models.conv_matmul_float(directory / "dynamic.onnx", batch="batch")
    models.all_dtypes_identity(directory / "identities.onnx")
    return directory


@pytest.fixture(scope="session")
def ssh_kit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHKit]:
    """Throwaway sshd servers (real OpenSSH) for this test session, stopped at its end."""
    if sshd_missing():
        pytest.skip(sshd_missing())
    kit = SSHKit(tmp_path_factory.mktemp("sshd"))
    try:
        yield kit
    finally:
        kit.close()


@pytest.fixture(scope="session")
def board(ssh_kit: SSHKit) -> SSHServer:
    """sshd on 127.0.0.1:<free port> with a throwaway host key, client key and known_hosts."""
    return ssh_kit.start("board1")


@pytest.fixture(scope="session")
def netns_board(ssh_kit: SSHKit) -> SSHServer:
    """A second board in its own network namespace (veth pair, own address), or skip saying why."""
    try:
        return ssh_kit.start_in_netns("board2")
    except RuntimeError as exc:
        pytest.skip(f"no second board in a network namespace on this machine: {exc}")


@pytest.fixture(scope="session")
def board_workdir(ssh_kit: SSHKit) -> str:
    """The boards' shared workdir: spaces and a quote, so every remote path must be quoted."""
    return str(ssh_kit.root / "board work 'dir'")


@pytest.fixture
def no_stray_workers(ssh_kit: SSHKit) -> Iterator[None]:
    """After each test, no worker runs under any test sshd (waits briefly for exits to land)."""
    yield
    deadline = time.monotonic() + 5
    while True:
        left = {f"{s.host}:{s.port}": s.worker_pids() for s in ssh_kit.servers}
        if not any(left.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    stray = {where: [cmdline(p) for p in pids] for where, pids in left.items() if pids}
    assert not stray, f"workers left running under the test sshd: {stray}"


@pytest.fixture(scope="session")
def second_board(ssh_kit: SSHKit) -> SSHServer:
    """Another board on loopback (always available, unlike the network namespace)."""
    return ssh_kit.start("board3")
