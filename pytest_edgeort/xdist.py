"""pytest-xdist: the role of this process (answered once), and the controller's hooks.

Roles are objects: :func:`role_of` tells an xdist worker (:class:`WorkerRole`) from the process that
talks to the user (:class:`MainRole`: a plain run or the xdist controller); each says who the run is
for the board locks, where notices go, and which plugin objects it registers. The controller's
scheduler is in :mod:`.scheduling`, imported by the controller's hooks only (a run without xdist does not load it).
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from typing import Any, Callable, List, Optional, Union

import pytest

from .output import RunOutput
from .run import EdgeRun, edge_run
from .signals import interrupt_on_sigterm


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
        self.collects = True  # it runs what it collects
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
        self.collects = not controller  # the controller collects nothing: its workers do

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
        from .scheduling import device_of

        if any(device_of(nodeid, edge_run(node.config).options.devices) for nodeid in ids):
            interrupt_on_sigterm()

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """Keep every item of a locked device, and a suite's items on one device and provider, on one worker
        (:class:`~.scheduling.ChosenOnCollection`); None leaves xdist's own scheduler to other ``--dist``
        modes (a split board then fails its items: the board lock self-check)."""
        from .scheduling import TAKES_OVER, ChosenOnCollection

        if config.option.dist not in TAKES_OVER:
            return None
        run = edge_run(config)
        return ChosenOnCollection(config, log, run.registry.locked(), run.options.devices)
