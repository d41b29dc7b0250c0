"""Devices and the sessions on them; this module holds only the factory for inventory entries.

Only the factory lives here, and it imports the device classes when called: importing this
package (the plugin does) loads neither numpy nor fabric.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config.inventory import DeviceConfig
    from .base import Device


def make_device(config: DeviceConfig) -> Device:
    """The device object for an inventory entry."""
    if config.kind == "local":
        from .local import LocalDevice

        return LocalDevice(config)
    from .ssh import SSHDevice

    return SSHDevice(config)
