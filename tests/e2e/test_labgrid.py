"""labgrid devices against a real lab: labgrid's coordinator and exporter on loopback, places whose
NetworkService is a throwaway sshd. Every run is its own pytest process, as CI jobs sharing a lab are."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Iterator

import pytest

from pytest_edgeort.devices.labplace import Claims, LabSession, PlaceFinder
from pytest_edgeort.errors import DeviceUnavailable
from tests.support.lab import Lab, labgrid_missing
from tests.support.runs import HOLD_TEST, QUICK_TEST, require_qnn, start_pytest, wait_until
from tests.support.sshd import SilentListener, SSHServer, free_port

require_qnn()
pytestmark = pytest.mark.usefixtures("no_stray_workers")

# Holds its place until the file "release" exists (or, with workers > 0, until that many xdist workers hold one).
GATED_TESTS = """
import os
import pathlib
import time
import pytest

@pytest.mark.edge_model(r"{models}/conv_matmul_qdq.onnx")
@pytest.mark.edge_providers("cpu")
@pytest.mark.parametrize("n", range({count}))
def test_gated(edge_session, edge_reference, edge_inputs, edge_compare, n):
    pathlib.Path("holding-" + os.environ.get("PYTEST_XDIST_WORKER", "main")).write_text("1")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
        pathlib.Path("release").exists() or {workers} and len(list(pathlib.Path().glob("holding-gw*"))) == {workers}
    ):
        time.sleep(0.05)
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))
"""

COMPARE_TESTS = """
import time
import pytest

@pytest.mark.edge_model(r"{models}/conv_matmul_qdq.onnx")
@pytest.mark.edge_providers({providers})
@pytest.mark.parametrize("n", range({count}))
def test_matches_cpu(edge_session, edge_reference, edge_inputs, edge_compare, n):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))
    time.sleep({pause})
"""


@pytest.fixture(scope="module")
def needs_labgrid() -> None:
    if labgrid_missing():
        pytest.skip(labgrid_missing())


@pytest.fixture(scope="module")
def lab(needs_labgrid: None, board: SSHServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("lab"), board)
    try:
        yield lab
    finally:
        lab.close()
        if Claims(lab.address).dir.is_dir() and not claims(lab):
            Claims(lab.address).dir.rmdir()


def inventory(coordinator: str, board: SSHServer, workdir: Path, **keys: object) -> str:
    """A ``[devices.rb3]`` labgrid entry: ``place = "..."`` or ``tags = {...}`` in ``keys``."""
    lines = ["[devices.rb3]", 'kind = "labgrid"', f'coordinator = "{coordinator}"']
    lines += [f'python = "{sys.executable}"', f'workdir = "{workdir}"']
    lines += [f'identity_file = "{board.identity_file}"', f'known_hosts = "{board.known_hosts}"']
    for key, value in keys.items():
        if isinstance(value, dict):
            lines.append(f"{key} = {{ {', '.join(f'{k} = {json.dumps(v)}' for k, v in value.items())} }}")
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def identity() -> str:
    """This host's labgrid identity, as labgrid's client names it."""
    import getpass
    import socket

    return f"{os.environ.get('LG_HOSTNAME', socket.gethostname())}/{os.environ.get('LG_USERNAME', getpass.getuser())}"


def claims(lab: Lab) -> list:
    """The records of acquisitions this host's runs left for the lab (the runs remove theirs when they release)."""
    return sorted(Claims(lab.address).dir.glob("*.json"))


def log_of(pytester: pytest.Pytester, name: str) -> str:
    return (pytester.path / name).read_text()


