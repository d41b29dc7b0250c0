"""Several boards in parallel (pytest-xdist) and the board lock, against real sshd boards.

Every run here is a separate pytest process, as on a CI runner: two jobs sharing a board must take
turns, and a job that is killed must not leave the board locked.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List

import pytest

from tests.support.runs import HOLD_TEST, QUICK_TEST, require_qnn, start_pytest, wait_until
from tests.support.sshd import SSHServer

require_qnn()
pytestmark = pytest.mark.usefixtures("no_stray_workers")

COMPARE_TESTS = """
import time
import pytest

@pytest.mark.edge_model(r"{models}/conv_matmul_qdq.onnx")
@pytest.mark.edge_providers("qnn-htp", "cpu")
@pytest.mark.parametrize("n", range({count}))
def test_matches_cpu(edge_session, edge_reference, edge_inputs, edge_compare, edge_device, n):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))
    time.sleep({local_pause} if edge_device == "local" else {pause})
"""


def entry(server: SSHServer, name: str, workdir: Path, **extra: object) -> str:
    return server.inventory(name, python=sys.executable, workdir=str(workdir), **extra)


def report(pytester: pytest.Pytester, name: str) -> dict:
    return json.loads((pytester.path / name).read_text())


def test_xdist_drives_each_board_from_one_worker_spreads_local_and_merges_the_results(
    pytester, model_dir, board, second_board, tmp_path
):
    pytester.makefile(
        ".toml",
        **{"edge-devices": entry(board, "board1", tmp_path / "b1") + entry(second_board, "board3", tmp_path / "b3")},
    )
    pytester.makepyfile(
        test_edge=COMPARE_TESTS.format(models=model_dir, count=4, pause=0.1, local_pause=0.6),
        test_plain="def test_plain_one():\n    pass\n\ndef test_plain_two():\n    pass\n",
    )
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-n",
        "2",
        "--edge-device=board1",
        "--edge-device=board3",
        "--edge-device=local",
        "--edge-report=report.json",
        "--junitxml=junit.xml",
        timeout=300,
    )
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=26)
    doc = report(pytester, "report.json")
    workers: Dict[str, set] = {}
    for record in doc["results"]:
        workers.setdefault(record["device"], set()).add(record["xdist_worker"])
        assert "@" not in record["nodeid"], record["nodeid"]  # node ids stay as pytest makes them
    assert {d: len(w) for d, w in workers.items()} == {"board1": 1, "board3": 1, "local": 2}, workers
    assert workers["board1"] != workers["board3"], "the two boards should be driven in parallel"
    assert len(doc["results"]) == 24 and {r["outcome"] for r in doc["results"]} == {"passed"}
    for name in ("board1", "board3"):
        assert doc["devices"][name]["onnxruntime"] and doc["devices"][name]["board_lock"]["waited_s"] >= 0
    result.stdout.fnmatch_lines(
        [
            "*edgeort summary*",
            "edgeort device board1: Linux*providers: cpu, qnn-htp*",
            "edgeort device board3: Linux*",
            "edgeort device local: Linux*",
            "*conv_matmul_qdq.onnx*board1*qnn-htp*PASS*",
            "*conv_matmul_qdq.onnx*board3*qnn-htp*PASS*",
        ]
    )
    assert "None" not in result.stdout.str().split("edgeort summary")[1]
    properties = {(p.get("name"), p.get("value")) for p in ET.parse(pytester.path / "junit.xml").iter("property")}
    assert {("edge_device", "board1"), ("edge_device", "board3"), ("edge_device", "local")} <= properties


def test_a_board_split_across_xdist_workers_fails_saying_the_scheduling_did_not_hold(
    pytester, model_dir, board, tmp_path
):
    """--dist each hands every item to every worker: the second worker must fail, not skip, and must not
    get the advice meant for a duplicated inventory entry."""
    pytester.makefile(".toml", **{"edge-devices": entry(board, "board1", tmp_path / "b1")})
    # the first worker holds the board longer than the grace the second one gives a lock of its own run
    pytester.makepyfile(test_edge=COMPARE_TESTS.format(models=model_dir, count=1, pause=4, local_pause=0))
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-rE", "-n", "2", "--dist", "each", "--edge-device=board1", timeout=300
    )
    assert result.ret == 1
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "device 'board1': the pytest-xdist scheduling did not hold: worker gw? of "
            "this run holds the board lock, so worker gw? cannot drive the board too "
            "(--dist each); pytest-edgeort keeps each locked board on one worker under "
            "--dist load (the default) and loadgroup"
        ]
    )
    assert "lock_file" not in result.stdout.str()


def test_two_runs_on_one_board_take_turns(pytester, model_dir, board, tmp_path):
    pytester.makefile(".toml", **{"edge-devices": entry(board, "board1", tmp_path / "shared", lock_timeout=120)})
    pytester.makepyfile(test_edge=COMPARE_TESTS.format(models=model_dir, count=3, pause=0.3, local_pause=0.3))
    runs = [
        start_pytest(pytester, f"{name}.log", "--edge-device=board1", f"--edge-report={name}.json")
        for name in ("a", "b")
    ]
    for proc in runs:
        assert proc.wait(timeout=300) == 0, (pytester.path / "a.log").read_text() + (
            pytester.path / "b.log"
        ).read_text()
    docs = [report(pytester, f"{name}.json") for name in ("a", "b")]
    spans = sorted(
        (min(r["started"] for r in d["results"]), max(r["finished"] for r in d["results"]), i)
        for i, d in enumerate(docs)
    )
    (_, first_end, _), (second_start, _, second) = spans
    assert first_end <= second_start, f"the two runs used the board at the same time: {spans}"
    lock = docs[second]["devices"]["board1"]["board_lock"]
    assert lock["waited_s"] > 1 and f"pid {runs[1 - second].pid}" in lock["waited_for"], lock
    log = (pytester.path / f"{'ab'[second]}.log").read_text()
    assert f"edgeort: device 'board1' is in use: board lock {tmp_path / 'shared' / 'board.lock'} is held by" in log
    assert f"edgeort device board1: waited {lock['waited_s']:.1f} s for the board lock" in log


@pytest.mark.parametrize("killed", ["the holding pytest", "the lock process on the board"])
def test_a_killed_holder_releases_the_board(pytester, model_dir, board, tmp_path, killed):
    workdir = tmp_path / "board"
    pytester.makefile(".toml", **{"edge-devices": entry(board, "board1", workdir, lock_timeout=120)})
    pytester.makepyfile(test_hold=HOLD_TEST.format(models=model_dir), test_quick=QUICK_TEST.format(models=model_dir))
    holder = start_pytest(pytester, "a.log", "--edge-device=board1", "test_hold.py")
    waiter = None
    try:
        wait_until(lambda: (pytester.path / "holding").exists(), "the first run to hold the board")
        record = json.loads((workdir / "board.lock").read_text())
        assert f"pid {holder.pid}" in record["who"]
        waiter = start_pytest(pytester, "b.log", "--edge-device=board1", "--edge-report=b.json", "test_quick.py")
        wait_until(lambda: "is in use" in (pytester.path / "b.log").read_text(), "the second run to wait")
        os.kill(holder.pid if killed == "the holding pytest" else record["pid"], signal.SIGKILL)
        assert waiter.wait(timeout=60) == 0, (pytester.path / "b.log").read_text()
    finally:
        (pytester.path / "release").write_text("1")
        for proc in (holder, waiter):
            if proc is not None and proc.poll() is None:
                proc.wait(timeout=60)
    lock = report(pytester, "b.json")["devices"]["board1"]["board_lock"]
    assert f"pid {holder.pid}" in lock["waited_for"] and lock["waited_s"] < 60, lock


def test_one_board_under_two_names_in_one_run_fails_fast(pytester, model_dir, board, tmp_path):
    workdir = tmp_path / "same"
    pytester.makefile(".toml", **{"edge-devices": entry(board, "board1", workdir) + entry(board, "alias", workdir)})
    pytester.makepyfile(test_quick=QUICK_TEST.format(models=model_dir))
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs", "--edge-device=board1", "--edge-device=alias")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            f"*device 'alias': board lock {workdir / 'board.lock'} on 127.0.0.1:* is held by "
            "this same run (*): another device of this run is the same board or shares its "
            "lock_file; give each device its own lock_file, or set lock = false*"
        ]
    )


def test_lock_timeout_skips_or_fails_when_strict_naming_the_holder(pytester, model_dir, tmp_path):
    """The local device takes the lock too when the inventory says so (a runner that is itself a board)."""
    lock_file = tmp_path / "local.lock"
    pytester.makefile(
        ".toml", **{"edge-devices": f'[devices.local]\nlock = true\nlock_timeout = 1\nlock_file = "{lock_file}"\n'}
    )
    pytester.makepyfile(test_hold=HOLD_TEST.format(models=model_dir), test_quick=QUICK_TEST.format(models=model_dir))
    holder = start_pytest(pytester, "a.log", "test_hold.py")
    try:
        wait_until(lambda: (pytester.path / "holding").exists(), "the first run to hold the board")
        outcomes: List[pytest.RunResult] = [
            pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rsE", "test_quick.py", *strict, timeout=120)
            for strict in ((), ("--edge-strict",))
        ]
    finally:
        (pytester.path / "release").write_text("1")
        holder.wait(timeout=60)
    assert holder.returncode == 0
    message = (
        f"device 'local': board lock {lock_file} on this machine is held by *pid {holder.pid} (lock pid * on "
        "the device, since *); gave up after 1.* s (lock_timeout = 1 in the inventory)"
    )
    skipped, failed = outcomes
    assert skipped.ret == 0
    skipped.stdout.fnmatch_lines([f"skipped 1x: {message}"])
    assert failed.ret == 1
    failed.stdout.fnmatch_lines(["*ERROR at setup of test_quick[[]local-cpu[]]*", f"{message} [[]--edge-strict[]]"])
