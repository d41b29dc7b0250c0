"""Starting a worker on this machine from an inventory entry alone, without the device object.

The run starts the ``local`` device's worker this way before collection (the device-kind table's ``starts_ahead``
column): this module and what it imports load no numpy, so the worker's start costs the pytest process ~10 ms while
the worker loads numpy and onnxruntime and pytest goes on to import the tests. The device adopts the worker when it is
built (:meth:`~.base.WorkerDevice.adopt`). The worker's flags and name are those the device gives it
(:mod:`.workerspec`).
"""

from __future__ import annotations

import os
import sys
from functools import partial
from pathlib import Path
from typing import List, Optional, Sequence

from ..board.leftovers import forget
from ..board.store import EnvironmentProblem
from ..config.inventory import DEFAULT_WORKDIR, DeviceConfig
from ..errors import DeviceUnavailable
from .artifact import bootstrap_argv, install_local
from .transport import LocalTransport
from .workerspec import worker_flags, worker_label


def workdir_of(config: DeviceConfig) -> Path:
    """The entry's workdir on this machine (``~`` expanded)."""
    return Path(os.path.expanduser(config.workdir or DEFAULT_WORKDIR))


def worker_command(python: str, workdir: Path, args: Sequence[str] = ()) -> List[str]:
    """The command line of a worker in ``workdir`` on this machine, with the worker put there first
    (EnvironmentProblem when the workdir is not private to this user)."""
    install_local(str(workdir))
    return bootstrap_argv(python, str(workdir), args)


def start_worker(config: DeviceConfig, group: str, run: Optional[str]) -> LocalTransport:
    """Start the worker of ``group`` for ``config`` (DeviceUnavailable, one line, when it cannot start); a worker
    this process stops leaves no record of itself in the workdir (:mod:`pytest_edgeort.board.leftovers`)."""
    python, workdir = config.python or sys.executable, workdir_of(config)
    try:
        command = worker_command(python, workdir, worker_flags(config, group, run))
    except EnvironmentProblem as exc:  # the worker's own check, made before the worker is put there
        raise DeviceUnavailable(f"device {config.name!r}: {worker_label(config.name, group)}: {exc}") from None
    try:
        return LocalTransport(command, dict(config.env), partial(forget, str(workdir)))
    except OSError as exc:
        raise DeviceUnavailable(
            f"device {config.name!r}: cannot start the worker with {python}: {exc.strerror or exc}"
        ) from None


def start_ahead(config: DeviceConfig, run: Optional[str]) -> LocalTransport:
    """The ``local`` kind's ``starts_ahead``: its default worker, for the device to adopt."""
    return start_worker(config, "default", run)
