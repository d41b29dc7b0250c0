"""A run interrupted (pytest-timeout, Ctrl-C, SIGKILL): the next test, the reports and the next run start clean."""

from __future__ import annotations

import json

import pytest

from tests.support.hostile_board import hostile_python
from tests.support.runs import require_qnn

require_qnn()

TIMEOUT_TESTS = """
import pytest

pytestmark = [pytest.mark.edge_model(r"{model}"), pytest.mark.edge_providers("cpu")]

def test_0_opens_the_session(edge_session):
    pass

@pytest.mark.timeout(4)
def test_a_times_out_mid_inference(edge_session, edge_inputs):
    edge_session.run(edge_inputs)

def test_b_starts_clean(edge_session, edge_inputs):
    assert edge_session.run(edge_inputs)
"""


def test_a_pytest_timeout_mid_inference_leaves_the_next_test_clean(pytester, model_dir, tmp_path):
    """The reply to the interrupted request must never be read as the next request's."""
    pytest.importorskip("pytest_timeout")
    python = hostile_python(tmp_path / "bin", "slow", "run", 12)
    pytester.makefile(".toml", **{"edge-devices": f'[devices.local]\npython = "{python}"\n'})
    pytester.makepyfile(TIMEOUT_TESTS.format(model=model_dir / "conv_matmul_qdq.onnx"))
    result = pytester.runpytest("-p", "no:cacheprovider", "-rf", "--edge-report=r.json")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["FAILED *test_a_times_out_mid_inference*"])
    records = {
        r["nodeid"].split("::")[1].split("[")[0]: r
        for r in json.loads((pytester.path / "r.json").read_text())["results"]
    }
    interrupted = records["test_a_times_out_mid_inference"]
    assert interrupted["phase"] == "call" and interrupted["error"].startswith("Timeout (>4.0s)")
    assert interrupted["interrupted"] == (
        "worker on device 'local': the run request was interrupted (Timeout (>4.0s) from pytest-timeout.); "
        "the worker was stopped, so the next request starts a fresh one"
    )


def ctrl_c_as_in_a_terminal() -> None:
    """SIGINT with its default action, as in a terminal (a CI job started in the background of a shell
    without job control inherits it ignored, and python then never raises KeyboardInterrupt)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("where", ["board-lock wait", "upload"])
def test_ctrl_c_before_the_first_result_writes_the_report(pytester, model_dir, tmp_path, where):
    """Ctrl-C before the first result (the board-lock wait, a model upload) still writes the JSON report."""
    import fcntl
    import os
    import signal
    import subprocess
    import sys
    import time

    lock_file = tmp_path / "board.lock"
    inventory = f'[devices.local]\nlock = true\nlock_file = "{lock_file}"\nlock_timeout = 600\n'
    if where == "upload":  # an upload that never finishes
        inventory += f'python = "{hostile_python(tmp_path / "bin", "hang", "put_model")}"\n'
    pytester.makefile(".toml", **{"edge-devices": inventory})
    pytester.makepyfile(TIMEOUT_TESTS.format(model=model_dir / "conv_matmul_qdq.onnx"))
    with open(lock_file, "w") as held:
        if where == "board-lock wait":
            held.write('{"who": "another run"}')
            held.flush()
            fcntl.flock(held, fcntl.LOCK_EX)
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--edge-report=r.json"],
            cwd=pytester.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=ctrl_c_as_in_a_terminal,
        )
        lines = []
        deadline = time.monotonic() + 120
        while not (any("is in use" in line for line in lines) or (pytester.path / "spoiled-put_model").exists()):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
            if where == "board-lock wait":
                lines.append(proc.stdout.readline().decode())
            else:
                time.sleep(0.05)
        os.kill(proc.pid, signal.SIGINT)
        output = "".join(lines) + proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 2, output  # pytest's "interrupted"
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["interrupted"] is True and report["results"] == [], report
    if where == "upload":  # the device was reached before the upload: the report names it
        assert report["devices"]["local"]["onnxruntime"]


HANG_AND_DIE = """
import os
import signal
import pytest

@pytest.mark.edge_model(r"{model}")
@pytest.mark.edge_providers("cpu")
def test_worker_hangs_then_pytest_is_killed(edge_session, edge_inputs):
    edge_session.run(edge_inputs)
    worker = edge_session.device.clients["default"].pid
    with open("hung-worker", "w") as f:
        f.write(str(worker))
    os.kill(worker, signal.SIGSTOP)  # hung as in a QNN call: it will not notice its run is gone
    os.kill(os.getpid(), signal.SIGKILL)
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


def test_the_next_run_stops_a_hung_worker_that_a_killed_run_left_before_it_takes_the_board(
    pytester, model_dir, tmp_path
):
    import os
    import signal
    import subprocess
    import sys

    workdir = tmp_path / "work"
    lock = f'lock = true\nlock_file = "{tmp_path / "b.lock"}"\n'
    pytester.makefile(".toml", **{"edge-devices": f'[devices.local]\nworkdir = "{workdir}"\n{lock}'})
    pytester.makepyfile(test_killed=HANG_AND_DIE.format(model=model_dir / "conv_matmul_qdq.onnx"))
    killed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_killed.py"],
        cwd=pytester.path,
        capture_output=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout.decode()
    hung = int((pytester.path / "hung-worker").read_text())
    try:
        assert alive(hung)
        pytester.makepyfile(test_next=TIMEOUT_TESTS.format(model=model_dir / "conv_matmul_qdq.onnx"))
        result = pytester.runpytest("-p", "no:cacheprovider", "test_next.py", "-k", "not times_out")
        result.assert_outcomes(passed=2)
        result.stdout.fnmatch_lines(
            [
                "edgeort: device 'local': stopped 1 worker(s) that an earlier run left on this machine (its pytest "
                f"was killed): pid {hung} (process group {hung})"
            ]
        )
        assert not alive(hung)
        assert list((workdir / "workers").iterdir()) == []  # the next run's workers removed their records
    finally:
        if alive(hung):
            os.kill(hung, signal.SIGKILL)
