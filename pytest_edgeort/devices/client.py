"""Host side of the worker protocol: a client with one method per request, over any byte transport.

The framing itself lives in :mod:`pytest_edgeort.board.wire` (it also runs on boards), so host and
worker can never disagree about it. A transport only moves bytes (:mod:`.transport`): a subprocess
(:class:`~.transport.LocalTransport`), :class:`~pytest_edgeort.devices.ssh.SSHTransport`, or an in-process one in
tests.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ..board import wire
from ..board.wire import Op
from ..errors import WorkerDied, WorkerError
from .replies import NO_ARRAYS, ReplyCheck, files_bound, like
from .transport import Transport, describe_exit

PROFILE_MAX_FILES = 16  # a QNN profile: the CSV, the log, the op trace
PROFILE_MAX_BYTES = 256 * 1024 * 1024

Arrays = List[Tuple[str, np.ndarray]]


class WorkerClient:
    """Request/response over one transport; one exchange at a time (a request, or a few sent in one write)."""

    def __init__(
        self,
        transport: Transport,
        label: str,
        startup_timeout: float = 60.0,
        timeout_origin: Tuple[Optional[float], str] = (None, ""),
        on_interrupt: Callable[[str], None] = lambda message: None,
    ) -> None:
        """``timeout_origin``: (the configured request timeout, where it is set), for the message when
        a request of that timeout expires; ``on_interrupt``: told (one line) when a request was
        interrupted and the worker stopped for it."""
        self.transport = transport
        self.label = label
        self.timeout_origin = timeout_origin
        self.on_interrupt = on_interrupt
        self._buffer = bytearray()  # bytes from the worker; those before _read_at are read (see _ReplyReader)
        self._read_at = 0
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.alive = True
        hello, _ = self._read_reply(startup_timeout, "start-up", None, 0, NO_ARRAYS)
        if not hello.get("ok"):
            self.close()
            raise WorkerError(hello.get("kind", wire.Kind.ENVIRONMENT), f"{label}: {hello.get('error')}")
        if hello.get("protocol") != wire.PROTOCOL_VERSION:
            self.close()
            raise WorkerError(
                wire.Kind.ENVIRONMENT,
                f"{label} speaks protocol version {hello.get('protocol')!r}, this plugin {wire.PROTOCOL_VERSION}",
            )
        self.pid = hello.get("pid")

    def _reader(self, timeout: Optional[float], what: str) -> _ReplyReader:
        return _ReplyReader(self, None if timeout is None else time.monotonic() + timeout, timeout, what)

    def _recv(self, max_bytes: int, deadline: Optional[float], timeout: Optional[float], what: str) -> bytes:
        """Some bytes from the worker; WorkerDied (the worker stopped) when ``deadline`` passes."""
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            chunk = self.transport.recv(max_bytes, remaining)
        except TimeoutError:
            self.kill()
            configured, origin = self.timeout_origin
            origin = f" ({origin})" if timeout == configured and what != "start-up" else ""
            raise WorkerDied(
                f"{self.label} did not answer {what} within {timeout:g} s{origin}; the worker was stopped"
            ) from None
        if not chunk:
            raise EOFError
        return chunk

    def _read_reply(
        self, timeout: Optional[float], what: str, request_id: Optional[int], stderr_since: int, check: ReplyCheck
    ) -> Tuple[Dict[str, Any], Arrays]:
        """The reply to request ``request_id`` (None: the start-up hello), declaring only arrays ``check``
        allows. Anything else -- EOF, a frame that does not decode or declares other arrays, a reply to
        another request -- stops the worker: WorkerDied."""
        try:
            reply, arrays = wire.read_frame(self._reader(timeout, what), check)
        except EOFError:
            problem = None
        except wire.ProtocolError as exc:
            problem = f"sent an invalid frame ({exc})"
        else:
            if reply.get("id") == request_id:
                return reply, arrays
            problem = f"answered request {reply.get('id')!r} when {request_id!r} was expected (protocol out of step)"
        status = None if problem else self._wait_exit()
        tail = self.transport.stderr.text(since=stderr_since, drain=0.2 if problem else 1.0)
        self.kill()
        what_happened = (
            f"{problem} during {what}; the worker was stopped"
            if problem
            else f"died during {what}: {describe_exit(status)}"
        )
        raise WorkerDied(f"{self.label} {what_happened}" + (f"; last stderr: {tail}" if tail else ""))

    def usable(self) -> bool:
        """Alive as far as this client knows, and its transport still up (asks no question on the wire)."""
        return self.alive and self.transport.usable()

    def _wait_exit(self) -> Optional[int]:
        for _ in range(50):
            status = self.transport.exit_status()
            if status is not None:
                return status
            time.sleep(0.02)
        return None

    def kill(self) -> None:
        """Stop the worker at once, without a shutdown request (it may be in the middle of one)."""
        self.alive = False
        self.transport.terminate()

    def request(
        self,
        op: str,
        arrays: Sequence[Tuple[str, np.ndarray]] = (),
        timeout: Optional[float] = None,
        reply_check: ReplyCheck = NO_ARRAYS,
        **fields: Any,
    ) -> Tuple[Dict[str, Any], Arrays]:
        """Send one request and return ``(reply header, arrays)``; raise WorkerError / WorkerDied (also
        when the reply declares arrays ``reply_check`` does not allow: none by default)."""
        return _ok(self.exchange([Request(op, arrays, reply_check, fields)], timeout)[0])

    def exchange(self, requests: Sequence[Request], timeout: Optional[float]) -> List[Tuple[Dict[str, Any], Arrays]]:
        """Send ``requests`` in one write and read their replies in order (the worker answers one after another,
        the next request already in its input: no round trip between them); each ``(reply header, arrays)`` as
        it came, ``ok`` or not. WorkerDied when the worker is gone, or a reply declares arrays its check does not
        allow."""
        if not self.alive:
            raise WorkerDied(f"{self.label} is no longer running")
        with self._lock:
            ids, parts = [], []
            for op, arrays, _, fields in requests:
                ids.append(next(self._ids))
                parts += wire.frame_parts(dict(fields, op=op, id=ids[-1]), arrays)
            since = self.transport.stderr.mark()
            try:
                self.transport.send(parts if len(ids) == 1 else wire.coalesce(parts))
                return [self._read_reply(timeout, r.op, i, since, r.check) for r, i in zip(requests, ids)]
            except WorkerDied:
                self.kill()  # a failed write leaves no usable worker: the next request starts a new one
                raise
            except BaseException as exc:  # pytest-timeout, Ctrl-C: a reply may still come, out of step
                self.kill()
                self.on_interrupt(
                    f"{self.label}: the {requests[0].op} request was interrupted ({wire.one_line(exc)}); the worker "
                    "was stopped, so the next request starts a fresh one"
                )
                raise

    # -- one method per request (the worker's HANDLERS answer them)
    def capabilities(
        self, timeout: Optional[float], ep_cache: bool = False, probe: Optional[Sequence[str]] = None
    ) -> Dict[str, Any]:
        """What the worker's python has: providers, versions, QNN backends, platform; ``ep_cache``: the QNN
        backend probe's sessions may come from the EP-context cache; ``probe``: the QNN backends to try a
        graph on (None: all that ship)."""
        fields: Dict[str, Any] = {} if probe is None else {"probe": list(probe)}
        return self.request(Op.CAPABILITIES, timeout=timeout, ep_cache=ep_cache, **fields)[0]

    def has_model(self, sha256: str, timeout: Optional[float]) -> bool:
        return bool(self.request(Op.HAS_MODEL, sha256=sha256, timeout=timeout)[0]["present"])

    def put_model(self, sha256: str, data: bytes, timeout: Optional[float]) -> None:
        self.request(Op.PUT_MODEL, [("model", np.frombuffer(data, dtype=np.uint8))], sha256=sha256, timeout=timeout)

    def has_file(self, bundle: str, location: str, timeout: Optional[float]) -> bool:
        return bool(self.request(Op.HAS_FILE, bundle=bundle, location=location, timeout=timeout)[0]["present"])

    def put_file(self, bundle: str, location: str, sha256: str, data: bytes, timeout: Optional[float]) -> None:
        self.request(
            Op.PUT_FILE,
            [("file", np.frombuffer(data, dtype=np.uint8))],
            bundle=bundle,
            location=location,
            sha256=sha256,
            timeout=timeout,
        )

    def create_session(
        self,
        sid: str,
        sha256: str,
        ep: str,
        options: Mapping[str, str],
        cpu_fallback: bool,
        timeout: Optional[float],
        bundle: Optional[str] = None,
        files: Sequence[Sequence[str]] = (),
        ep_cache: bool = False,
        profile: bool = False,
    ) -> Dict[str, Any]:
        """Open session ``sid`` of a cached model (``bundle``/``files``: a model with external data;
        ``ep_cache``: through the worker's EP-context cache; ``profile``: its runs write QNN's per-op
        profile, :meth:`take_profile` fetches it)."""
        extra: Dict[str, Any] = {"bundle": bundle, "files": [list(f) for f in files]} if bundle else {}
        if profile:
            extra["profile"] = True
        return self.request(
            Op.CREATE_SESSION,
            sid=sid,
            sha256=sha256,
            ep=ep,
            options=dict(options),
            cpu_fallback=cpu_fallback,
            ep_cache=ep_cache,
            timeout=timeout,
            **extra,
        )[0]

    def run(
        self,
        sid: str,
        feed: Mapping[str, np.ndarray],
        memory_check: bool,
        timeout: Optional[float],
        *,
        outputs: ReplyCheck,
        core: Optional[int] = None,
    ) -> Tuple[Dict[str, Any], Arrays]:
        """One inference: ``(reply with "memory_differs", [(output name, array)])``; ``outputs``: what
        the model can produce (:func:`~.replies.outputs_bound`); ``core``: the core (an index into the
        worker's cores) a simulated run takes, so that parallel workers of one batch do not share one."""
        return _ok(self.exchange([run_request(sid, feed, memory_check, outputs, core)], timeout)[0])

    def run_both(
        self, first: Request, then: Request, timeout: Optional[float]
    ) -> Tuple[Tuple[Dict[str, Any], Arrays], Tuple[Dict[str, Any], Arrays]]:
        """Two runs (:func:`run_request`) in one write: a test's inference and its reference's of the same feed.
        WorkerError for the first's error, after both replies are read; the second's reply comes as it is."""
        replies = self.exchange([first, then], timeout)
        return _ok(replies[0]), replies[1]

    def time_runs(
        self,
        sid: str,
        feed: Mapping[str, np.ndarray],
        runs: int,
        warmup: int,
        timeout: Optional[float],
        max_s: Optional[float] = None,
        min_runs: int = 1,
    ) -> List[float]:
        """Latencies in ms measured inside the worker: up to ``runs``, within ``max_s`` seconds in all
        but at least ``min_runs``."""
        reply, _ = self.request(
            Op.TIME,
            list(feed.items()),
            sid=sid,
            runs=runs,
            warmup=warmup,
            max_s=max_s,
            min_runs=min_runs,
            timeout=timeout,
        )
        return list(reply["times_ms"])

    def close_session(self, sid: str, timeout: Optional[float]) -> None:
        self.request(Op.CLOSE_SESSION, sid=sid, timeout=timeout)

    def take_profile(self, sid: str, timeout: Optional[float]) -> Dict[str, bytes]:
        """Close profiled session ``sid``; the files its profile wrote, by name (removed from the device)."""
        files = files_bound(PROFILE_MAX_FILES, PROFILE_MAX_BYTES, "a profile")
        reply = self.request(Op.PROFILE, sid=sid, timeout=timeout, reply_check=files)
        return {name: array.tobytes() for name, array in reply[1]}

    def echo(self, arrays: Sequence[Tuple[str, np.ndarray]], timeout: Optional[float] = None) -> Arrays:
        """The arrays back, bit for bit (protocol and transport tests, benchmarks)."""
        return self.request(Op.ECHO, arrays, timeout=timeout, reply_check=like(arrays))[1]

    def lock(self, path: str, holder: Mapping[str, Any], timeout: Optional[float]) -> Dict[str, Any]:
        """Try once to take the board lock at ``path``: ``{"acquired", "path"[, "holder"]}``."""
        return self.request(Op.LOCK, path=path, holder=dict(holder), timeout=timeout)[0]

    def close(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit, then make sure it is gone."""
        if self.alive and self.transport.exit_status() is None:
            try:
                request_id = next(self._ids)
                self.transport.send([wire.encode_header_only({"op": Op.SHUTDOWN, "id": request_id})])
                self._read_reply(timeout, "shutdown", request_id, self.transport.stderr.mark(), NO_ARRAYS)
            except (WorkerDied, OSError):
                pass
        self.alive = False
        self.transport.terminate()


class Request(NamedTuple):
    """One request for :meth:`WorkerClient.exchange`: its op, arrays, what its reply may declare, other fields."""

    op: str
    arrays: Sequence[Tuple[str, np.ndarray]]
    check: ReplyCheck
    fields: Mapping[str, Any]


def run_request(
    sid: str, feed: Mapping[str, np.ndarray], memory_check: bool, outputs: ReplyCheck, core: Optional[int] = None
) -> Request:
    """The ``run`` request of session ``sid`` (see :meth:`WorkerClient.run`)."""
    fields: Dict[str, Any] = {"sid": sid, "memory_check": memory_check}
    if core is not None:
        fields["core"] = core
    return Request(Op.RUN, list(feed.items()), outputs, fields)


def _ok(exchanged: Tuple[Dict[str, Any], Arrays]) -> Tuple[Dict[str, Any], Arrays]:
    """A reply of :meth:`WorkerClient.exchange`; WorkerError when it is not ``ok``."""
    reply = exchanged[0]
    if not reply.get("ok"):
        raise WorkerError(reply.get("kind", wire.Kind.INTERNAL), reply.get("error", "unknown worker error"))
    return exchanged


class _ReplyReader:
    """Reads one reply for :class:`WorkerClient`: small reads through its buffer, arrays straight
    into their own memory (a big tensor is not copied on the way in). What is read is not cut off the
    buffer at once: ``client._read_at`` moves past it, and the buffer drops it when it next needs more."""

    def __init__(self, client: WorkerClient, deadline: Optional[float], timeout: Optional[float], what: str) -> None:
        self.client, self.deadline, self.timeout, self.what = client, deadline, timeout, what

    def read_exact(self, n: int) -> bytes:
        client = self.client
        buffer, start = client._buffer, client._read_at
        if len(buffer) - start < n:
            del buffer[:start]
            start = 0
            while len(buffer) < n:
                buffer += client._recv(max(65536, n - len(buffer)), self.deadline, self.timeout, self.what)
        client._read_at = start + n
        return bytes(memoryview(buffer)[start : start + n])

    def read_into(self, view: memoryview) -> None:
        client = self.client
        start = client._read_at
        done = min(len(client._buffer) - start, len(view))
        view[:done] = memoryview(client._buffer)[start : start + done]
        client._read_at = start + done
        while done < len(view):
            chunk = client._recv(min(len(view) - done, 1 << 20), self.deadline, self.timeout, self.what)
            view[done : done + len(chunk)] = chunk
            done += len(chunk)
