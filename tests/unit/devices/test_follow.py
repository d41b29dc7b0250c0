"""A test's reference runs along with its ``edge_session`` run (one request to the worker), and its outputs answer
only ``edge_reference.run`` of that very feed, bit for bit."""

from __future__ import annotations

from typing import Iterator, List

import numpy as np
import pytest

from pytest_edgeort.config.inventory import DeviceConfig
from pytest_edgeort.config.providers import provider_options, resolve_provider
from pytest_edgeort.devices.local import LocalDevice
from pytest_edgeort.devices.session import AHEAD_MAX_BYTES, EdgeSession
from pytest_edgeort.model.info import ModelInfo, model_info
from pytest_edgeort.model.inputs import generate_inputs
from tests.support.runs import require_qnn

require_qnn()


@pytest.fixture
def local(tmp_path) -> Iterator[LocalDevice]:
    device = LocalDevice(DeviceConfig("local", workdir=str(tmp_path / "work"), command_timeout=60.0))
    yield device
    device.close()


@pytest.fixture
def model(model_dir) -> ModelInfo:
    return model_info(model_dir / "conv_matmul_qdq.onnx")


def _open(device, model, provider: str) -> EdgeSession:
    spec = resolve_provider(provider)
    return EdgeSession(device, model, spec, provider_options(spec), cpu_fallback=True, on_create=lambda s: None)


def _exchanges(session: EdgeSession) -> List[List[str]]:
    """The sessions (ids) each exchange of runs with ``session``'s worker runs from now on, one list per write."""
    client = session._live_backend().client
    seen: List[List[str]] = []
    original = client.exchange

    def exchange(requests, timeout):
        runs = [r.fields["sid"] for r in requests if r.op == "run"]
        seen.extend([runs] if runs else [])
        return original(requests, timeout)

    client.exchange = exchange
    return seen


def _sid(session: EdgeSession) -> str:
    return session._live_backend().sid


def _bytes(outputs):
    return {name: (array.dtype.str, array.shape, array.tobytes()) for name, array in outputs.items()}


def test_the_reference_of_the_same_feed_comes_with_the_run_bit_for_bit(local, model):
    npu, cpu, alone = _open(local, model, "qnn-htp"), _open(local, model, "cpu"), _open(local, model, "cpu")
    feeds = [generate_inputs(model, seed=seed) for seed in range(3)]
    npu.follow(cpu)
    exchanges = _exchanges(npu)
    runs = [(npu.run(feed), cpu.run({name: array.copy() for name, array in feed.items()})) for feed in feeds]
    # each edge_session.run carried the reference's run; edge_reference.run (an equal feed) asked the worker nothing
    assert exchanges == [[_sid(npu), _sid(cpu)]] * 3
    npu.follow(None)
    for feed, (actual, expected) in zip(feeds, runs):
        assert _bytes(expected) == _bytes(alone.run(feed)) and _bytes(actual) == _bytes(npu.run(feed))
        assert cpu.inputs_of(expected) is not None  # (what edge_compare's yardstick and diagnosis run on)


def test_a_feed_changed_after_the_run_is_run_for_the_reference_and_run_ahead_stops(local, model):
    npu, cpu, alone = _open(local, model, "qnn-htp"), _open(local, model, "cpu"), _open(local, model, "cpu")
    feed = generate_inputs(model, seed=1)
    npu.follow(cpu)
    exchanges = _exchanges(npu)
    npu.run(feed)
    name = next(iter(feed))
    feed[name].reshape(-1)[:8] += 0.25  # in place: the very arrays the run was given
    expected = cpu.run(feed)
    npu.run(feed)  # after a run ahead the test did not take: none for the rest of the test
    npu.follow(None)
    npu.follow(cpu)  # the next test starts afresh
    npu.run(feed)
    npu.follow(None)
    assert exchanges == [[_sid(npu), _sid(cpu)], [_sid(cpu)], [_sid(npu)], [_sid(npu), _sid(cpu)]]
    assert _bytes(expected) == _bytes(alone.run(feed))


def test_a_run_ahead_goes_with_the_test_s_end_and_never_where_it_does_not_pay(local, model):
    npu, cpu = _open(local, model, "qnn-htp"), _open(local, model, "cpu")
    feed = generate_inputs(model, seed=2)
    npu.follow(cpu)
    exchanges = _exchanges(npu)
    npu.run(feed)
    npu.follow(None)  # the test ended before it asked for its reference
    cpu.run(feed)
    assert exchanges == [[_sid(npu), _sid(cpu)], [_sid(cpu)]]
    big = {"x": np.zeros((AHEAD_MAX_BYTES // 4 + 1,), np.float32)}
    assert not cpu._takes_ahead(big, cpu._live_backend())  # its bytes would travel twice
    cpu.follow(cpu)  # a cpu test against its own session: nothing to run ahead
    assert cpu._live.follower is None


def test_a_reference_in_another_worker_runs_on_its_own(local, model, tmp_path):
    host = LocalDevice(DeviceConfig("host", workdir=str(tmp_path / "host"), command_timeout=60.0))
    try:
        npu, cpu = _open(local, model, "qnn-htp"), _open(host, model, "cpu")
        feed = generate_inputs(model, seed=3)
        npu.follow(cpu)
        exchanges = _exchanges(npu)
        npu.run(feed)
        npu.run(feed)
        assert exchanges == [[_sid(npu)], [_sid(npu)]] and cpu._live.ahead is None
        assert _bytes(cpu.run(feed)) == _bytes(_open(local, model, "cpu").run(feed))
    finally:
        host.close()
