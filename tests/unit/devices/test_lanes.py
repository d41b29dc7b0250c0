"""Simulator lanes: a simulated session's long batch runs in several worker processes, one core each, and gives
the outputs one worker gives, bit for bit, in feed order; without an EP-context cache hit it stays in one worker."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import numpy as np
import pytest

from pytest_edgeort.config.inventory import DeviceConfig
from pytest_edgeort.config.providers import provider_options, resolve_provider
from pytest_edgeort.devices import base
from pytest_edgeort.devices.lanes import MAX_LANES, lane_count, shares
from pytest_edgeort.devices.local import LocalDevice
from pytest_edgeort.devices.ssh import SSHDevice
from pytest_edgeort.model.info import model_info
from pytest_edgeort.model.inputs import generate_inputs
from tests.support.runs import require_qnn, wait_until

HTP = resolve_provider("qnn-htp")
CORES = len(os.sched_getaffinity(0))


def test_shares_are_contiguous_in_order_and_at_most_one_apart() -> None:
    assert shares(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert shares([1, 2], 3) == [[1], [2], []]
    for n in range(1, 5):
        for size in range(0, 12):
            parts = shares(list(range(size)), n)
            assert [x for part in parts for x in part] == list(range(size)) and len(parts) == n
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_lane_count_is_the_inventory_key_else_the_cores_per_pytest_process() -> None:
    assert lane_count(None, 2, 1) == 2 and lane_count(None, 2, 2) == 1  # xdist -n 2 on 2 cores: no lanes
    assert lane_count(None, 64, 1) == MAX_LANES and lane_count(None, None, 1) == 1 and lane_count(None, 1, 4) == 1
    assert lane_count(1, 16, 1) == 1 and lane_count(3, 2, 2) == 3  # the inventory's word goes


def outputs_bytes(outputs: List[Dict[str, np.ndarray]]) -> List[List[Tuple[str, bytes]]]:
    return [[(name, array.tobytes()) for name, array in o.items()] for o in outputs]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"


class Spy:
    """Which session ran a feed on which core (runs that name a core: the shares of a spread batch)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: List[Tuple[str, int]] = []
        real = base.WorkerSession.run

        def run(session: base.WorkerSession, feed, check_memory, core=None):  # type: ignore[no-untyped-def]
            if core is not None:
                self.calls.append((session.sid, core))
            return real(session, feed, check_memory, core)

        monkeypatch.setattr(base.WorkerSession, "run", run)


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalDevice]:
    """A ``local`` device whose every simulated batch counts as long (a lane for each core)."""
    require_qnn()
    if CORES < 2:
        pytest.skip("lanes need two cores")
    monkeypatch.setattr(base, "LANE_MIN_S", 0.0)
    device = LocalDevice(DeviceConfig("local", workdir=str(tmp_path / "work"), command_timeout=60.0))
    yield device
    device.close()


def open_htp(device: base.WorkerDevice, model_dir: Path) -> Tuple[base.WorkerSession, list]:
    model = model_info(model_dir / "conv_matmul_qdq.onnx")
    session = device.open_session(model, HTP, provider_options(HTP, None, None, where="test"), False)
    return session, [generate_inputs(model, seed=n) for n in range(9)]


def test_a_long_simulated_batch_is_spread_over_lanes_with_one_workers_outputs(local, model_dir, monkeypatch):
    session, feeds = open_htp(local, model_dir)
    spy = Spy(monkeypatch)
    spread = session.run_all(feeds)
    one_worker = [session.run(feed, False)[1] for feed in feeds]
    assert outputs_bytes(spread) == outputs_bytes(one_worker)  # every output, bit for bit, in feed order

    lanes = session.lanes or []
    assert len(lanes) == min(CORES, MAX_LANES) - 1 and all(lane.reply["ep_context"]["state"] == "hit" for lane in lanes)
    ran = {(sid, core) for sid, core in spy.calls}
    assert ran == {(session.sid, 0), *((lane.sid, n) for n, lane in enumerate(lanes, 1))}  # a core each
    assert len(spy.calls) == len(feeds) - 1  # the first feed ran alone (timed), the rest were shared
    spy.calls.clear()
    session.run_all(feeds[::-1])  # a session that has run: its last run says how long one takes
    assert len(spy.calls) == len(feeds)
    pids = [local.clients[f"default/lane{n}"].pid for n in range(1, len(lanes) + 1)]
    assert all(pid_alive(pid) for pid in pids)
    local.close()
    assert not any(pid_alive(pid) for pid in pids)  # no stray lane workers after the run


