"""The ``local`` device's real worker subprocess: the inventory's model cache cap reaches it; a worker the run starts
ahead."""

from __future__ import annotations

import os

from pytest_edgeort.config.inventory import DeviceConfig
from pytest_edgeort.config.providers import resolve_provider
from pytest_edgeort.devices.local import LocalDevice
from pytest_edgeort.model.info import model_info
from pytest_edgeort.options import EdgeOptions
from pytest_edgeort.run import DeviceRegistry


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


def _registry(tmp_path, lock=False):
    """A run's devices with the ``local`` entry working in ``tmp_path/work``."""
    inventory = tmp_path / "edge-devices.toml"
    entry = f'kind = "local"\nworkdir = "{tmp_path / "work"}"\nlock = {str(lock).lower()}\n'
    inventory.write_text(f"[devices.mine]\n{entry}")
    return DeviceRegistry(EdgeOptions(devices=("mine",), devices_file=inventory), print, "run")


def test_a_worker_started_ahead_is_the_one_the_device_greets_on_first_use(tmp_path):
    """The run starts it without building the device (numpy not needed yet); the device, once built, adopts it."""
    registry = _registry(tmp_path)
    try:
        registry.start_ahead("mine")
        assert not registry.connected  # no device object yet
        started = registry.ahead["mine"].proc.pid
        registry.probes = {"mine": ()}
        device = registry.get("mine")
        assert "CPUExecutionProvider" in device.describe()["providers"]
        assert device.clients["default"].pid == started and not registry.ahead and not device.ahead
    finally:
        registry.close()
    assert not os.path.exists(f"/proc/{started}")


def test_a_worker_started_ahead_for_a_device_never_built_stops_with_the_run(tmp_path):
    registry = _registry(tmp_path)
    registry.start_ahead("mine")
    started = registry.ahead["mine"].proc.pid
    registry.close()
    assert not registry.ahead and not os.path.exists(f"/proc/{started}")
    assert not list((tmp_path / "work" / "workers").glob("*.json"))  # it leaves no record of itself


def test_a_worker_started_ahead_for_devices_no_item_runs_on_stops_at_once(tmp_path):
    registry = _registry(tmp_path)
    registry.start_ahead("mine")
    started = registry.ahead["mine"].proc.pid
    registry.drop_unused(["local"])
    assert not registry.ahead and not os.path.exists(f"/proc/{started}")
    registry.close()


def test_a_local_device_under_the_board_lock_starts_no_worker_ahead(tmp_path):
    """The lock comes before any worker: a worker started ahead would run on a board another run may hold."""
    registry = _registry(tmp_path, lock=True)
    registry.start_ahead("mine")
    assert not registry.ahead and not registry.connected
    registry.close()
