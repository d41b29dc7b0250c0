"""A throwaway labgrid lab on loopback: labgrid's own coordinator and exporter, places made with labgrid-client.

:class:`Lab` starts ``python -m labgrid.remote.coordinator`` on a free port and one exporter whose
NetworkService groups all point at a test sshd; :meth:`Lab.add_place` creates a place matching one
fresh group, :meth:`Lab.client` runs ``labgrid-client`` (as another user with ``user=``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

from tests.support.sshd import SSHServer, free_port

GROUPS = 12  # NetworkService groups the exporter offers (one per place)


def labgrid_missing() -> Optional[str]:
    """Why labgrid tests cannot run here, or None."""
    try:
        import labgrid  # noqa: F401
    except ImportError as exc:
        return f"labgrid is not installed ({exc}): pip install -e '.[labgrid]'"
    return None


class Lab:
    """A coordinator and an exporter (NetworkService groups g0..g11 -> ``board``), stopped by :meth:`close`."""

    def __init__(self, root: Path, board: SSHServer) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = dict(os.environ, GRPC_ENABLE_FORK_SUPPORT="0", PYTHONUNBUFFERED="1")
        self.procs: List[subprocess.Popen] = []
        self.next_group = 0
        self._start("coordinator", "-m", "labgrid.remote.coordinator", "--listen", self.address)
        self._wait_port()
        exports = "".join(
            f"g{i}:\n  NetworkService:\n    address: {board.host}\n    username: {board.user}\n    port: {board.port}\n"
            for i in range(GROUPS)
        )
        (root / "exports.yaml").write_text(exports)
        self._start("exporter", "-m", "labgrid.remote.exporter", "-c", self.address, "--name", "exp", "exports.yaml")
        self._wait_resources()

    def _start(self, name: str, *args: str) -> None:
        log = (self.root / f"{name}.log").open("wb")
        self.procs.append(
            subprocess.Popen([sys.executable, *args], cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        )

    def _wait_port(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"labgrid coordinator did not listen: {(self.root / 'coordinator.log').read_text()}")

    def _wait_resources(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if f"exp/g{GROUPS - 1}/NetworkService" in self.client("resources").stdout:
                return
            time.sleep(0.2)
        raise RuntimeError(f"labgrid exporter did not register: {(self.root / 'exporter.log').read_text()}")

    def client(
        self, *args: str, place: Optional[str] = None, user: Optional[str] = None
    ) -> subprocess.CompletedProcess:
        """``labgrid-client -x <coordinator> [-p place] args`` (as ``otherhost/<user>`` when ``user`` is given)."""
        env: Dict[str, str] = dict(self.env)
        if user is not None:
            env.update(LG_USERNAME=user, LG_HOSTNAME="otherhost")
        command = [sys.executable, "-m", "labgrid.remote.client", "-x", self.address]
        command += ["-p", place] if place else []
        return subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=60)

    def add_place(self, name: str, **tags: str) -> str:
        """A place matching one NetworkService group of its own, with ``tags``."""
        group = self.next_group
        self.next_group += 1
        for args in (("create",), ("add-match", f"exp/g{group}/NetworkService")) + (
            (("set-tags", *(f"{k}={v}" for k, v in tags.items())),) if tags else ()
        ):
            result = self.client(*args, place=name)
            assert result.returncode == 0, result.stderr
        return name

    def acquired_by(self, place: str) -> Optional[str]:
        """Who holds ``place`` now (``host/user``), or None."""
        for line in self.client("show", place=place).stdout.splitlines():
            if line.strip().startswith("acquired:"):
                holder = line.split(":", 1)[1].strip()
                return None if holder == "None" else holder
        raise AssertionError(f"no 'acquired:' line for {place}")

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
