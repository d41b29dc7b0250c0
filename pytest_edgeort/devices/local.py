"""The ``local`` device: workers are subprocesses of the pytest process on this machine."""

from __future__ import annotations

from typing import Optional

from ..config.inventory import DeviceConfig
from ..config.kinds import DeviceKind
from .base import WorkerDevice
from .boardlock import LOCK_NAME
from .localworker import start_worker, workdir_of
from .transport import Transport


class LocalDevice(WorkerDevice):
    """This machine: workers are subprocesses of the pytest process, run from the same zipapp as on a board."""

    def __init__(self, config: DeviceConfig, kind: Optional[DeviceKind] = None) -> None:
        super().__init__(config, kind)
        self.workdir = workdir_of(config)

    def _start_transport(self, group: str) -> Transport:
        return start_worker(self.config, group, self.lock_owner["run"])

    def lock_path(self) -> str:
        return str(self.workdir / LOCK_NAME)
