"""Fixtures for device tests: a device whose workers are in-process threads."""

from __future__ import annotations

import pytest

from pytest_edgeort.config.inventory import DeviceConfig
from tests.support.inprocess import InProcessDevice


@pytest.fixture
def device(tmp_path):
    device = InProcessDevice(DeviceConfig("local", workdir=str(tmp_path / "work"), command_timeout=30.0))
    yield device
    device.close()
