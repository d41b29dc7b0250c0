"""The HTP simulator's helper threads are pinned with the calling thread to one core for a run, and stay there
between runs on that core: only the calling thread is pinned again and gets every core back afterwards."""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Iterator, List

import pytest

from pytest_edgeort.board import simpin

PR_SET_NAME = 15


@pytest.fixture
def helpers() -> Iterator[List[int]]:
    """Two threads named like the simulator's helpers (``thr_hvx_0``, ``thr_hmx_0``), waiting; their ids."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("pinning needs at least 2 cores")
    libc = ctypes.CDLL(None, use_errno=True)
    done, ids, ready = threading.Event(), [], threading.Barrier(3)

    def helper(name: bytes) -> None:
        libc.prctl(PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)
        ids.append(threading.get_native_id())
        ready.wait()
        done.wait()

    threads = [threading.Thread(target=helper, args=(n,)) for n in (b"thr_hvx_0", b"thr_hmx_0")]
    for thread in threads:
        thread.start()
    ready.wait()
    yield sorted(ids)
    done.set()
    for thread in threads:
        thread.join()


def test_helpers_follow_the_calling_threads_core_and_stay_there_between_runs(helpers, monkeypatch):
    everything = os.sched_getaffinity(0)
    pin = simpin.SimulatorPin()
    pin.refresh()
    assert sorted(pin.helpers) == helpers
    with pin:
        core = os.sched_getaffinity(0)
        assert len(core) == 1 and all(os.sched_getaffinity(tid) == core for tid in helpers)
    assert os.sched_getaffinity(0) == everything  # the calling thread gets every core back
    assert all(os.sched_getaffinity(tid) == core for tid in helpers)

    pinned: List[int] = []
    real = os.sched_setaffinity
    monkeypatch.setattr(os, "sched_setaffinity", lambda tid, cpus: (pinned.append(tid), real(tid, cpus)))
    (cpu,) = core
    monkeypatch.setattr(simpin, "_current_cpu", lambda: cpu)
    with pin:  # the same core: the helpers are there already
        pass
    assert pinned == [0, 0]  # pinned, then every core back

    other = next(c for c in everything if c != cpu)
    monkeypatch.setattr(simpin, "_current_cpu", lambda: other)
    pinned.clear()
    with pin:  # another core: the helpers move with the calling thread
        assert all(os.sched_getaffinity(tid) == {other} for tid in helpers)
    assert sorted(pinned) == sorted([0, 0, *helpers])


def test_a_run_the_host_gives_a_core_runs_there_whatever_core_it_starts_on(helpers, monkeypatch):
    cores = sorted(os.sched_getaffinity(0))
    pin = simpin.SimulatorPin()
    pin.refresh()
    monkeypatch.setattr(simpin, "_current_cpu", lambda: cores[0])  # the thread starts on the first core
    for index in (1, len(cores) + 1):  # an index past the cores wraps around
        with pin.on(index):
            assert os.sched_getaffinity(0) == {cores[1]} and all(os.sched_getaffinity(t) == {cores[1]} for t in helpers)
    with pin.on(None):  # no core named: the one it started on
        assert os.sched_getaffinity(0) == {cores[0]}
    assert os.sched_getaffinity(0) == set(cores)
