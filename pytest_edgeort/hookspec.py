"""The hooks pytest-edgeort adds (registered in ``pytest_addhooks``): device kinds from other plugins.

Implement them in a plugin or a ``conftest.py`` at the root of the run (they are asked for once,
when pytest starts)::

    from pytest_edgeort.config.kinds import DeviceKind, Key, pick

    def pytest_edgeort_device_kinds():
        return [DeviceKind("mybench", "mypkg.bench:BenchDevice", pick("python", bench=Key((str,), "a bench id")))]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

import pytest

if TYPE_CHECKING:
    from .config.inventory import DeviceConfig
    from .config.kinds import DeviceKind
    from .devices.protocol import Device


def pytest_edgeort_device_kinds() -> Sequence[DeviceKind]:
    """Return rows to add to the device-kind table (:class:`~pytest_edgeort.config.kinds.DeviceKind`):
    an inventory entry with ``kind = "<name>"`` is then checked against the row's keys and built by its
    factory. A name that is already taken stops the run with one line."""


@pytest.hookspec(firstresult=True)
def pytest_edgeort_make_device(device_config: DeviceConfig, kind: DeviceKind) -> Optional[Device]:
    """Build the device object for an inventory entry (``kind`` is its row of the table); the first
    non-None result wins. pytest-edgeort's own implementation runs last and calls the row's factory."""
