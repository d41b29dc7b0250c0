"""SSH boards against a real OpenSSH server on this machine (no mocked SSH).

One sshd per session on 127.0.0.1 (``board1``) and, where the machine allows it, a second one in a
network namespace with its own address (``board2``); both use this test run's Python as the board's
python. Every test checks afterwards that no worker is left running under either sshd.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from pytest_edgeort.board.wire import Op
from pytest_edgeort.board.worker import OWN_GRAPH
from pytest_edgeort.config.inventory import DeviceConfig
from pytest_edgeort.devices.client import WorkerDied
from pytest_edgeort.errors import DeviceUnavailable
from tests.support.runs import MATCH_TEST, require_qnn, run
from tests.support.sshd import SilentListener, SSHServer, sshd_missing

require_qnn()
if sshd_missing():
    pytest.skip(sshd_missing(), allow_module_level=True)

from pytest_edgeort.devices.ssh import SSHDevice  # noqa: E402  (imports fabric/paramiko)

pytestmark = pytest.mark.usefixtures("no_stray_workers")


def write_inventory(pytester: pytest.Pytester, *tables: str) -> None:
    pytester.makefile(".toml", **{"edge-devices": "\n".join(tables)})


def entry(server: SSHServer, name: str, workdir: str, **extra: object) -> str:
    return server.inventory(name, python=sys.executable, workdir=workdir, **extra)


def outcomes_by_device(result: pytest.RunResult) -> Dict[str, Dict[str, str]]:
    """``{device: {"test_x[provider]": "PASSED", ...}}`` from ``-v`` output."""
    table: Dict[str, Dict[str, str]] = {}
    for line in result.outlines:
        if "::" not in line or "[" not in line:
            continue
        for word in ("PASSED", "FAILED", "ERROR", "SKIPPED"):
            if f" {word}" in line:
                test = line.split("::", 1)[1].split(" ", 1)[0]
                name, params = test.split("[", 1)
                device, provider = params.rstrip("]").split("-", 1)
                table.setdefault(device, {})[f"{name}[{provider}]"] = word
    return table


RECORDS_CONFTEST = """
import json
from pytest_edgeort.run import edge_run

def pytest_unconfigure(config):
    run = edge_run(config)
    devices = {name: {"uploads": d.uploads, "worker_uploads": getattr(d, "worker_uploads", 0),
                      "connections": getattr(d, "connections", 0)} for name, d in run.devices.items()}
    with open("edge-state.json", "w") as f:
        json.dump({"records": [r.to_dict() for r in run.records], "devices": devices}, f, default=str)
"""

CORE_TESTS = """
import pytest

QDQ = r"{models}/conv_matmul_qdq.onnx"

@pytest.mark.edge_model(QDQ)
@pytest.mark.edge_providers("qnn-htp", "cpu")
def test_matches_cpu(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))

@pytest.mark.edge_model(QDQ, reference_model=r"{models}/conv_matmul_qdq_wrong.onnx")
@pytest.mark.edge_providers("qnn-htp")
def test_real_error_fails(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))

@pytest.mark.edge_model(r"{models}/det.onnx")
@pytest.mark.edge_providers("qnn-htp")
def test_det_runs_fully_on_npu(edge_assert_no_fallback):
    edge_assert_no_fallback()

@pytest.mark.edge_model(QDQ)
@pytest.mark.edge_providers("qnn-htp")
def test_qdq_runs_fully_on_npu(edge_assert_no_fallback):
    assert edge_assert_no_fallback() == 1.0

@pytest.mark.edge_model(r"{models}/det_only.onnx")
@pytest.mark.edge_providers("qnn-htp")
def test_everything_on_cpu(edge_session):
    pass

@pytest.mark.edge_model(QDQ)
@pytest.mark.edge_providers("cuda")
def test_missing_provider(edge_session):
    pass

@pytest.mark.edge_model(QDQ)
@pytest.mark.edge_providers("qnn-htp")
def test_memory_state_and_latency(edge_session, edge_inputs):
    edge_session.run(edge_inputs)  # the first run of a qnn-htp session is the memory-state check
    assert len(edge_session.time(edge_inputs, runs=3, warmup=1)) == 3
