"""A wait for a local worker's reply polls for ``wait_spin_ms`` before it sleeps: a reply during the poll, a reply
after it, the timeout and the worker's end all still come through; where the poll is on by default."""

from __future__ import annotations

import os
import sys

import pytest

from pytest_edgeort.config.inventory import DeviceConfig
from pytest_edgeort.devices.localworker import WAIT_SPIN_MS, wait_spin_s
from pytest_edgeort.devices.transport import LocalTransport

ECHO_LATE = (
    "import sys, time; line = sys.stdin.readline(); time.sleep(float(sys.argv[1])); print(line, end='', flush=True)"
)


def _echo(spin_s: float, delay: float) -> LocalTransport:
    """A subprocess that answers the line it reads after ``delay`` seconds, waited for with ``spin_s`` of polling."""
    return LocalTransport([sys.executable, "-c", ECHO_LATE, str(delay)], spin_s=spin_s)


@pytest.mark.parametrize("spin_s, delay", [(30.0, 0.0), (0.001, 0.3)], ids=["during the poll", "after it"])
def test_a_reply_comes_through_whether_it_arrives_during_the_poll_or_after_it(spin_s, delay):
    transport = _echo(spin_s, delay)
    try:
        transport.send([b"hello\n"])
        assert transport.recv(100, timeout=30.0) == b"hello\n"
    finally:
        transport.terminate()


@pytest.mark.timeout(20)  # a poll that ignored the timeout would run for its whole 60 s
def test_the_timeout_bounds_the_poll():
    transport = _echo(60.0, 3600.0)
    try:
        transport.send([b"hello\n"])
        with pytest.raises(TimeoutError):
            transport.recv(100, timeout=0.2)
    finally:
        transport.terminate()


@pytest.mark.timeout(20)  # a poll that missed the end would run for its whole 60 s before it read b""
def test_a_worker_that_ends_during_the_poll_is_seen_at_once():
    transport = LocalTransport([sys.executable, "-c", "pass"], spin_s=60.0)
    try:
        assert transport.recv(100, timeout=None) == b""
    finally:
        transport.terminate()


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
