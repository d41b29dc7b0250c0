"""The ``local`` device: workers are subprocesses of the pytest process on this machine."""

from __future__ import annotations

import os
import sys
from functools import partial
from pathlib import Path
from typing import List, Optional, Sequence

from ..board.leftovers import forget
from ..board.store import EnvironmentProblem
from ..config.inventory import DEFAULT_WORKDIR, DeviceConfig
from ..config.kinds import DeviceKind
from ..errors import DeviceUnavailable
from .artifact import bootstrap_argv, install_local
from .base import WorkerDevice
from .boardlock import LOCK_NAME
from .client import LocalTransport, Transport


def worker_command(python: str, workdir: Path, args: Sequence[str] = ()) -> List[str]:
    """The command line of a worker in ``workdir`` on this machine, with the worker put there first
    (EnvironmentProblem when the workdir is not private to this user)."""
    install_local(str(workdir))
    return bootstrap_argv(python, str(workdir), args)


class LocalDevice(WorkerDevice):
    """This machine: workers are subprocesses of the pytest process, run from the same zipapp as on a board."""

    def __init__(self, config: DeviceConfig, kind: Optional[DeviceKind] = None) -> None:
        super().__init__(config, kind)
        self.workdir = Path(os.path.expanduser(config.workdir or DEFAULT_WORKDIR))

    def _start_transport(self, group: str) -> Transport:
        python = self.config.python or sys.executable
        try:
            command = worker_command(python, self.workdir, self.worker_args(group))
        except EnvironmentProblem as exc:  # the worker's own check, made before the worker is put there
            raise DeviceUnavailable(f"device {self.name!r}: {self.worker_label(group)}: {exc}") from None
        try:  # a worker this process stops leaves no record of itself in the workdir (board/leftovers.py)
            return LocalTransport(command, dict(self.config.env), partial(forget, str(self.workdir)))
        except OSError as exc:
            raise DeviceUnavailable(
                f"device {self.name!r}: cannot start the worker with {python}: {exc.strerror or exc}"
            ) from None

    def lock_path(self) -> str:
        return str(self.workdir / LOCK_NAME)
