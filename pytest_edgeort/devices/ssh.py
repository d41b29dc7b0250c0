"""SSH boards: one fabric connection per device, one persistent worker per isolation group.

The worker is the same zipapp the ``local`` device runs (:mod:`.artifact`), uploaded once into the
board's workdir under its content hash. Each worker is one ``exec`` channel on the connection, started
as ``exec sh -c 'echo "edgeort-worker $$"; "$@"; exit $?' ... python -c BOOTSTRAP ...`` so that

* the first stdout line names the worker's process group (sshd gives every exec session its own),
  which :meth:`SSHTransport.terminate` kills over a fresh exec if closing stdin does not stop it;
* a worker killed by a signal is reported as such (``exit $?`` turns it into status 128+N, which
  paramiko delivers; it drops OpenSSH's ``exit-signal`` message).

After that line, stdin/stdout carry the framed protocol and stderr feeds a :class:`StderrTail`.
Host keys are checked against ``known_hosts`` (:mod:`.hostkeys`; unknown or changed keys are refused) unless the
inventory says ``insecure_skip_host_key_check = true``.
"""

from __future__ import annotations

import inspect
import json
import os
import shlex
import socket
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import paramiko
from fabric import Connection
from invoke.exceptions import CommandTimedOut

from ..config.inventory import DEFAULT_WORKDIR, DeviceConfig
from ..config.kinds import DeviceKind
from ..errors import DeviceFault, DeviceUnavailable, HostKeyChanged, HostKeyRefused, WorkerDied
from .artifact import WORKER_BYTES, WORKER_NAME, WORKER_SHA256, bootstrap_argv, prepare_command
from .base import WorkerDevice
from .boardlock import LOCK_NAME
from .hostkeys import RefuseUnknownHost, fingerprint, known_hosts_path, load_known_hosts
from .transport import StderrTail, Transport, describe_exit

PREAMBLE = b"edgeort-worker "
# The window the host grants the board: twice paramiko's 2 MiB default, so large tensors stream back without
# stalling on window updates; not more: OpenSSH's sshd buffers up to a window of a worker's reply, and its first
# 16 MiB fill cost it ~1-1.7 s of CPU (a fresh worker's first 64 MB echo ran at 76-128 MB/s, 403-465 with 4 MiB).
WINDOW_SIZE = 4 * 1024 * 1024
MAX_PACKET_SIZE = 32 * 1024
_LAUNCHER = 'echo "edgeort-worker $$"; "$@"; exit $?'