def test_a_run_on_a_labgrid_place_passes_like_an_ssh_board_and_releases_it(pytester, model_dir, lab, board, tmp_path):
    lab.add_place("pass-1", soc="qcs6490")
    lab.add_place("other-1", soc="qcs6490")  # matches the tags, but not the place glob
    pytester.makefile(".toml", **{"edge-devices": inventory(lab.address, board, tmp_path / "w", place="pass-*")})
    tests = COMPARE_TESTS.format(models=model_dir, providers='"qnn-htp", "cpu"', count=1, pause=0)
    pytester.makepyfile(test_edge=tests)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-rsfE",
        "--edge-device=rb3",
        "--edge-device=local",  # local workers are started next to the labgrid client's gRPC threads
        "--edge-report=report.json",
        timeout=300,
    )
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            f"*edgeort: device 'rb3': acquired labgrid place pass-1 on {lab.address} "
            f"(NetworkService {board.user}@127.0.0.1:{board.port})*",
            "*conv_matmul_qdq.onnx*rb3*qnn-htp*PASS*",
        ]
    )
    doc = json.loads((pytester.path / "report.json").read_text())
    place = doc["devices"]["rb3"]["labgrid"]
    assert place["place"] == "pass-1" and place["identity"] == identity() and place["waited_for"] is None, place
    assert {r["outcome"] for r in doc["results"]} == {"passed"}
    assert {r["device"] for r in doc["results"]} == {"rb3", "local"}
    assert lab.acquired_by("pass-1") is None, "the run must release its place"
    assert claims(lab) == []


def test_two_runs_on_one_place_take_turns(pytester, model_dir, lab, board, tmp_path):
    lab.add_place("turn-1", pool="turns")
    entry = inventory(lab.address, board, tmp_path / "w", tags={"pool": "turns"}, lock_timeout=120)
    pytester.makefile(".toml", **{"edge-devices": entry})
    pytester.makepyfile(test_edge=GATED_TESTS.format(models=model_dir, count=2, workers=0))
    first = start_pytest(pytester, "a.log", "--edge-device=rb3", "--edge-report=a.json")
    try:
        wait_until(lambda: (pytester.path / "holding-main").exists(), "the first run to hold the place")
        second = start_pytest(pytester, "b.log", "--edge-device=rb3", "--edge-report=b.json")
        wait_until(lambda: "is waiting for a labgrid place" in log_of(pytester, "b.log"), "the second run to wait")
    finally:
        (pytester.path / "release").write_text("1")
    for proc in (first, second):
        assert proc.wait(timeout=300) == 0, log_of(pytester, "a.log") + log_of(pytester, "b.log")
    docs = [json.loads((pytester.path / f"{name}.json").read_text()) for name in "ab"]
    spans = [(min(r["started"] for r in d["results"]), max(r["finished"] for r in d["results"])) for d in docs]
    assert spans[0][1] <= spans[1][0], f"the two runs used the place at the same time: {spans}"
    waited = docs[1]["devices"]["rb3"]["labgrid"]
    holder = f"turn-1 is acquired by {identity()} (pytest-edgeort pid {first.pid} on this host)"
    assert waited["place"] == "turn-1" and waited["waited_for"] == holder, waited
    assert docs[0]["devices"]["rb3"]["labgrid"]["waited_for"] is None
    assert (
        f"edgeort: device 'rb3' is waiting for a labgrid place matching tag pool=turns: {holder}; "
        "waiting up to 120 s (lock_timeout)"
    ) in log_of(pytester, "b.log")
    assert f"edgeort device rb3: waited {waited['waited_s']:.1f} s for labgrid place turn-1 ({holder})" in log_of(
        pytester, "b.log"
    )
    assert lab.acquired_by("turn-1") is None


def test_a_place_held_by_someone_else_skips_after_lock_timeout_naming_the_holder(
    pytester, model_dir, lab, board, tmp_path
):
    lab.add_place("busy-1")
    assert lab.client("acquire", place="busy-1", user="alice").returncode == 0
    try:
        entry = inventory(lab.address, board, tmp_path / "w", place="busy-1", lock_timeout=1)
        pytester.makefile(".toml", **{"edge-devices": entry})
        pytester.makepyfile(test_quick=QUICK_TEST.format(models=model_dir))
        outcomes = [
            pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rsE", "--edge-device=rb3", *strict, timeout=120)
            for strict in ((), ("--edge-strict",))
        ]
    finally:
        lab.client("release", place="busy-1", user="alice")
    message = (
        f"device 'rb3': no labgrid place matching place = 'busy-1' on {lab.address} got free: busy-1 is acquired "
        "by otherhost/alice; gave up after 1.* s (lock_timeout = 1 in the inventory)"
    )
    skipped, failed = outcomes
    assert skipped.ret == 0, skipped.stdout.str()
    skipped.stdout.fnmatch_lines(
        [
            "*edgeort: device 'rb3' is waiting for a labgrid place matching place = 'busy-1': busy-1 is acquired by "
            "otherhost/alice; waiting up to 1 s (lock_timeout)*",
            f"SKIPPED [[]1[]] *{message}",
        ]
    )
    assert failed.ret == 1
    failed.stdout.fnmatch_lines(["*ERROR at setup of test_quick[[]rb3-cpu[]]*", f"{message} [[]--edge-strict[]]"])