"""

EXPECTED_CORE = {
    "test_matches_cpu[qnn-htp]": "PASSED",
    "test_matches_cpu[cpu]": "PASSED",
    "test_real_error_fails[qnn-htp]": "FAILED",
    "test_det_runs_fully_on_npu[qnn-htp]": "FAILED",
    "test_qdq_runs_fully_on_npu[qnn-htp]": "PASSED",
    "test_everything_on_cpu[qnn-htp]": "ERROR",
    "test_missing_provider[cuda]": "SKIPPED",
    "test_memory_state_and_latency[qnn-htp]": "PASSED",
}


def comparisons(pytester: pytest.Pytester) -> Dict[str, Dict[str, List[dict]]]:
    """Recorded comparison metrics per device and test (device part of the id removed)."""
    state = json.loads((pytester.path / "edge-state.json").read_text())
    out: Dict[str, Dict[str, List[dict]]] = {}
    for record in state["records"]:
        if "comparison" in record:
            key = record["nodeid"].replace(f"[{record['device']}-", "[")
            metrics = [
                {k: o.get(k) for k in ("max_abs", "max_lsb", "snr_db", "passed")}
                for o in record["comparison"]["outputs"]
            ]
            out.setdefault(record["device"], {})[key] = metrics
    return out


def assert_same_verdicts(pytester: pytest.Pytester, result: pytest.RunResult, devices: List[str]) -> None:
    table = outcomes_by_device(result)
    assert sorted(table) == sorted(devices), result.stdout.str()
    for device in devices:
        assert table[device] == EXPECTED_CORE, f"{device}: {table[device]}\n{result.stdout.str()}"
    metrics = comparisons(pytester)
    for device in devices[1:]:
        assert metrics[device] == metrics[devices[0]]


def test_core_markers_give_the_same_verdicts_on_the_ssh_board(pytester, model_dir, board, board_workdir):
    write_inventory(pytester, entry(board, "board1", board_workdir))
    pytester.makeconftest(RECORDS_CONFTEST)
    pytester.makepyfile(CORE_TESTS.format(models=model_dir))
    result = run(pytester, "-v", "--edge-device=local", "--edge-device=board1")
    assert_same_verdicts(pytester, result, ["local", "board1"])
    result.stdout.fnmatch_lines(
        [
            "edgeort: devices local, board1;*",
            f"edgeort device board1: Linux*python {sys.version.split()[0]}, onnxruntime *; providers: cpu, qnn-htp*",
            "*test_matches_cpu[[]board1-qnn-htp[]] PASSED*",
            "*det.onnx on board1/qnn-htp does not run fully on QNNExecutionProvider: "
            "1 of 3 nodes would run on CPU: Det x1 (det_node)*",
            "*device 'board1' has no provider 'cuda' (CUDAExecutionProvider); it has: cpu, qnn-htp*",
        ]
    )
    assert (
        "conv_matmul_qdq.onnx on board1/qnn-htp vs cpu reference conv_matmul_qdq_wrong.onnx: 1 of 1 outputs failed"
        in result.stdout.str()
    )


def test_two_boards_one_in_a_network_namespace(pytester, model_dir, board, netns_board, board_workdir):
    write_inventory(pytester, entry(board, "board1", board_workdir), entry(netns_board, "board2", board_workdir + "2"))
    pytester.makeconftest(RECORDS_CONFTEST)
    pytester.makepyfile(CORE_TESTS.format(models=model_dir))
    result = run(pytester, "-v", "--edge-device=board1", "--edge-device=board2")
    assert_same_verdicts(pytester, result, ["board1", "board2"])
    result.stdout.fnmatch_lines(["edgeort device board2: Linux*", "*test_matches_cpu[[]board2-qnn-htp[]] PASSED*"])


def fingerprint_of(public_key_line: str, tmp: Path) -> str:
    """OpenSSH's own fingerprint of a key ("ssh-ed25519 SHA256:...")."""
    path = tmp / "key.pub"
    path.write_text(public_key_line + "\n")
    out = subprocess.run(["ssh-keygen", "-lf", str(path)], capture_output=True, text=True, check=True).stdout
    return f"{public_key_line.split()[0]} {out.split()[1]}"


