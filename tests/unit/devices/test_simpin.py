"""The QNN HTP simulator runs on one core: its helper threads and the calling thread share the core the run
started on, and the worker's thread gets every core back afterwards (its CPU sessions keep them)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Tuple

import pytest

from pytest_edgeort.config.inventory import DeviceConfig
from pytest_edgeort.config.providers import provider_options, resolve_provider
from pytest_edgeort.devices.local import LocalDevice
from pytest_edgeort.model.info import model_info
from pytest_edgeort.model.inputs import generate_inputs
from tests.support.runs import require_qnn

require_qnn()

HTP = resolve_provider("qnn-htp")


def allowed_cpus(pid: int) -> Dict[int, Tuple[str, str]]:
    """``{tid: (thread name, Cpus_allowed_list)}`` of every thread of process ``pid``."""
    threads = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status, name = (task / "status").read_text(), (task / "comm").read_text().strip()
        except FileNotFoundError:  # a thread (of onnxruntime's pool, say) that ended since the listing
            continue
        line = next(line for line in status.splitlines() if line.startswith("Cpus_allowed_list:"))
        threads[int(task.name)] = (name, line.split()[1])
    return threads


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning needs two cores to choose from")
def test_a_simulated_run_pins_the_simulators_threads_to_one_core(tmp_path, model_dir):
    model = model_info(model_dir / "conv_matmul_qdq.onnx")
    device = LocalDevice(DeviceConfig("local", workdir=str(tmp_path / "work"), command_timeout=60.0))
    try:
        session = device.open_session(model, HTP, provider_options(HTP, None, None, where="test"), False)
        session.run(generate_inputs(model, seed=1), False)
        pid = device.clients["default"].pid
        threads = allowed_cpus(pid)
    finally:
        device.close()
    helpers = {cpus for name, cpus in threads.values() if name.startswith("thr_h")}
    assert len(helpers) == 1 and helpers.pop().isdigit()  # every helper thread on one and the same core
    assert threads[pid][1] == allowed_cpus(os.getpid())[os.getpid()][1]  # the worker's own thread: every core again


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning needs two cores to choose from")
def test_a_run_on_a_named_core_pins_the_simulator_there(tmp_path, model_dir):
    model = model_info(model_dir / "conv_matmul_qdq.onnx")
    cores = sorted(os.sched_getaffinity(0))
    device = LocalDevice(DeviceConfig("local", workdir=str(tmp_path / "work"), command_timeout=60.0))
    try:
        session = device.open_session(model, HTP, provider_options(HTP, None, None, where="test"), False)
        pid = device.clients["default"].pid
        for index in (1, 0, 1):  # the helpers follow the core each run names (they stay there between runs)
            session.run(generate_inputs(model, seed=index), False, index)
            helpers = {cpus for name, cpus in allowed_cpus(pid).values() if name.startswith("thr_h")}
            assert helpers == {str(cores[index])}
    finally:
        device.close()
