"""The board lock: one pytest run (or one xdist worker) drives a board at a time.

A lock-only worker process on the board (``worker-<hash>.pyz --lock-only``) ``flock()``s the board's lock
file and holds it for as long as it lives. The kernel drops the lock when that process ends, so a
finished, crashed or cancelled run (its SSH connection closes, the process reads EOF and exits, or
is killed) never leaves a board locked. A run that finds the board busy polls until ``lock_timeout``
and then reports who holds it.
"""

from __future__ import annotations

import datetime
import getpass
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

from ..errors import DeviceUnavailable, SchedulingError

if TYPE_CHECKING:  # the plugin imports this module; numpy (via channel) loads only when a board is used
    from .client import WorkerClient

LOCK_GROUP = "lock"
LOCK_NAME = "board.lock"
POLL_S = 0.5
OWN_GRACE_S = 5.0
# Environment variables that point at the CI job holding a board, most specific first.
_CI_VARS = ("CI_JOB_URL", "BUILD_URL", "GITHUB_RUN_ID", "BUILDKITE_BUILD_URL", "CI_JOB_ID")


def lock_owner(run_id: Optional[str] = None, dist: Optional[str] = None) -> Dict[str, Optional[str]]:
    """Who takes a lock, as other runs will see it: ``who`` (user@host pid N, xdist worker, CI job),
    ``run`` (shared by all xdist workers of one pytest run), ``worker`` (the xdist worker id) and
    ``dist`` (its ``--dist`` mode)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    ci = next((f"{name}={os.environ[name]}" for name in _CI_VARS if os.environ.get(name)), None)
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    who = (
        f"{user}@{socket.gethostname()} pid {os.getpid()}"
        + (f" xdist {worker}" if worker else "")
        + (f" ({ci})" if ci else "")
    )
    return {"who": who, "run": run_id or uuid.uuid4().hex, "worker": worker, "dist": dist}


def _holder_record(content: str) -> Dict[str, Any]:
    try:
        record = json.loads(content)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def describe_holder(record: Dict[str, Any]) -> str:
    """The lock file's holder record in words (it is empty while a new holder is writing it)."""
    try:
        since = datetime.datetime.fromtimestamp(float(record["since"]), datetime.timezone.utc)
        return f"{record['who']} (lock pid {record['pid']} on the device, since {since.isoformat(timespec='seconds')})"
    except (ValueError, KeyError, TypeError):
        return "another run (no holder recorded yet)"


@dataclass
class BoardLock:
    """A held board lock, as recorded in the report."""

    path: str
    acquired_at: float
    waited_s: float
    waited_for: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        return {
            "path": self.path,
            "acquired_at": self.acquired_at,
            "waited_s": round(self.waited_s, 3),
            "waited_for": self.waited_for,
        }


def acquire(
    client: WorkerClient,
    path: str,
    owner: Dict[str, Optional[str]],
    timeout: float,
    device: str,
    where: str,
    notify: Callable[[str], None],
    request_timeout: float,
) -> BoardLock:
    """Poll the lock-only worker until it holds ``path``; DeviceUnavailable naming the holder after ``timeout``.

    A lock held by this same run would never be released while we wait: that fails after a short
    grace period (in which our own previous lock process, after a dropped connection, has time to
    exit). Held by another xdist worker of the run, it means the scheduling split the board
    (:class:`SchedulingError`, a failure); held by this same worker, that two inventory names (or two
    devices sharing a ``lock_file``) are one board."""
    start = time.monotonic()
    waited_for: Optional[str] = None
    own_since: Optional[float] = None
    while True:
        reply = client.lock(path, owner, request_timeout)
        now = time.monotonic()
        if reply["acquired"]:
            stopped = reply.get("stopped") or []
            if stopped:
                notify(
                    f"edgeort: device {device!r}: stopped {len(stopped)} worker(s) that an earlier run left on "
                    f"{where} (its pytest was killed): {', '.join(map(str, stopped))}"
                )
            return BoardLock(reply["path"], time.time(), now - start, waited_for)
        record = _holder_record(reply.get("holder", ""))
        current = describe_holder(record)
        if record.get("run") == owner["run"]:
            own_since = own_since if own_since is not None else now
            if now - own_since >= OWN_GRACE_S and record.get("worker") != owner["worker"]:
                raise SchedulingError(
                    f"device {device!r}: the pytest-xdist scheduling did not hold: worker {record.get('worker')} "
                    f"of this run holds the board lock, so worker {owner['worker']} cannot drive the board too "
                    f"(--dist {owner['dist']}); pytest-edgeort keeps each locked board on one worker under "
                    "--dist load (the default) and loadgroup"
                )
            if now - own_since >= OWN_GRACE_S:
                raise DeviceUnavailable(
                    f"device {device!r}: board lock {reply['path']} on {where} is held by this same run "
                    f"({current}): another device of this run is the same board or shares its lock_file; "
                    "give each device its own lock_file, or set lock = false"
                )
        elif waited_for is None:
            notify(
                f"edgeort: device {device!r} is in use: board lock {reply['path']} is held by {current}; "
                f"waiting up to {timeout:g} s (lock_timeout)"
            )
        if record.get("run") != owner["run"]:
            waited_for = current
        if now - start >= timeout:
            raise DeviceUnavailable(
                f"device {device!r}: board lock {reply['path']} on {where} is held by {current}; gave up after "
                f"{now - start:.1f} s (lock_timeout = {timeout:g} in the inventory)"
            )
        time.sleep(min(POLL_S, max(0.0, timeout - (now - start))))
