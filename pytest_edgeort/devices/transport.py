"""Byte transports to one worker process: what a :class:`~.client.WorkerClient` talks through, and the local one.

:class:`LocalTransport` runs the worker as a subprocess of this process. This module loads no numpy: the run starts a
local worker before collection (see :mod:`.localworker`), while the pytest process goes on to import the tests.
"""

from __future__ import annotations

import collections
import os
import re
import select
import signal
import subprocess
import threading
from typing import Any, Callable, Deque, Dict, Optional, Sequence

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


class StderrTail:
    """Keeps the last lines a worker wrote to stderr (QNN is chatty; errors need context), without
    terminal colour codes; :meth:`mark` / ``text(since=...)`` scope them to one request."""

    def __init__(self, maxlen: int = 40) -> None:
        self.lines: Deque[str] = collections.deque(maxlen=maxlen)
        self.count = 0  # lines seen so far
        self._pump: Optional[threading.Thread] = None

    def feed_stream(self, stream: Any) -> threading.Thread:
        def pump() -> None:
            for raw in iter(stream.readline, b""):
                line = _ANSI.sub("", raw.decode("utf-8", "replace")).rstrip()
                if line:
                    self.lines.append(line)
                    self.count += 1

        self._pump = threading.Thread(target=pump, daemon=True, name="edgeort-stderr")
        self._pump.start()
        return self._pump

    def mark(self) -> int:
        """A position: ``text(since=mark)`` shows only lines written after it."""
        return self.count

    def text(self, last: int = 6, drain: float = 1.0, since: int = 0) -> str:
        """The last lines (after ``since``); waits up to ``drain`` s for a dying worker's final words."""
        if self._pump is not None:
            self._pump.join(timeout=drain)
        fresh = list(self.lines)[max(0, len(self.lines) - (self.count - since)) :]
        return " | ".join(fresh[-last:])


class Transport:
    """Moves bytes to and from one worker process; ``stderr`` collects what the worker prints."""

    description = "worker"
    stderr: StderrTail

    def send(self, parts: Sequence[Any]) -> None:
        """Write one frame given as buffers (bytes, memoryviews)."""
        raise NotImplementedError

    def recv(self, max_bytes: int, timeout: Optional[float]) -> bytes:
        """Return 1..max_bytes bytes, b"" at EOF; raise TimeoutError after ``timeout`` seconds."""
        raise NotImplementedError

    def exit_status(self) -> Optional[int]:
        raise NotImplementedError

    def usable(self) -> bool:
        """Whether the worker can still answer (not exited, connection still up)."""
        return self.exit_status() is None

    def terminate(self) -> None:
        raise NotImplementedError


class LocalTransport(Transport):
    """A worker subprocess on this machine, started with ``command`` (OSError when it cannot start); ``on_end(pid)``
    runs once :meth:`terminate` has stopped it."""

    def __init__(
        self,
        command: Sequence[str],
        env: Optional[Dict[str, str]] = None,
        on_end: Callable[[int], None] = lambda pid: None,
    ) -> None:
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            start_new_session=True,
        )
        self.description = f"local worker pid {self.proc.pid}"
        self.on_end = on_end
        self.stderr = StderrTail()
        self.stderr.feed_stream(self.proc.stderr)
        self._fd = self.proc.stdout.fileno()

    def send(self, parts: Sequence[Any]) -> None:
        """Write a frame. A worker that already died leaves a broken pipe: that is left to the next
        ``recv`` (EOF), so the client reports how the worker ended (killed by SIGKILL, ...)."""
        try:
            for part in parts:
                self.proc.stdin.write(part)
            self.proc.stdin.flush()
        except OSError:
            pass

    def recv(self, max_bytes: int, timeout: Optional[float]) -> bytes:
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            raise TimeoutError
        return os.read(self._fd, max_bytes)

    def exit_status(self) -> Optional[int]:
        return self.proc.poll()

    def terminate(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        else:
            self.on_end(self.proc.pid)
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


def describe_exit(status: Optional[int]) -> str:
    """'exit code 3' / 'killed by SIGSEGV' / 'still running'."""
    if status is None:
        return "connection lost"
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit code {status}"
