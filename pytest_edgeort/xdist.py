"""pytest-xdist: the role of this process (answered once), and scheduling per device on the controller.

Roles are objects: :func:`role_of` tells an xdist worker (:class:`WorkerRole`) from the process that
talks to the user (:class:`MainRole`: a plain run or the xdist controller); each says who the run is
for the board locks, where notices go, and which plugin objects it registers.

Scheduling: the xdist controller collects nothing itself: it sees the workers' node ids only. An edge
item's id ends in ``[<device>-<provider>]`` (plus any other parameters, joined by ``-``), so the device
is read from the id, against the devices this run selected. The scheduler is xdist's own
``LoadGroupScheduling`` with one more kind of group: every item of a device that takes a board lock
forms one work unit (scope), which xdist hands to one worker; every other item keeps its own scope
(``xdist_group`` marks, where xdist still applies them, keep theirs), so it is spread like ``load``.
Node ids stay as pytest makes them: nothing here depends on xdist rewriting them.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from typing import Any, Callable, Collection, List, Optional, Union

import pytest

from .output import RunOutput
from .run import EdgeRun, edge_run
from .signals import interrupt_on_sigterm

#: The ``--dist`` modes this scheduler replaces (``load`` is xdist's default under ``-n``).
TAKES_OVER = ("load", "loadgroup")


def role_of(config: pytest.Config) -> Union[WorkerRole, MainRole]:
    """This process's role in the run: an xdist worker, or the process that talks to the user."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        return WorkerRole(config, workerinput)
    return MainRole(config, controller=getattr(config.option, "dist", "no") != "no")


def _uncaptured(config: pytest.Config, write: Callable[[str], None]) -> Callable[[str], None]:
    """``write``, called with pytest's output capture suspended (a notice shows now, even mid-test)."""

    def notify(message: str) -> None:
        capman = config.pluginmanager.get_plugin("capturemanager")
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            write(message)

    return notify


class WorkerRole:
    """An xdist worker: its run id is the run's ``testrunuid`` (the workers of one run share their
    board locks), its notices go to stderr (a worker's terminal output goes nowhere), and the
    controller prints and writes everything at the end."""

    def __init__(self, config: pytest.Config, workerinput: Any) -> None:
        self.run_id: Optional[str] = workerinput["testrunuid"]
        self.dist: Optional[str] = workerinput.get("edgeort_dist")
        self.submits_ahead = False  # its items are handed out one by one: each submits its own hosted jobs
        prefix = f"[{workerinput['workerid']}] "
        self.notify = _uncaptured(config, lambda message: sys.stderr.write(f"{prefix}{message}\n"))

    def register(self, config: pytest.Config, run: EdgeRun) -> None:
        """Nothing more: a worker's results travel on its reports to the controller."""


class MainRole:
    """A plain run or the xdist controller: notices go to the terminal, and this process prints the
    header and summary and writes the JSON report; the controller also schedules per device."""

    def __init__(self, config: pytest.Config, controller: bool) -> None:
        self.controller = controller
        self.run_id: Optional[str] = uuid.uuid4().hex
        self.dist: Optional[str] = None
        self.submits_ahead = True  # hosted jobs of every collected item (the controller collects none)

        def write(message: str) -> None:
            reporter = config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(message, yellow=True)
            else:
                sys.stderr.write(message + "\n")

        self.notify = _uncaptured(config, write)

    def register(self, config: pytest.Config, run: EdgeRun) -> None:
        config.pluginmanager.register(RunOutput(run, workers_devices=self.controller), "edgeort-output")
        if self.controller:
            config.pluginmanager.register(XdistController(), "edgeort-xdist")


class XdistController:
    """The xdist controller's hooks (registered only there)."""

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Tell each worker the --dist mode (workers re-parse the command line only)."""
        node.workerinput["edgeort_dist"] = node.config.option.dist

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: List[str]) -> None:
        """SIGTERM like Ctrl-C once a worker reports edge items (the controller collects nothing itself)."""
        if any(device_of(nodeid, edge_run(node.config).options.devices) for nodeid in ids):
            interrupt_on_sigterm()

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """Keep every item of a locked device on one worker; None leaves xdist's own scheduler (a
        split board then fails its items: the board lock self-check)."""
        locked = edge_run(config).registry.locked()
        if not locked or config.option.dist not in TAKES_OVER:
            return None
        return device_scheduling(config, log, locked)


def device_of(nodeid: str, devices: Collection[str]) -> Optional[str]:
    """The device among ``devices`` whose name is a whole ``-``-separated run of the id's parameters
    and is followed by at least one more part (the provider); the longest such name; else None."""
    if not nodeid.endswith("]") or "[" not in nodeid:
        return None
    parts = nodeid[nodeid.rindex("[", 0, nodeid.rindex("]")) + 1 : -1].split("-")
    best: Optional[str] = None
    for device in devices:
        want = device.split("-")
        if (best is None or len(device) > len(best)) and any(
            parts[i : i + len(want)] == want for i in range(len(parts) - len(want))
        ):
            best = device
    return best


def device_scheduling(config: pytest.Config, log: Any, locked: Collection[str]) -> Any:
    """xdist's loadgroup scheduler, plus one work unit per device in ``locked``."""
    from xdist.scheduler import LoadGroupScheduling  # loads execnet: only on the controller, when it schedules

    class DeviceScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            device = device_of(nodeid, locked)
            return f"edgeort device {device}" if device is not None else super()._split_scope(nodeid)

    return DeviceScheduling(config, log)
