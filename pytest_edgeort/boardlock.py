"""The board lock: one pytest run (or one xdist worker) drives a board at a time.

A lock-only worker process on the board (``worker.py --lock-only``) ``flock()``s the board's lock
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
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from .channel import WorkerClient
from .errors import DeviceUnavailable

LOCK_GROUP = "lock"
LOCK_NAME = "board.lock"
POLL_S = 0.5
# Environment variables that point at the CI job holding a board, most specific first.
_CI_VARS = ("CI_JOB_URL", "BUILD_URL", "GITHUB_RUN_ID", "BUILDKITE_BUILD_URL", "CI_JOB_ID")


def holder_identity() -> str:
    """Who this run is, as other runs will see it: ``user@host pid N`` plus the CI job if known."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    ci = next((f"{name}={os.environ[name]}" for name in _CI_VARS if os.environ.get(name)), None)
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return (f"{user}@{socket.gethostname()} pid {os.getpid()}" + (f" xdist {worker}" if worker else "")
            + (f" ({ci})" if ci else ""))


def describe_holder(content: str) -> str:
    """The lock file's holder record in words (it may be empty while the holder is writing it)."""
    try:
        record = json.loads(content)
        since = datetime.datetime.fromtimestamp(float(record["since"]), datetime.timezone.utc)
        return f"{record['holder']} (lock pid {record['pid']} on the device, since {since.isoformat(timespec='seconds')})"
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
        return {"path": self.path, "acquired_at": self.acquired_at, "waited_s": round(self.waited_s, 3),
                "waited_for": self.waited_for}


def acquire(client: WorkerClient, path: str, timeout: float, device: str, where: str,
            notify: Callable[[str], None], request_timeout: float) -> BoardLock:
    """Poll the lock-only worker until it holds ``path``; DeviceUnavailable naming the holder after ``timeout``."""
    start = time.monotonic()
    holder = holder_identity()
    waited_for: Optional[str] = None
    while True:
        reply, _ = client.request("lock", path=path, holder=holder, timeout=request_timeout)
        waited = time.monotonic() - start
        if reply["acquired"]:
            return BoardLock(reply["path"], time.time(), waited, waited_for)
        current = describe_holder(reply.get("holder", ""))
        if waited_for is None:
            notify(f"edgeort: device {device!r} is in use: board lock {reply['path']} is held by {current}; "
                   f"waiting up to {timeout:g} s (lock_timeout)")
        waited_for = current
        if waited >= timeout:
            raise DeviceUnavailable(
                f"device {device!r}: board lock {reply['path']} on {where} is held by {current}; gave up after "
                f"{waited:.1f} s (lock_timeout = {timeout:g} in the inventory)")
        time.sleep(min(POLL_S, max(0.0, timeout - waited)))
