"""The ``local`` device: workers are subprocesses of the pytest process on this machine."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .base import Device
from .boardlock import LOCK_NAME
from .client import LocalTransport, Transport
from ..config.inventory import DEFAULT_WORKDIR, DeviceConfig
from ..errors import DeviceUnavailable


class LocalDevice(Device):
    """This machine: workers are subprocesses of the pytest process."""

    def __init__(self, config: DeviceConfig) -> None:
        super().__init__(config)
        self.workdir = Path(os.path.expanduser(config.workdir or DEFAULT_WORKDIR))

    def _start_transport(self, group: str) -> Transport:
        python = self.config.python or sys.executable
        try:
            return LocalTransport(python, self.workdir, dict(self.config.env), self.worker_args(group))
        except OSError as exc:
            raise DeviceUnavailable(f"device {self.name!r}: cannot start the worker with {python}: "
                                    f"{exc.strerror or exc}") from None

    def lock_path(self) -> str:
        return str(self.workdir / LOCK_NAME)