@pytest.mark.parametrize("strict", [False, True])
def test_unknown_host_key_is_refused(pytester, model_dir, board, board_workdir, strict):
    known = pytester.path / "known hosts;x"  # the printed command quotes it
    known.write_text("")
    write_inventory(pytester, entry(board, "board1", board_workdir, known_hosts=str(known)))
    pytester.makepyfile(MATCH_TEST.format(model=model_dir / "conv_matmul_qdq.onnx"))
    result = run(pytester, "--edge-device=board1", *(["--edge-strict"] if strict else []))
    message = (
        f"device 'board1': host key for 127.0.0.1:{board.port} is not in {known} (refusing to connect; the server "
        f"offers {fingerprint_of(board.host_key_line, pytester.path)}; add it with "
        f"`ssh-keyscan -p {board.port} 127.0.0.1 >> '{known}'` after checking that fingerprint, "
        "or set insecure_skip_host_key_check = true)"
    )
    assert message in result.stdout.str()
    if strict:
        result.assert_outcomes(errors=1)
        assert message + " [--edge-strict]" in result.stdout.str()
    else:
        result.assert_outcomes(skipped=1)


def test_changed_host_key_is_an_error_even_without_strict(pytester, model_dir, board, board_workdir, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    other = " ".join((tmp_path / "other.pub").read_text().split()[:2])
    known = pytester.path / "known hosts;x"  # the printed command quotes it
    known.write_text(f"[127.0.0.1]:{board.port} {other}\n")
    write_inventory(pytester, entry(board, "board1", board_workdir, known_hosts=str(known)))
    pytester.makepyfile(MATCH_TEST.format(model=model_dir / "conv_matmul_qdq.onnx"))
    result = run(pytester, "--edge-device=board1")
    result.assert_outcomes(errors=1)  # a security event, not an outage: CI must not stay green
    assert (
        f"device 'board1': host key for 127.0.0.1:{board.port} has CHANGED: the server offers "
        f"{fingerprint_of(board.host_key_line, tmp_path)} but {known} has {fingerprint_of(other, tmp_path)} "
        "(refusing to connect; someone may be intercepting the connection, or the board was reinstalled: if so, "
        f"remove the old entry with `ssh-keygen -R '[127.0.0.1]:{board.port}' -f '{known}'` and add the new key)"
    ) in result.stdout.str()


def test_insecure_skip_host_key_check_connects_without_known_hosts(pytester, model_dir, board, board_workdir):
    write_inventory(
        pytester,
        entry(
            board, "board1", board_workdir, known_hosts=str(pytester.path / "none"), insecure_skip_host_key_check=True
        ),
    )
    pytester.makepyfile(MATCH_TEST.format(model=model_dir / "conv_matmul_qdq.onnx"))
    pytester.makepyfile(test_second=MATCH_TEST.format(model=model_dir / "conv_matmul_qdq.onnx"))
    result = run(pytester, "--edge-device=board1")
    result.assert_outcomes(passed=2)
    assert not (pytester.path / "none").exists()  # nothing is written to known_hosts
    warning = (
        f"edgeort: WARNING: device 'board1': insecure_skip_host_key_check = true, so the host key of "
        f"127.0.0.1:{board.port} is not verified (anyone on the path can pose as the board)"
    )
    assert result.stdout.str().count(warning) == 1


@pytest.mark.parametrize("content", ["binary garbage", "a directory"])
def test_an_unreadable_known_hosts_is_one_line_naming_it(pytester, model_dir, board, board_workdir, content):
    known = pytester.path / "known_hosts"
    if content == "a directory":
        known.mkdir()
        problem = "is a directory, not a file"
    else:
        known.write_bytes(bytes(range(256)) * 4)
        problem = "cannot be read as an OpenSSH known_hosts file (*)"
    write_inventory(pytester, entry(board, "board1", board_workdir, known_hosts=str(known)))
    pytester.makepyfile(MATCH_TEST.format(model=model_dir / "conv_matmul_qdq.onnx"))
    result = run(pytester, "--edge-device=board1")
    result.assert_outcomes(errors=1)
    assert "INTERNALERROR" not in result.stdout.str()
    result.stdout.fnmatch_lines([f"device 'board1': known_hosts {known} {problem}"])


def test_ssh_config_alias_user_port_key_and_known_hosts(pytester, model_dir, board, board_workdir):
    ssh_dir = pytester.path / ".ssh"  # pytester points HOME at its directory
    ssh_dir.mkdir()
    (ssh_dir / "config").write_text(
        f"Host myboard\n  HostName 127.0.0.1\n  Port {board.port}\n  User {board.user}\n"
        f"  IdentityFile {board.identity_file}\n  UserKnownHostsFile {board.known_hosts}\n"
    )
    write_inventory(
        pytester,
        f'[devices.board1]\nkind = "ssh"\nhost = "myboard"\npython = "{sys.executable}"\nworkdir = "{board_workdir}"\n',
    )
    pytester.makepyfile(MATCH_TEST.format(model=model_dir / "conv_matmul_qdq.onnx"))
    run(pytester, "--edge-device=board1").assert_outcomes(passed=1)


@pytest.fixture
def silent_listener() -> Iterator[SilentListener]:
    """A TCP port that accepts connections but never speaks SSH, counting them."""
    listener = SilentListener()
    try:
        yield listener
    finally:
        listener.close()


@pytest.mark.parametrize("strict", [False, True])
def test_unreachable_board_skips_or_fails_when_strict(pytester, model_dir, board, silent_listener, strict):
    write_inventory(pytester, board.inventory("board1", port=silent_listener.port, connect_timeout=1.5))
    pytester.makepyfile(
        MATCH_TEST.format(model=model_dir / "conv_matmul_qdq.onnx")
        + f'''
@pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}")
def test_second(edge_session):
    pass
'''
    )
    result = run(pytester, "--edge-device=board1", *(["--edge-strict"] if strict else []))
    message = (
        f"device 'board1': cannot connect to 127.0.0.1:{silent_listener.port} within 1.5 s: "
        "the SSH handshake did not complete (is an SSH server listening there?)"
    )
    assert message in result.stdout.str()
    if strict:
        result.assert_outcomes(errors=2)
        assert message + " [--edge-strict]" in result.stdout.str()
        assert result.ret == 1
    else:
        result.assert_outcomes(skipped=2)
        assert result.ret == 0
    assert silent_listener.connections == 1, "the unreachable board is tried once per run, not once per test"


@pytest.mark.timeout(10)  # 10x connect_timeout; without it paramiko would wait 15 s for the banner
def test_connect_gives_up_within_connect_timeout(board, silent_listener):
    device = SSHDevice(
        DeviceConfig(
            "board1",
            kind="ssh",
            host="127.0.0.1",
            port=silent_listener.port,
            user=board.user,
            identity_file=str(board.identity_file),
            known_hosts=str(board.known_hosts),
            connect_timeout=1.0,
        )
    )
    with pytest.raises(DeviceUnavailable) as info:
        device.describe()
    assert str(info.value).startswith(
        f"device 'board1': cannot connect to 127.0.0.1:{silent_listener.port} within 1 s: "
    )
    assert silent_listener.connections == 1


@pytest.fixture(scope="session")
def python_without_onnxruntime(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A venv with numpy (linked in) but no onnxruntime."""
    import numpy

    venv = tmp_path_factory.mktemp("bare-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    source = Path(numpy.__file__).parent
    for name in ("numpy", "numpy.libs"):
        if (source.parent / name).exists():
            (site / name).symlink_to(source.parent / name)
    return str(venv / "bin" / "python")


def test_board_python_without_onnxruntime_is_one_clear_line(
    pytester, model_dir, board, board_workdir, python_without_onnxruntime
):
    write_inventory(pytester, board.inventory("board1", python=python_without_onnxruntime, workdir=board_workdir))
    pytester.makepyfile(MATCH_TEST.format(model=model_dir / "conv_matmul_qdq.onnx"))
    result = run(pytester, "--edge-device=board1")
    result.assert_outcomes(skipped=1)
    assert (
        f"device 'board1': worker on device 'board1': {python_without_onnxruntime} cannot import onnxruntime "
        "(No module named 'onnxruntime'); the board needs python3 + numpy + onnxruntime"
    ) in result.stdout.str()


def test_board_python_without_numpy_is_one_clear_line(pytester, model_dir, board, board_workdir, tmp_path):
    """The board lock's worker needs no numpy, so the session worker's one-line reason is what shows."""
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    write_inventory(pytester, board.inventory("board1", python=python, workdir=board_workdir))
    pytester.makepyfile(MATCH_TEST.format(model=model_dir / "conv_matmul_qdq.onnx"))
    result = run(pytester, "--edge-device=board1")
    result.assert_outcomes(skipped=1)
    assert "Traceback" not in result.stdout.str()
    assert (
        f"device 'board1': worker on device 'board1': {python} cannot import numpy (No module named 'numpy'); "
        "the board needs python3 + numpy + onnxruntime"
    ) in result.stdout.str()


OLD_PYTHONS = {v: f"/root/.pyenv/versions/{v}/bin/python" for v in ("2.7.18", "3.7.16")}  # pyenv's, where present


@pytest.mark.parametrize("version", sorted(OLD_PYTHONS))
def test_a_board_python_older_than_3_8_is_one_line_naming_the_minimum(
    pytester, model_dir, board, board_workdir, version
):
    python = OLD_PYTHONS[version]
    if not os.access(python, os.X_OK):
        pytest.skip(f"no Python {version} on this machine ({python})")
    write_inventory(pytester, board.inventory("board1", python=python, workdir=board_workdir))
    pytester.makepyfile(MATCH_TEST.format(model=model_dir / "conv_matmul_qdq.onnx"))
    result = run(pytester, "--edge-device=board1")
    result.assert_outcomes(skipped=1)
    assert "Traceback" not in result.stdout.str() and "SyntaxError" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            f"SKIPPED * device 'board1': preparing the workdir with {python} failed on 127.0.0.1:*: edgeort: "
            f"{python} is Python {version}; the board worker needs Python 3.8 or newer (set python = * for this "
            "device in the inventory)"
        ]
    )


def test_missing_board_python_names_it(pytester, model_dir, board, board_workdir):
    write_inventory(pytester, board.inventory("board1", python="/opt/no such/python3", workdir=board_workdir))
    pytester.makepyfile(MATCH_TEST.format(model=model_dir / "conv_matmul_qdq.onnx"))
    result = run(pytester, "--edge-device=board1")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED * device 'board1': preparing the workdir with /opt/no such/python3 failed on "
            "127.0.0.1:*: *: /opt/no such/python3: No such file or directory"
        ]
    )


def test_python_and_env_from_the_inventory_reach_the_worker_but_not_its_command_line(
    pytester, model_dir, board, board_workdir
):
    """Env values may be secrets (API tokens): `ps` on the board must not show them."""
    write_inventory(pytester, entry(board, "board1", board_workdir, env={"EDGE_TEST_VAR": "a b 'c'"}))
    pytester.makepyfile(f'''
import pytest

@pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}")
@pytest.mark.edge_providers("cpu")
def test_env(edge_session, edge_run_state):
    device = edge_run_state.device("board1")
    assert device.describe()["python_executable"] == {sys.executable!r}
    pid = device.clients["default"].pid
    environ = open(f"/proc/{{pid}}/environ", "rb").read().split(b"\\0")
    assert b"EDGE_TEST_VAR=a b 'c'" in environ
    group = device.shell(f"pgrep -g {{device.clients['default'].transport.pgid}}").split()
    assert len(group) >= 2  # the launcher shell and the worker
    for member in group:
        assert b"a b 'c'" not in open(f"/proc/{{member}}/cmdline", "rb").read()
''')
    run(pytester, "--edge-device=board1").assert_outcomes(passed=1)


@pytest.mark.parametrize(
    "signal_name, inventory, message",
    [
        ("KILL", {}, "died during run: killed by SIGKILL"),
        (
            "STOP",
            {"command_timeout": 3},
            "did not answer run within 3 s (command_timeout = 3 in *edge-devices.toml); the worker was stopped",
        ),
    ],
    ids=["killed", "hung"],
)
def test_killed_or_hung_worker_fails_that_test_and_the_next_one_recovers(
    pytester, model_dir, board, board_workdir, signal_name, inventory, message
):
    write_inventory(pytester, entry(board, "board1", board_workdir, **inventory))
    pytester.makepyfile(f'''
import pytest

pytestmark = [pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}"), pytest.mark.edge_providers("cpu")]

def test_a_broken(edge_session, edge_inputs):
    device = edge_session.device
    device.shell(f"kill -{signal_name} {{device.clients['default'].pid}}")
    edge_session.run(edge_inputs)

def test_b_recovers(edge_session, edge_inputs):
    assert set(edge_session.run(edge_inputs)) == {{"y"}}
''')
    result = run(pytester, "--edge-device=board1")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines([f"*conv_matmul_qdq.onnx on board1/cpu: worker on device 'board1' {message}*"])


def test_dropped_connection_fails_the_running_test_and_the_next_reconnects(pytester, model_dir, board, board_workdir):
    write_inventory(pytester, entry(board, "board1", board_workdir))
    pytester.makeconftest(RECORDS_CONFTEST)
    pytester.makepyfile(f'''
import socket
import pytest

pytestmark = [pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}"), pytest.mark.edge_providers("qnn-htp")]

FP16_GROUP = {{"soc_model": "60"}}  # process-global QNN state: a worker (isolation group) of its own

def test_0_other_group(edge_open, edge_inputs):
    edge_open(r"{model_dir / "conv_matmul_qdq.onnx"}", "qnn-htp", FP16_GROUP).run(edge_inputs)

def test_a_dropped(edge_session, edge_inputs):
    edge_session.device.connection().transport.sock.shutdown(socket.SHUT_RDWR)  # the TCP connection goes away
    edge_session.run(edge_inputs)

def test_b_other_group_reopens(edge_open, edge_inputs):
    edge_open(r"{model_dir / "conv_matmul_qdq.onnx"}", "qnn-htp", FP16_GROUP).run(edge_inputs)

def test_c_reconnects(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))
''')
    result = run(pytester, "--edge-device=board1")
    result.assert_outcomes(failed=1, passed=3)
    result.stdout.fnmatch_lines(
        [
            "*conv_matmul_qdq.onnx on board1/qnn-htp: worker on device 'board1' died during run: connection lost*",
        ]
    )
    state = json.loads((pytester.path / "edge-state.json").read_text())
    assert state["devices"]["board1"]["connections"] == 2


def test_model_and_worker_cache_hit_uploads_nothing_the_second_time(pytester, model_dir, board, tmp_path):
    workdir = str(tmp_path / "fresh workdir")
    write_inventory(pytester, entry(board, "board1", workdir))
    pytester.makeconftest(RECORDS_CONFTEST)
    pytester.makepyfile(MATCH_TEST.format(model=model_dir / "conv_matmul_qdq.onnx"))
    uploads = []
    for _ in range(2):
        run(pytester, "--edge-device=board1").assert_outcomes(passed=1)
        device = json.loads((pytester.path / "edge-state.json").read_text())["devices"]["board1"]
        uploads.append((device["uploads"], device["worker_uploads"]))
    assert uploads == [(1, 1), (0, 0)]
    names = sorted(p.name for p in Path(workdir).iterdir())
    assert names[:3] == ["board.lock", "epcontext", "models"] and names[3].startswith("worker-")
    assert names[4:] == ["workers"]
    assert list((Path(workdir) / "workers").iterdir()) == []  # each worker removed its record when it ended
    entries = [json.loads(p.read_text())["key"]["model"] for p in (Path(workdir) / "epcontext").glob("*.json")]
    assert len([m for m in entries if not m.startswith(OWN_GRAPH)]) == 1  # the compiled graph, beside the models
    assert len(entries) == 3  # and the worker's own graphs' (QNN HTP probe, memory scrub)


def test_terminate_kills_a_stuck_worker_on_the_board(board, board_workdir):
    device = SSHDevice(board.device_config("board1", board_workdir))
    client = device.client()
    pgid = client.transport.pgid
    assert device.shell(f"pgrep -g {pgid}").split()  # the launcher shell and the python worker
    os.kill(client.pid, signal.SIGSTOP)  # stuck: it will never read EOF on its stdin
    client.close(timeout=0.5)
    deadline = time.monotonic() + 5
    while subprocess.run(board.ssh_args(f"pgrep -g {pgid}"), capture_output=True).stdout:
        assert time.monotonic() < deadline, "the stopped worker's process group is still on the board"
        time.sleep(0.1)
    device.close()


def test_unknown_device_lists_the_inventory(pytester, model_dir, board, board_workdir):
    write_inventory(pytester, entry(board, "board1", board_workdir))
    pytester.makepyfile(MATCH_TEST.format(model=model_dir / "conv_matmul_qdq.onnx"))
    result = run(pytester, "--edge-device=bord1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*unknown edge device 'bord1' (did you mean 'board1'?); known devices: board1, local (from "
            f"{pytester.path / 'edge-devices.toml'})*"
        ]
    )


def test_reconnect_retires_the_workers_of_every_isolation_group(board, board_workdir):
    device = SSHDevice(board.device_config("board1", board_workdir))
    try:
        first, other = device.client(), device.client("qnn-htp:soc_model=60")
        device.connection().transport.sock.shutdown(socket.SHUT_RDWR)
        with pytest.raises(WorkerDied, match="died during echo: connection lost"):
            first.echo([], timeout=10)
        device.worker_died()  # what a session does after WorkerDied
        assert not other.alive  # without a request: sessions in that group reopen instead of failing once more
        fresh = device.client()
        assert not other.alive and device.connections == 2
        assert device.client("qnn-htp:soc_model=60").request(Op.ECHO, timeout=10)[0]["ok"]
        assert fresh.alive and fresh is not first
    finally:
        device.close()


def test_more_worker_channels_than_sshd_allows_is_one_line_naming_max_sessions(
    pytester, model_dir, ssh_kit, board_workdir
):
    small = ssh_kit.start("small_board", max_sessions=2)  # fewer than the lock + two worker groups need
    write_inventory(pytester, entry(small, "board1", board_workdir))
    pytester.makepyfile(f'''
import pytest

@pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}")
@pytest.mark.edge_providers("qnn-htp")
def test_own_group(edge_open):
    edge_open(r"{model_dir / "conv_matmul_qdq.onnx"}", "qnn-htp", options={{"soc_model": "60"}})
''')
    result = run(pytester, "--edge-device=board1")
    assert result.ret == 1 and result.parseoutcomes().get("passed", 0) == 0  # which channel is refused varies
    assert "Traceback" not in result.stdout.str() and "ChannelException" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            f"device 'board1': the SSH server on 127.0.0.1:{small.port} refused another "
            "session channel (Connect failed; * open on this connection): sshd's MaxSessions "
            "(default 10) limits them, and this run needs one per isolation group plus the "
            "board lock; raise MaxSessions in the board's sshd_config"
        ]
    )


DOOMED: Dict[str, SSHServer] = {}  # the in-process inner run stops the server through this


def test_a_board_that_goes_away_is_one_line_per_test_and_counts_as_unavailable(
    pytester, model_dir, ssh_kit, board_workdir
):
    DOOMED["board"] = ssh_kit.start("doomed_board")
    write_inventory(pytester, entry(DOOMED["board"], "board1", board_workdir, connect_timeout=3))
    pytester.makepyfile(f'''
import sys
import pytest
from tests.support.sshd import SilentListener

pytestmark = [pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}"), pytest.mark.edge_providers("cpu")]

def test_a_works(edge_session, edge_inputs):
    edge_session.run(edge_inputs)

def test_b_sshd_goes_down(edge_session, edge_inputs):
    doomed = sys.modules["tests.e2e.test_ssh"].DOOMED
    doomed["board"].stop()  # sshd and every session it served
    doomed["listener"] = SilentListener(doomed["board"].port)  # counts the attempts to reconnect
    edge_session.run(edge_inputs)

@pytest.mark.parametrize("n", range(3))
def test_c_while_down(edge_session, edge_inputs, n):
    edge_session.run(edge_inputs)
''')
    try:
        result = run(pytester, "--edge-device=board1")
        attempts = DOOMED["listener"].connections
    finally:
        if "listener" in DOOMED:
            DOOMED.pop("listener").close()
    result.assert_outcomes(passed=1, failed=1, skipped=3)
    text = result.stdout.str()
    assert "Traceback" not in text and "DeviceUnavailable" not in text
    result.stdout.fnmatch_lines(
        ["*conv_matmul_qdq.onnx on board1/cpu: worker on device 'board1' died during run: connection lost*"]
    )
    skips = [line for line in result.outlines if line.startswith("SKIPPED")]
    assert len(skips) == 1 and "device 'board1': cannot connect to 127.0.0.1:" in skips[0]  # one reason, 3 tests
    assert attempts == 1  # the board was tried once more, then counted as unavailable for the run


def test_a_board_without_an_sftp_server_works(pytester, model_dir, ssh_kit, tmp_path):
    """dropbear and minimal images have no SFTP subsystem: a shell and python3 must be enough."""
    bare = ssh_kit.start("no_sftp_board", sftp=False)
    workdir = tmp_path / "board"
    write_inventory(pytester, entry(bare, "board1", str(workdir)))
    pytester.makepyfile(MATCH_TEST.format(model=model_dir / "conv_matmul_qdq.onnx"))
    run(pytester, "--edge-device=board1").assert_outcomes(passed=1)
    assert [p.name for p in workdir.glob("worker-*")] and not list(workdir.glob("*.tmp"))
