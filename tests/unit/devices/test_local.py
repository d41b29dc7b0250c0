"""The ``local`` device's real worker subprocess: the inventory's model cache cap reaches it."""

from __future__ import annotations

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
