"""Throwaway OpenSSH servers for the SSH tests and the benchmark (real sshd, no mocks).

:class:`SSHKit` owns a directory with a client key; :meth:`SSHKit.start` brings up ``/usr/sbin/sshd``
with its own host key on 127.0.0.1 (free port) or inside a network namespace with its own address
(:class:`NetnsLink`), and writes a matching ``known_hosts``. Everything stops in :meth:`SSHKit.close`.
"""

from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from pytest_edgeort.config.inventory import DeviceConfig

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = "ssh-keygen"


def sshd_missing() -> Optional[str]:
    """Why real-sshd tests cannot run here, or None."""
    if not SSHD.exists():
        return f"{SSHD} is not installed (apt-get install openssh-server)"
    if subprocess.run(["which", SSH_KEYGEN], capture_output=True).returncode != 0:
        return "ssh-keygen is not installed (apt-get install openssh-client)"
    return None


def _keygen(path: Path) -> str:
    """Create an ed25519 key pair at ``path``; return the public key line ("ssh-ed25519 AAAA...")."""
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "edgeort-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class SilentListener:
    """A TCP port on loopback that accepts connections but never speaks SSH; counts the connections
    it accepted (how often a client tried), holding each open until ``close()``."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        self.accepted: List[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.accepted.append(conn)

    @property
    def connections(self) -> int:
        return len(self.accepted)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def _children(pid: int) -> List[int]:
    """All descendants of ``pid`` (from /proc), depth first."""
    kids: dict = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for kid in kids.get(todo.pop(), []):
            out.append(kid)
            todo.append(kid)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


@dataclass
class SSHServer:
    """One running sshd and everything a client needs to reach it."""

    host: str
    port: int
    user: str
    identity_file: Path
    known_hosts: Path
    host_key_line: str
    proc: subprocess.Popen
    log: Path
    netns: Optional[NetnsLink] = None

    def inventory(self, name: str, **extra: object) -> str:
        """A ``[devices.<name>]`` TOML table for this server (extra keys appended verbatim)."""
        values = {
            "kind": "ssh",
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "identity_file": str(self.identity_file),
            "known_hosts": str(self.known_hosts),
            **extra,
        }
        lines = [f"[devices.{name}]"]
        for key, value in values.items():
            if isinstance(value, dict):
                inner = ", ".join(f"{k} = {_toml(v)}" for k, v in value.items())
                lines.append(f"{key} = {{ {inner} }}")
            else:
                lines.append(f"{key} = {_toml(value)}")
        return "\n".join(lines) + "\n"

    def device_config(self, name: str, workdir: str, **extra: Any) -> DeviceConfig:
        """A :class:`DeviceConfig` for this server with this machine's python and ``workdir``."""
        values: Dict[str, Any] = dict(
            host=self.host,
            port=self.port,
            user=self.user,
            python=sys.executable,
            identity_file=str(self.identity_file),
            known_hosts=str(self.known_hosts),
        )
        return DeviceConfig(name, kind="ssh", workdir=workdir, **{**values, **extra})

    def ssh_args(self, *remote: str) -> List[str]:
        """An OpenSSH client command line for this server (host key checked against known_hosts)."""
        return [
            "ssh",
            "-q",
            "-i",
            str(self.identity_file),
            "-p",
            str(self.port),
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            f"{self.user}@{self.host}",
            *remote,
        ]

    def worker_pids(self) -> List[int]:
        """Processes under this sshd that are edgeort workers (there must be none after a session)."""
        return [pid for pid in _children(self.proc.pid) if "worker-" in cmdline(pid) and ".py" in cmdline(pid)]

    def stop(self) -> None:
        for pid in reversed(_children(self.proc.pid)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class NetnsLink:
    """A network namespace joined to this one by a veth pair; the board side gets its own address."""

    def __init__(self, tag: str) -> None:
        n = os.getpid() % 16000
        self.ns = f"edgeort-{tag}-{os.getpid()}"
        self.host_if, self.board_if = f"eo{n}h{tag[:2]}", f"eo{n}b{tag[:2]}"
        base = f"10.{200 + n // 4000}.{(n // 64) % 62 + 1}.{(n % 64) * 4}"
        prefix = base.rsplit(".", 1)[0]
        last = int(base.rsplit(".", 1)[1])
        self.host_addr, self.board_addr = f"{prefix}.{last + 1}", f"{prefix}.{last + 2}"
        self._created = False

    @staticmethod
    def unsupported() -> Optional[str]:
        """Why no namespace can be made here (not root, no ``ip``), or None."""
        if os.geteuid() != 0:
            return "network namespaces need root"
        if subprocess.run(["which", "ip"], capture_output=True).returncode != 0:
            return "the ip tool (iproute2) is not installed"
        return None

    def create(self) -> None:
        """Set up the namespace; raise RuntimeError naming the failing command."""
        self._created = True
        for cmd in (
            ["ip", "netns", "add", self.ns],
            ["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.board_if],
            ["ip", "link", "set", self.board_if, "netns", self.ns],
            ["ip", "addr", "add", f"{self.host_addr}/30", "dev", self.host_if],
            ["ip", "link", "set", self.host_if, "up"],
            ["ip", "-n", self.ns, "addr", "add", f"{self.board_addr}/30", "dev", self.board_if],
            ["ip", "-n", self.ns, "link", "set", self.board_if, "up"],
            ["ip", "-n", self.ns, "link", "set", "lo", "up"],
        ):
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")

    def exec_prefix(self) -> List[str]:
        return ["ip", "netns", "exec", self.ns]

    def delete(self) -> None:
        if not self._created:
            return
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        self._created = False


@dataclass
class SSHKit:
    """A directory of throwaway keys and the sshd servers started from it."""

    root: Path
    servers: List[SSHServer] = field(default_factory=list)
    links: List[NetnsLink] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.identity_file = self.root / "client_key"
        self.client_pub = _keygen(self.identity_file)
        (self.root / "authorized_keys").write_text(self.client_pub + "\n")
        os.chmod(self.root / "authorized_keys", 0o600)

    def start(
        self, name: str, netns: Optional[NetnsLink] = None, max_sessions: int = 64, sftp: bool = True
    ) -> SSHServer:
        """Start sshd ``name`` on 127.0.0.1:<free port>, or on the namespace's own address, port 22."""
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
        host_key = self.root / f"{name}_host_key"
        host_line = _keygen(host_key)
        host, port = (netns.board_addr, 22) if netns else ("127.0.0.1", free_port())
        config = self.root / f"{name}_sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {host}:{port}",
                    f"HostKey {host_key}",
                    f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
                    f"PidFile {self.root / (name + '.pid')}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "PermitRootLogin yes",
                    f"MaxSessions {max_sessions}",
                    "MaxStartups 64",
                    "Subsystem sftp internal-sftp" if sftp else "",
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        log = self.root / f"{name}_sshd.log"
        prefix = netns.exec_prefix() if netns else []
        proc = subprocess.Popen(
            [*prefix, str(SSHD), "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
            start_new_session=True,
        )
        known = self.root / f"{name}_known_hosts"
        known.write_text(f"[{host}]:{port} {host_line}\n" if port != 22 else f"{host} {host_line}\n")
        server = SSHServer(host, port, getpass.getuser(), self.identity_file, known, host_line, proc, log, netns)
        self.servers.append(server)
        self._wait_ready(server)
        return server

    def start_in_netns(self, name: str) -> SSHServer:
        """A second board with its own address; RuntimeError saying why when the machine refuses."""
        reason = NetnsLink.unsupported()
        if reason:
            raise RuntimeError(reason)
        link = NetnsLink(name)
        self.links.append(link)
        link.create()
        return self.start(name, link)

    @staticmethod
    def _wait_ready(server: SSHServer, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(f"sshd exited with {server.proc.returncode}: {server.log.read_text().strip()}")
            try:
                with socket.create_connection((server.host, server.port), timeout=1) as sock:
                    if sock.recv(8).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd on {server.host}:{server.port} did not come up: {server.log.read_text().strip()}")

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        for link in self.links:
            link.delete()
        self.servers.clear()
        self.links.clear()
