"""The ``local`` device's real worker subprocess: the inventory's model cache cap reaches it; a worker started ahead."""

from __future__ import annotations

import os

from pytest_edgeort.config.inventory import DeviceConfig
from pytest_edgeort.config.providers import resolve_provider
from pytest_edgeort.devices.local import LocalDevice
from pytest_edgeort.model.info import model_info


def test_the_model_cache_cap_of_the_inventory_evicts_on_the_device(model_dir, tmp_path):
    first, second = model_info(model_dir / "conv_matmul_qdq.onnx"), model_info(model_dir / "det.onnx")
    sizes = [m.path.stat().st_size for m in (first, second)]
    cap_mb = (max(sizes) + min(sizes) // 2) / (1024 * 1024)  # room for one of them, not both
    device = LocalDevice(DeviceConfig("local", workdir=str(tmp_path / "work"), settings={"cache_max_mb": cap_mb}))
    try:
        cpu = resolve_provider("cpu")
        device.open_session(first, cpu, {}, True).close()
        device.open_session(second, cpu, {}, True).close()
    finally:
        device.close()
    cached = sorted(p.name for p in (tmp_path / "work" / "models").iterdir())
    assert cached == [f"{second.sha256}.onnx"]


def test_a_worker_started_ahead_is_the_one_greeted_on_first_use(tmp_path):
    device = LocalDevice(DeviceConfig("local", workdir=str(tmp_path / "work")))
    device.probe_backends = ()
    try:
        device.start_ahead()
        started = device.ahead["default"].proc.pid
        assert "CPUExecutionProvider" in device.describe()["providers"]
        assert device.clients["default"].pid == started and not device.ahead
    finally:
        device.close()
    assert not os.path.exists(f"/proc/{started}")


def test_a_worker_started_ahead_and_never_used_stops_with_the_device(tmp_path):
    device = LocalDevice(DeviceConfig("local", workdir=str(tmp_path / "work")))
    device.start_ahead()
    started = device.ahead["default"].proc.pid
    device.close()
    assert not device.ahead and not os.path.exists(f"/proc/{started}")


def test_a_local_device_under_the_board_lock_starts_no_worker_ahead(tmp_path):
    """The lock comes before any worker: a worker started ahead would run on a board another run may hold."""
    device = LocalDevice(DeviceConfig("local", workdir=str(tmp_path / "work"), lock=True))
    device.start_ahead()
    assert not device.ahead and not device.clients
    device.close()
