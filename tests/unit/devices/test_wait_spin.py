"""A wait for a local worker's reply polls for ``wait_spin_ms`` before it sleeps, once replies have come quickly: a
reply during the poll or after it, the timeout and the worker's end all still come through; long replies stop the
poll; where it is on by default."""

from __future__ import annotations

import os
import sys
from typing import Any, List

import pytest

from pytest_edgeort.config.inventory import DeviceConfig
from pytest_edgeort.devices.localworker import WAIT_SPIN_MS, wait_spin_s
from pytest_edgeort.devices.transport import QUICK_WAITS, LocalTransport

#: answers each line ``<delay>`` with the same line after ``delay`` seconds; ends at the line ``exit``
ECHO = """
import sys, time
for line in sys.stdin:
    if line.strip() == "exit":
        break
    time.sleep(float(line))
    print(line, end="", flush=True)
"""


class Counted:
    """The transport's poll object, counting the polls of each wait."""

    def __init__(self, poll: Any) -> None:
        self.inner, self.calls = poll, 0

    def poll(self, timeout: int) -> List[Any]:
        self.calls += 1
        return self.inner.poll(timeout)


@pytest.fixture
def echo():
    started: List[LocalTransport] = []

    def start(spin_s: float) -> LocalTransport:
        transport = LocalTransport([sys.executable, "-c", ECHO], spin_s=spin_s)
        transport._poll = Counted(transport._poll)
        started.append(transport)
        return transport

    yield start
    for transport in started:
        transport.terminate()


def ask(transport: LocalTransport, delay: float, timeout: float = 30.0) -> int:
    """One request answered after ``delay`` s; how many polls its wait made."""
    line = f"{delay}\n".encode()
    transport.send([line])
    before = transport._poll.calls
    assert transport.recv(100, timeout) == line
    return transport._poll.calls - before


def test_waits_poll_once_replies_have_come_quickly_and_stop_after_a_long_one(echo):
    transport = echo(0.5)  # replies within 0.5 s are quick ones (0.1 s: not there yet when the wait begins)
    assert [ask(transport, 0.1) for _ in range(QUICK_WAITS)] == [1] * QUICK_WAITS  # (only "is it there yet?")
    assert ask(transport, 0.1) > 10  # now a wait polls, and the reply comes within its poll
    assert ask(transport, 0.7) > 10  # a reply after the poll: the poll ran out, then the wait slept
    assert ask(transport, 0.7) == 1 and ask(transport, 0.1) == 1  # no poll until QUICK_WAITS quick ones again


@pytest.mark.timeout(20)  # a poll that ignored the timeout would run for its whole 60 s
def test_the_timeout_bounds_the_poll(echo):
    transport = echo(60.0)
    for _ in range(QUICK_WAITS):
        ask(transport, 0.0)
    transport.send([b"3600\n"])
    with pytest.raises(TimeoutError):
        transport.recv(100, timeout=0.2)


@pytest.mark.timeout(20)  # a poll that missed the end would run for its whole 60 s before it read b""
def test_a_worker_that_ends_during_the_poll_is_seen_at_once(echo):
    transport = echo(60.0)
    for _ in range(QUICK_WAITS):
        ask(transport, 0.0)
    transport.send([b"exit\n"])
    assert transport.recv(100, timeout=None) == b""


def test_the_inventory_sets_the_poll_and_zero_turns_it_off(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert wait_spin_s(DeviceConfig("local", settings={"wait_spin_ms": 2.5})) == 0.0025
    assert wait_spin_s(DeviceConfig("local", settings={"wait_spin_ms": 0})) == 0.0


@pytest.mark.parametrize(
    "cores, xdist_workers, spins",
    [(2, None, True), (4, "2", True), (2, "2", False), (1, None, False), (6, "4", False)],
)
def test_by_default_it_polls_only_where_every_pytest_process_and_its_worker_have_a_core(
    monkeypatch, cores, xdist_workers, spins
):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    if xdist_workers is None:
        monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    else:
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", xdist_workers)
    assert wait_spin_s(DeviceConfig("local")) == (WAIT_SPIN_MS / 1000 if spins else 0.0)