def test_a_lane_whose_worker_ended_is_opened_again(local, model_dir):
    session, feeds = open_htp(local, model_dir)
    first = session.run_all(feeds)
    lane = (session.lanes or [None])[0]
    assert lane is not None
    os.kill(lane.client.pid, signal.SIGKILL)  # the lane's worker is killed between two batches
    while lane.client.usable():
        time.sleep(0.01)
    again = session.run_all(feeds[::-1])
    assert outputs_bytes(again) == outputs_bytes(first[::-1])
    assert session.lanes and session.lanes[0] is not lane and session.lanes[0].alive


@pytest.mark.parametrize(
    "turn_off",
    [
        pytest.param(lambda device: setattr(device, "ep_cache", False), id="no-EP-context-cache"),
        pytest.param(lambda device: device.config.settings.update(simulator_workers=1), id="simulator_workers-1"),
    ],
)
def test_without_a_cache_hit_or_with_one_worker_the_batch_stays_in_the_sessions_worker(local, model_dir, turn_off):
    turn_off(local)
    session, feeds = open_htp(local, model_dir)
    outputs = session.run_all(feeds)
    assert session.lanes == [] and sorted(local.clients) == ["default"]
    assert outputs_bytes(outputs) == outputs_bytes([session.run(feed, False)[1] for feed in feeds])


def test_a_short_batch_stays_in_the_sessions_worker(local, model_dir, monkeypatch):
    monkeypatch.setattr(base, "LANE_MIN_S", 3600.0)  # nothing this model runs takes that long
    session, feeds = open_htp(local, model_dir)
    session.run_all(feeds)
    assert session.lanes is None and sorted(local.clients) == ["default"]


def test_lanes_of_an_ssh_board_run_on_its_channels_and_leave_no_worker_behind(
    board, board_workdir, model_dir, monkeypatch
):
    require_qnn()
    if CORES < 2:
        pytest.skip("lanes need two cores")
    monkeypatch.setattr(base, "LANE_MIN_S", 0.0)
    device = SSHDevice(board.device_config("board1", board_workdir, command_timeout=60.0))
    try:
        session, feeds = open_htp(device, model_dir)
        spread = session.run_all(feeds)
        assert session.lanes and all(lane.reply["ep_context"]["state"] == "hit" for lane in session.lanes)
        assert outputs_bytes(spread) == outputs_bytes([session.run(feed, False)[1] for feed in feeds])
        assert len(board.worker_pids()) >= 3  # the board lock's, the session's and a lane's worker
    finally:
        device.close()
    wait_until(lambda: not board.worker_pids(), "the board's workers to end")


def test_an_interrupted_batch_stops_its_lanes_at_once_and_the_next_batch_opens_them_again(
    local, model_dir, monkeypatch
):
    session, feeds = open_htp(local, model_dir)
    session.run_all(feeds)
    lanes = list(session.lanes or [])
    pids = [lane.client.pid for lane in lanes]
    real = base.WorkerSession.run

    def interrupted(backend, feed, check_memory, core=None):  # type: ignore[no-untyped-def]
        if core == 0:  # the session's own share, while the lanes run theirs: Ctrl-C
            raise KeyboardInterrupt
        return real(backend, feed, check_memory, core)

    monkeypatch.setattr(base.WorkerSession, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        session.run_all(feeds)
    assert lanes and not any(lane.client.alive for lane in lanes)
    wait_until(lambda: not any(pid_alive(pid) for pid in pids), "the lane workers to end")
    monkeypatch.setattr(base.WorkerSession, "run", real)
    again = session.run_all(feeds[::-1])
    assert outputs_bytes(again) == outputs_bytes([session.run(feed, False)[1] for feed in feeds[::-1]])
    assert session.lanes and all(lane.client.pid not in pids for lane in session.lanes)