def _no_delay(sock: Any) -> None:
    """TCP_NODELAY on a connection's socket (not on a ProxyCommand pipe): a small request must not
    wait for the ACK of the previous one (Nagle's algorithm against delayed ACKs: 40 ms a round trip)."""
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _GcmFirstTransport(paramiko.Transport):
    """Prefers AES-GCM when the server offers it: one AEAD call per packet instead of paramiko's
    default aes-ctr + separate HMAC, about 1.8x the tensor throughput. Every other cipher stays."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = self.get_security_options()
        gcm = tuple(c for c in options.ciphers if c.endswith("-gcm@openssh.com"))
        options.ciphers = gcm + tuple(c for c in options.ciphers if c not in gcm)


# paramiko >= 3.2 lets SSHClient.connect build the transport; older ones keep their default order.
_TRANSPORT_FACTORY = "transport_factory" in inspect.signature(paramiko.SSHClient.connect).parameters


class _ChannelStderr:
    """A ``readline()`` view of a channel's stderr for :meth:`StderrTail.feed_stream`.

    The channel's timeout is set per protocol read; timeouts here just mean "no stderr yet".
    """

    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel
        self.buffer = bytearray()

    def readline(self) -> bytes:
        while b"\n" not in self.buffer:
            try:
                data = self.channel.recv_stderr(32768)
            except socket.timeout:
                continue
            if not data:
                line = bytes(self.buffer)
                self.buffer.clear()
                return line
            self.buffer += data
        end = self.buffer.index(b"\n") + 1
        line = bytes(self.buffer[:end])
        del self.buffer[:end]
        return line


class SSHTransport(Transport):
    """The framed protocol over one exec channel; the remote process group dies with it."""

    def __init__(
        self,
        channel: paramiko.Channel,
        where: str,
        startup_timeout: float,
        command_timeout: float,
        kill_group: Callable[[int], None],
    ) -> None:
        self.channel = channel
        self.where = where
        self.command_timeout = command_timeout
        self.kill_group = kill_group
        self.pgid: Optional[int] = None
        self._pending = b""
        self._terminated = False
        self.stderr = StderrTail()
        self.stderr.feed_stream(_ChannelStderr(channel))
        self.description = f"worker on {where}"
        self._read_preamble(startup_timeout)

    def _read_preamble(self, timeout: float) -> None:
        """Skip anything a login script printed, up to the launcher's ``edgeort-worker <pgid>`` line."""
        deadline = time.monotonic() + timeout
        data = b""
        while True:
            start = data.find(PREAMBLE)
            if start >= 0 and b"\n" in data[start:]:
                end = data.index(b"\n", start)
                self.pgid = int(data[start + len(PREAMBLE) : end])
                self._pending = data[end + 1 :]
                self.description = f"worker (process group {self.pgid}) on {self.where}"
                return
            try:
                chunk = self.recv(65536, max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                self.terminate()
                raise WorkerDied(f"the worker launcher on {self.where} printed nothing within {timeout:g} s") from None
            if not chunk:
                status = self.exit_status()
                self.terminate()
                tail = self.stderr.text()
                raise WorkerDied(
                    f"the worker launcher on {self.where} ended before the worker started "
                    f"({describe_exit(status)})" + (f"; stderr: {tail}" if tail else "")
                )
            data += chunk

    def send(self, parts: Sequence[Any]) -> None:
        """Write a frame. Write errors are left to the next ``recv`` (EOF): the client then reports
        how the worker ended (killed, connection lost) instead of a bare write error."""
        # Channel.sendall re-slices the remaining bytes after every packet: quadratic for big tensors.
        try:
            self.channel.settimeout(self.command_timeout)
            for part in parts:
                # bytes go out as they are (a slice of all of them is the same object: no copy); other buffers
                # as bytes, a packet at a time
                data = part if type(part) is bytes else memoryview(part).cast("B")
                offset = 0
                while offset < len(data):
                    offset += self.channel.send(bytes(data[offset : offset + MAX_PACKET_SIZE]))
        except socket.timeout:
            raise WorkerDied(f"{self.description} did not accept input within {self.command_timeout:g} s") from None
        except (OSError, EOFError, paramiko.SSHException):
            pass  # the channel or the connection is gone: recv() sees EOF and the client says how it ended

    def recv(self, max_bytes: int, timeout: Optional[float]) -> bytes:
        if self._pending:
            data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
            return data
        self.channel.settimeout(timeout)
        try:
            return self.channel.recv(max_bytes)
        except socket.timeout:
            raise TimeoutError from None

    def exit_status(self) -> Optional[int]:
        """The worker's exit code, ``-N`` for signal N (via ``exit $?``), None if unknown/running."""
        status = self.channel.exit_status
        if not self.channel.status_event.is_set() or status == -1:  # -1: closed without a status
            return None
        return -(status - 128) if 128 < status < 128 + 65 else status

    def usable(self) -> bool:
        transport = self.channel.get_transport()
        return (
            self.exit_status() is None and not self.channel.closed and transport is not None and transport.is_active()
        )

    def terminate(self) -> None:
        """Close stdin (an idle worker exits), then kill the process group if it is still there."""
        if self._terminated:
            return
        self._terminated = True
        channel = self.channel
        if not channel.status_event.is_set() and not channel.closed:
            try:
                channel.shutdown_write()
            except (OSError, EOFError, paramiko.SSHException):
                pass
            if not channel.status_event.wait(1.0) and self.pgid is not None and not channel.closed:
                self.kill_group(self.pgid)
        channel.close()


class SSHDevice(WorkerDevice):
    """A board reached over SSH (fabric/paramiko), with workers started in ``workdir``."""

    def __init__(self, config: DeviceConfig, kind: Optional[DeviceKind] = None) -> None:
        super().__init__(config, kind)
        self._conn: Optional[Connection] = None
        self._workdir: Optional[str] = None
        self._lock = threading.RLock()
        self.worker_uploads = 0
        self.connections = 0
        self.warned_insecure = False
        self._refused: Optional[Tuple[float, DeviceUnavailable]] = None  # when the last connect failed, and how

    # -- connection
    @property
    def address(self) -> str:
        conn = self._conn
        if conn is None:
            return f"{self.config.host}:{self.config.port or 22}"
        return f"{conn.host}:{conn.port}"

    @property
    def where(self) -> str:
        return self.address

    def lock_path(self) -> str:
        return f"{self.workdir()}/{LOCK_NAME}"

    def connection(self) -> Connection:
        """The open connection, (re)connecting when there is none or it dropped. A failed attempt is
        repeated at most once per ``connect_timeout``: tests in between get the same error at once."""
        with self._lock:
            if self._conn is not None and self._conn.is_connected:
                return self._conn
            self._retire_clients()
            self._drop_connection()
            if self._refused is not None and time.monotonic() - self._refused[0] < self.config.connect_timeout:
                raise self._refused[1]
            try:
                self._conn = self._connect()
            except DeviceUnavailable as exc:
                self._refused = (time.monotonic(), exc)
                raise
            self._refused = None
            self.connections += 1
            self._workdir = None
            return self._conn

    def _retire_clients(self) -> None:
        for client in self.clients.values():  # workers of a dropped connection are gone with it
            client.alive = False
            client.transport.terminate()

    def worker_died(self) -> None:
        """A lost connection took every worker with it: sessions of other isolation groups reopen on
        a new connection instead of each failing once more on the dead one."""
        with self._lock:
            if self._conn is not None and not self._conn.is_connected:
                self._retire_clients()

    def _connect(self) -> Connection:
        cfg = self.config
        timeout = cfg.connect_timeout
        kwargs: Dict[str, Any] = {
            "timeout": timeout,
            "banner_timeout": timeout,
            "auth_timeout": timeout,
            "channel_timeout": timeout,
        }
        if cfg.identity_file:
            kwargs["key_filename"] = [os.path.expanduser(cfg.identity_file)]
        if _TRANSPORT_FACTORY:
            kwargs["transport_factory"] = _GcmFirstTransport
        conn = Connection(cfg.host, user=cfg.user, port=cfg.port, connect_kwargs=kwargs)
        conn.connect_timeout = None  # fabric truncates it to int; paramiko gets the float in connect_kwargs
        where = f"{conn.host}:{conn.port}"
        if cfg.insecure_skip_host_key_check:
            conn.client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # in memory only, never saved
            if not self.warned_insecure:
                self.warned_insecure = True
                self.notify(
                    f"edgeort: WARNING: device {self.name!r}: insecure_skip_host_key_check = true, so the "
                    f"host key of {where} is not verified (anyone on the path can pose as the board)"
                )
        else:
            known = known_hosts_path(self.config.known_hosts, conn)
            load_known_hosts(conn, known, self.name)
            conn.client.set_missing_host_key_policy(RefuseUnknownHost(self.name, known, known.is_file()))
        error: type = DeviceUnavailable
        try:
            conn.open()
        except HostKeyRefused as exc:
            message = str(exc)
        except paramiko.BadHostKeyException as exc:
            error = HostKeyChanged
            known = known_hosts_path(self.config.known_hosts, conn)
            entry = f"[{conn.host}]:{conn.port}" if conn.port != 22 else conn.host
            message = (
                f"device {self.name!r}: host key for {where} has CHANGED: the server offers "
                f"{fingerprint(exc.key)} but {known} has {fingerprint(exc.expected_key)} (refusing to connect; "
                f"someone may be intercepting the connection, or the board was reinstalled: if so, remove the "
                f"old entry with `ssh-keygen -R {shlex.quote(entry)} -f {shlex.quote(str(known))}` and add the new key)"
            )
        except paramiko.AuthenticationException as exc:
            message = (
                f"device {self.name!r}: authentication as {conn.user!r} on {where} failed ({exc}); "
                "check user and identity_file"
            )
        except (OSError, EOFError, paramiko.SSHException) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            if "banner" in reason or reason in ("No existing session", "Negotiation failed."):  # paramiko's words
                reason = "the SSH handshake did not complete (is an SSH server listening there?)"
            message = f"device {self.name!r}: cannot connect to {where} within {timeout:g} s: {reason}"
        else:
            _no_delay(conn.transport.sock)
            return conn
        conn.close()
        raise error(message)

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # a dropped connection may fail to close cleanly; it is gone either way
                pass
            self._conn = None

    def shell(self, command: str, timeout: Optional[float] = None, what: Optional[str] = None) -> str:
        """Run a short shell command on the board; return stdout; DeviceUnavailable on failure
        (naming ``what`` the command does, or the command itself)."""
        conn = self.connection()
        timeout = timeout or self.config.command_timeout
        what = what or f"`{command}`"
        try:
            result = conn.run(command, hide=True, warn=True, timeout=timeout, in_stream=False)
        except CommandTimedOut:
            raise DeviceUnavailable(f"device {self.name!r}: {what} did not finish within {timeout:g} s") from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise DeviceUnavailable(f"device {self.name!r}: {what} failed: {exc}") from None
        if result.exited != 0:
            detail = " ".join(result.stderr.split()) or f"exit code {result.exited}"
            raise DeviceUnavailable(f"device {self.name!r}: {what} failed on {self.address}: {detail}")
        return result.stdout

    # -- worker
    def workdir(self) -> str:
        """The board's workdir (``~`` expanded remotely): created private (0700), refused when another
        user owns it or others can write it, with this plugin's worker zipapp in it (checked by hash)."""
        self.connection()
        if self._workdir is None:
            python = self.config.python or "python3"
            command = " ".join(
                shlex.quote(a)
                for a in (
                    python,
                    "-c",
                    prepare_command(),
                    self.config.workdir or DEFAULT_WORKDIR,
                    WORKER_NAME,
                    WORKER_SHA256,
                )
            )
            output = self.shell(command, what=f"preparing the workdir with {python}")
            try:
                state = json.loads(output.strip().splitlines()[-1])
            except (ValueError, IndexError):
                raise DeviceUnavailable(
                    f"device {self.name!r}: preparing the workdir with {python} printed {output.strip()[:200]!r}"
                ) from None
            if "error" in state:
                raise DeviceUnavailable(f"device {self.name!r} ({self.address}): {state['error']}")
            workdir = state["workdir"]
            if not state["current"]:
                self._upload_worker(workdir, f"{workdir}/{WORKER_NAME}")
            self._workdir = workdir
        return self._workdir

    def _upload_worker(self, workdir: str, target: str) -> None:
        """Write the worker zipapp through a shell on an exec channel (no SFTP server needed: dropbear and
        minimal images have none); BOOTSTRAP checks its hash before every start anyway."""
        tmp = f"{target}.{os.getpid()}.tmp"
        command = f"cat > {shlex.quote(tmp)} && mv -f -- {shlex.quote(tmp)} {shlex.quote(target)}"
        try:
            channel = self.connection().transport.open_session(timeout=self.config.connect_timeout)
            channel.settimeout(self.config.command_timeout)
            channel.exec_command(command)
            channel.sendall(WORKER_BYTES)
            channel.shutdown_write()
            status = channel.recv_exit_status()
            error = channel.makefile_stderr("rb").read().decode("utf-8", "replace")
            channel.close()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            status, error = -1, str(exc) or type(exc).__name__
        if status != 0:
            raise DeviceUnavailable(
                f"device {self.name!r}: cannot write the worker to {workdir} on {self.address}: "
                f"{' '.join(error.split()) or f'exit code {status}'}"
            )
        self.worker_uploads += 1

    def worker_command(self, workdir: str, args: Sequence[str] = ()) -> str:
        """The exec line that starts one worker (every path and argument quoted)."""
        python = self.config.python or "python3"
        argv: List[str] = ["env", "PYTHONUNBUFFERED=1", *bootstrap_argv(python, workdir, args, mode="env")]
        return " ".join(["exec", "sh", "-c", shlex.quote(_LAUNCHER), "edgeort-worker", *map(shlex.quote, argv)])

    def _start_transport(self, group: str) -> SSHTransport:
        workdir = self.workdir()
        conn = self.connection()
        cfg = self.config
        where = f"device {self.name!r} ({conn.user}@{self.address}, {cfg.python or 'python3'})"
        try:
            channel = conn.transport.open_session(
                window_size=WINDOW_SIZE, max_packet_size=MAX_PACKET_SIZE, timeout=cfg.connect_timeout
            )
            channel.exec_command(self.worker_command(workdir, self.worker_args(group)))
            channel.sendall(json.dumps(dict(self.config.env)).encode("utf-8") + b"\n")  # read by BOOTSTRAP
            return SSHTransport(channel, where, max(30.0, cfg.command_timeout), cfg.command_timeout, self._kill_group)
        except WorkerDied as exc:
            raise DeviceUnavailable(f"device {self.name!r}: {exc}") from None
        except paramiko.ChannelException as exc:
            raise DeviceFault(
                f"device {self.name!r}: the SSH server on {self.address} refused another session channel "
                f"({exc.text or exc}; {len(self.clients) + 1} open on this connection): sshd's MaxSessions "
                "(default 10) limits them, and this run needs one per isolation group plus the board lock; "
                "raise MaxSessions in the board's sshd_config"
            ) from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise DeviceUnavailable(f"device {self.name!r}: cannot start a worker on {self.address}: {exc}") from None

    def _kill_group(self, pgid: int) -> None:
        """Kill a worker's process group over a fresh exec (best effort when the connection is gone)."""
        if self._conn is None or not self._conn.is_connected:
            return
        try:
            self.shell(f"kill -KILL -- -{int(pgid)} 2>/dev/null; true", timeout=min(10.0, self.config.command_timeout))
        except DeviceUnavailable:
            pass

    def close(self) -> None:
        super().close()
        with self._lock:
            self._drop_connection()