def test_an_unreachable_coordinator_is_one_line(pytester, model_dir, lab, board, tmp_path):
    address = f"127.0.0.1:{free_port()}"
    pytester.makefile(".toml", **{"edge-devices": inventory(address, board, tmp_path / "w", place="rb3-*")})
    pytester.makepyfile(test_quick=QUICK_TEST.format(models=model_dir))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs", "--edge-device=rb3", timeout=120)
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [
            f"SKIPPED [[]1[]] *device 'rb3': cannot reach the labgrid coordinator at {address}: "
            "Error: Could not connect to coordinator"
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_a_killed_run_leaves_its_place_acquired_and_the_next_run_releases_it(pytester, model_dir, lab, board, tmp_path):
    lab.add_place("kill-1")
    pytester.makefile(
        ".toml", **{"edge-devices": inventory(lab.address, board, tmp_path / "w", place="kill-1", lock_timeout=5)}
    )
    pytester.makepyfile(test_hold=HOLD_TEST.format(models=model_dir), test_quick=QUICK_TEST.format(models=model_dir))
    holder = start_pytest(pytester, "a.log", "--edge-device=rb3", "test_hold.py")
    try:
        wait_until(lambda: (pytester.path / "holding").exists(), "the first run to hold the place")
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        (pytester.path / "release").write_text("1")
    assert lab.acquired_by("kill-1") == identity(), "labgrid keeps a killed run's place acquired"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-rs", "--edge-device=rb3", "test_quick.py", timeout=120
    )
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            f"*edgeort: device 'rb3': labgrid place kill-1 was left acquired by a killed pytest-edgeort run "
            f"(pid {holder.pid}, since *); released it*"
        ]
    )
    assert lab.acquired_by("kill-1") is None and claims(lab) == []


def test_sigterm_releases_the_place(pytester, model_dir, lab, board, tmp_path):
    lab.add_place("term-1")
    pytester.makefile(".toml", **{"edge-devices": inventory(lab.address, board, tmp_path / "w", place="term-1")})
    pytester.makepyfile(test_hold=HOLD_TEST.format(models=model_dir))
    holder = start_pytest(pytester, "a.log", "--edge-device=rb3", "test_hold.py")
    try:
        wait_until(lambda: (pytester.path / "holding").exists(), "the run to hold the place")
        assert lab.acquired_by("term-1") == identity()
        os.kill(holder.pid, signal.SIGTERM)
        assert holder.wait(timeout=60) == pytest.ExitCode.INTERRUPTED, log_of(pytester, "a.log")
    finally:
        (pytester.path / "release").write_text("1")
    assert lab.acquired_by("term-1") is None, log_of(pytester, "a.log")
    assert claims(lab) == []


def test_xdist_workers_each_acquire_a_different_place(pytester, model_dir, lab, board, tmp_path):
    for name in ("pair-1", "pair-2"):
        lab.add_place(name, pool="pair")
    entry = inventory(lab.address, board, tmp_path / "w", tags={"pool": "pair"}, lock_timeout=120)
    pytester.makefile(".toml", **{"edge-devices": entry})
    pytester.makepyfile(test_edge=GATED_TESTS.format(models=model_dir, count=4, workers=2))
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", "--edge-device=rb3", "--edge-report=report.json", timeout=300
    )
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=4)
    output = result.stdout.str() + result.stderr.str()
    acquired = {
        line.split("acquired labgrid place ")[1].split()[0]: line.split("]")[0].lstrip("[")
        for line in output.splitlines()
        if "acquired labgrid place" in line
    }
    assert sorted(acquired) == ["pair-1", "pair-2"] and len(set(acquired.values())) == 2, output
    doc = json.loads((pytester.path / "report.json").read_text())
    assert {r["xdist_worker"] for r in doc["results"]} == {"gw0", "gw1"}
    assert lab.acquired_by("pair-1") is None and lab.acquired_by("pair-2") is None


