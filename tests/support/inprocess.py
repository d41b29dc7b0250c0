"""An in-process transport (the board worker's serve loop on a thread, over two pipes), and a test-only
device kind built on it: this module plus the table entry :data:`INPROCESS_KIND` are all a kind needs."""

from __future__ import annotations

import os
import select
import threading
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from pytest_edgeort.board import wire, worker
from pytest_edgeort.config.kinds import DeviceKind, pick
from pytest_edgeort.devices.boardlock import LOCK_GROUP
from pytest_edgeort.devices.local import LocalDevice
from pytest_edgeort.devices.transport import StderrTail, Transport

Start = Callable[[str, bool, Any, Callable[[Sequence[Any]], None]], int]  # the signature of worker.start


class InProcessTransport(Transport):
    """``start(workdir, lock_only, reader, write)`` (the worker's own :func:`worker.start` unless a
    test gives another) runs on a thread; requests and replies go through os.pipe() pairs."""

    def __init__(self, workdir: Path, lock_only: bool = False, start: Start = worker.start) -> None:
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        self._requests = os.fdopen(requests_w, "wb", buffering=0)
        self._replies = replies_r
        reader = wire.stream_reader(os.fdopen(requests_r, "rb", buffering=0))
        out = os.fdopen(replies_w, "wb", buffering=0)
        self.status: Optional[int] = None
        self.description = "in-process worker"
        self.stderr = StderrTail()

        def write(parts: Sequence[Any]) -> None:
            for part in parts:
                view = memoryview(part).cast("B")
                while view:
                    view = view[out.write(view) :]

        def serve() -> None:
            try:
                self.status = start(str(workdir), lock_only, reader, write)
            finally:
                out.close()  # the host reads EOF, as from a worker process that ended

        self.thread = threading.Thread(target=serve, daemon=True, name="edgeort-inprocess-worker")
        self.thread.start()

    def send(self, parts: Sequence[Any]) -> None:
        try:
            for part in parts:
                self._requests.write(part)
        except OSError:
            pass  # the serve loop ended: the next recv reads EOF

    def recv(self, max_bytes: int, timeout: Optional[float]) -> bytes:
        ready, _, _ = select.select([self._replies], [], [], timeout)
        if not ready:
            raise TimeoutError
        return os.read(self._replies, max_bytes)

    def exit_status(self) -> Optional[int]:
        return None if self.thread.is_alive() else self.status

    def terminate(self) -> None:
        if not self._requests.closed:
            self._requests.close()  # EOF: the serve loop returns
        self.thread.join(timeout=10)


class InProcessDevice(LocalDevice):
    """The ``local`` device with its workers on threads of this process."""

    start: Start = staticmethod(worker.start)

    def _start_transport(self, group: str) -> Transport:
        return InProcessTransport(self.workdir, group == LOCK_GROUP, type(self).start)


#: The test-only kind ``inprocess``: a plugin (or conftest) returns it from ``pytest_edgeort_device_kinds``.
INPROCESS_KIND = DeviceKind(
    "inprocess",
    "tests.support.inprocess:InProcessDevice",
    pick("workdir", "command_timeout", "providers"),
)
