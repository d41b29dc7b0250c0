"""SSH host keys: known_hosts lookup and loading, and refusing unknown keys with a message that says what to do."""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
from pathlib import Path
from typing import Any, Optional, Tuple

import paramiko

from ..errors import DeviceFault, HostKeyRefused


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style ``SHA256:...`` fingerprint of a host key."""
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"{key.get_name()} SHA256:{digest}"


class RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
    """paramiko's RejectPolicy with a message that says what to do."""

    def __init__(self, device: str, known_hosts: Path, exists: bool) -> None:
        self.device = device
        self.known_hosts = known_hosts
        self.exists = exists

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        host, port = _split_host_key_name(hostname)
        where = str(self.known_hosts) + ("" if self.exists else " (that file does not exist)")
        target = shlex.quote(str(self.known_hosts))
        scan = f"ssh-keyscan{'' if port == 22 else f' -p {port}'} {shlex.quote(host)} >> {target}"
        raise HostKeyRefused(
            f"device {self.device!r}: host key for {host}:{port} is not in {where} (refusing to connect; "
            f"the server offers {fingerprint(key)}; add it with `{scan}` after checking that fingerprint, "
            "or set insecure_skip_host_key_check = true)"
        )


def _split_host_key_name(name: str) -> Tuple[str, int]:
    """``[host]:port`` / ``host`` (paramiko's known_hosts lookup name) -> (host, port)."""
    if name.startswith("[") and "]:" in name:
        host, port = name[1:].split("]:", 1)
        return host, int(port)
    return name, 22


def known_hosts_path(configured: Optional[str], conn: Any) -> Path:
    """Inventory ``known_hosts`` (``configured``), else ssh_config ``UserKnownHostsFile`` of the
    fabric connection ``conn``, else ~/.ssh/known_hosts."""
    path = configured
    if path is None:
        setting = conn.ssh_config.get("userknownhostsfile")
        path = setting.split()[0] if setting else "~/.ssh/known_hosts"
    return Path(os.path.expanduser(path))


def load_known_hosts(conn: Any, known: Path, device: str) -> None:
    """Load ``known`` into ``conn`` (absent: every key is unknown); DeviceFault naming it when it is unreadable."""
    if not known.exists():
        return
    try:
        conn.client.get_host_keys().load(str(known))
        return
    except IsADirectoryError:
        problem = "is a directory, not a file"
    except (OSError, ValueError, paramiko.SSHException) as exc:  # ValueError: not UTF-8 text
        problem = f"cannot be read as an OpenSSH known_hosts file ({' '.join(str(exc).split())[:120]})"
    raise DeviceFault(f"device {device!r}: known_hosts {known} {problem}")