def test_without_labgrid_a_labgrid_device_is_one_line_naming_the_extra(pytester, model_dir, board, tmp_path):
    pytester.makeconftest(  # as if labgrid were not installed
        "import sys\nfor name in [n for n in sys.modules if n.split('.')[0] == 'labgrid'] + ['labgrid']:\n"
        "    sys.modules[name] = None\n"
    )
    entry = inventory("127.0.0.1:1", board, tmp_path / "w", place="rb3-*")
    pytester.makefile(".toml", **{"edge-devices": entry})
    pytester.makepyfile(test_quick=QUICK_TEST.format(models=model_dir))
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:labgrid", "-rs", "--edge-device=rb3", timeout=120
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] *device 'rb3': kind = \"labgrid\" needs the labgrid package (*): "
            "pip install 'pytest-edgeort[[]labgrid[]]'"
        ]
    )


def test_xdist_workers_take_turns_on_a_single_place(pytester, model_dir, lab, board, tmp_path):
    lab.add_place("solo-1", pool="solo")
    entry = inventory(lab.address, board, tmp_path / "w", tags={"pool": "solo"}, lock_timeout=120)
    pytester.makefile(".toml", **{"edge-devices": entry})
    pytester.makepyfile(test_edge=COMPARE_TESTS.format(models=model_dir, providers='"cpu"', count=4, pause=0.3))
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", "--edge-device=rb3", "--edge-report=report.json", timeout=300
    )
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=4)
    records = json.loads((pytester.path / "report.json").read_text())["results"]
    spans = {}
    for record in records:
        start, end = spans.get(record["xdist_worker"], (record["started"], record["finished"]))
        spans[record["xdist_worker"]] = (min(start, record["started"]), max(end, record["finished"]))
    (_, first_end), (second_start, _) = sorted(spans.values())
    assert first_end <= second_start, f"two workers used the one place at the same time: {spans}"
    assert lab.acquired_by("solo-1") is None


def test_a_place_another_client_got_first_is_left_unclaimed_and_no_match_is_one_line(lab, tmp_path):
    lab.add_place("race-1")
    assert lab.client("acquire", place="race-1", user="alice").returncode == 0
    session = LabSession("rb3", lab.address, 10)
    try:
        finder = PlaceFinder(session, "race-1", {}, lambda message: None, Claims(lab.address, tmp_path))
        assert finder._try(session.places["race-1"]) is False  # the coordinator refused: alice was first
        assert finder.claims.of("race-1") == [] and finder.held is None
        with pytest.raises(DeviceUnavailable) as info:
            PlaceFinder(session, "nope-*", {"soc": "x"}, lambda message: None).acquire(1)
    finally:
        session.close()
        lab.client("release", place="race-1", user="alice")
    assert str(info.value).startswith(
        f"device 'rb3': no labgrid place on {lab.address} matches place = 'nope-*' and tag soc=x (places: "
    )
    assert "race-1" in str(info.value)


def test_a_coordinator_that_never_answers_is_one_line_after_connect_timeout(needs_labgrid):
    listener = SilentListener()  # accepts the TCP connection, never speaks HTTP/2
    try:
        with pytest.raises(DeviceUnavailable) as info:
            LabSession("rb3", f"127.0.0.1:{listener.port}", 1)
    finally:
        listener.close()
    assert str(info.value) == (
        f"device 'rb3': cannot reach the labgrid coordinator at 127.0.0.1:{listener.port}: "
        "no answer within 1 s (connect_timeout)"
    )
