"""The device inventory, ``edge-devices.toml``: parsed and validated into :class:`DeviceConfig`."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

from .._text import did_you_mean
from ..errors import InventoryError, ProviderError
from .providers import provider_options, resolve_provider

DEFAULT_WORKDIR = "~/.cache/edgeort"  # private to the user: created 0700, checked by the worker
DEFAULT_LOCK_TIMEOUT = 900.0


@dataclass(frozen=True)
class DeviceConfig:
    """One device of the inventory (``local`` always exists)."""

    name: str
    kind: str = "local"
    host: Optional[str] = None
    user: Optional[str] = None
    port: Optional[int] = None
    identity_file: Optional[str] = None
    known_hosts: Optional[str] = None
    insecure_skip_host_key_check: bool = False
    python: Optional[str] = None
    workdir: Optional[str] = None
    connect_timeout: float = 10.0
    command_timeout: float = 120.0
    env: Mapping[str, str] = field(default_factory=dict)
    providers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    lock: Optional[bool] = None
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    lock_file: Optional[str] = None
    source: Optional[str] = field(default=None, compare=False)  # the inventory file of this entry
    explicit: Tuple[str, ...] = field(default=(), compare=False)  # the keys that file sets

    def setting(self, key: str) -> str:
        """Where a value comes from, for messages: 'command_timeout = 2 in /x/edge-devices.toml'."""
        value = getattr(self, key)
        shown = f"{value:g}" if isinstance(value, float) else repr(value)
        if key in self.explicit:
            return f"{key} = {shown} in {self.source}"
        return f"{key} = {shown}, the default" + (
            f" (set it under [devices.{self.name}] in {self.source})" if self.source else ""
        )

    @property
    def uses_lock(self) -> bool:
        """Whether runs take the board lock: SSH boards do unless ``lock = false``; ``local`` only if asked."""
        return self.lock if self.lock is not None else self.kind == "ssh"


# key -> (accepted python types, expectation in words, kinds it applies to)
_KEYS: Dict[str, tuple] = {
    "kind": ((str,), 'one of "local", "ssh"', ("local", "ssh")),
    "host": ((str,), "a host name, address or ~/.ssh/config alias", ("ssh",)),
    "user": ((str,), "a user name", ("ssh",)),
    "port": ((int,), "an integer port 1-65535", ("ssh",)),
    "identity_file": ((str,), "a path to a private key", ("ssh",)),
    "known_hosts": ((str,), "a path to a known_hosts file", ("ssh",)),
    "insecure_skip_host_key_check": ((bool,), "true or false", ("ssh",)),
    "python": ((str,), "the path of the board's python3", ("local", "ssh")),
    "workdir": ((str,), "a directory path", ("local", "ssh")),
    "connect_timeout": ((int, float), "a number of seconds > 0", ("local", "ssh")),
    "command_timeout": ((int, float), "a number of seconds > 0", ("local", "ssh")),
    "env": ((dict,), 'a table of NAME = "string" environment variables', ("local", "ssh")),
    "providers": ((dict,), "a table of provider option tables", ("local", "ssh")),
    "lock": ((bool,), "true or false", ("local", "ssh")),
    "lock_timeout": ((int, float), "a number of seconds >= 0", ("local", "ssh")),
    "lock_file": ((str,), "a path on the device (default <workdir>/board.lock)", ("local", "ssh")),
}


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _check_providers(where: str, tables: Mapping[str, Mapping[str, Any]]) -> None:
    """Provider names and option keys, checked now so a typo names the inventory file."""
    for provider, options in tables.items():
        try:
            provider_options(resolve_provider(provider), options)
        except ProviderError as exc:
            raise InventoryError(f"{where} key 'providers.{provider}': {exc}") from None


def _check_device(path: Path, name: str, table: Any) -> DeviceConfig:
    where = f"{path}: [devices.{name}]"
    if not isinstance(table, dict):
        raise InventoryError(f"{where} must be a table, got {type(table).__name__}")
    if "kind" not in table and name != "local":
        raise InventoryError(f'{where}: missing key "kind" (expected "local" or "ssh")')
    kind = table.get("kind", "local")
    if kind not in ("local", "ssh"):
        raise InventoryError(f'{where} key "kind": expected one of "local", "ssh", got {kind!r}')
    if name == "local" and kind != "local":
        raise InventoryError(
            f'{where}: the name "local" is reserved for this machine (kind = "local"); give the board another name'
        )
    values: Dict[str, Any] = {}
    for key, value in table.items():
        if key not in _KEYS:
            raise InventoryError(
                f"{where}: unknown key {key!r}{did_you_mean(key, _KEYS)}; valid keys: {', '.join(_KEYS)}"
            )
        types, expected, kinds = _KEYS[key]
        ok = isinstance(value, types) and not (bool not in types and isinstance(value, bool))
        if key == "port" and ok:
            ok = 0 < value < 65536
        if key in ("connect_timeout", "command_timeout") and ok:
            ok = value > 0
        if key == "lock_timeout" and ok:
            ok = value >= 0
        if str in types and ok:
            ok = bool(value.strip())
        if key == "env" and ok:
            ok = all(isinstance(v, str) and _ENV_NAME.match(k) for k, v in value.items())
        if key == "providers" and ok:
            ok = all(isinstance(v, dict) for v in value.values())
        if not ok:
            got = (
                f"a table of {', '.join(f'{k} ({type(v).__name__})' for k, v in value.items())}"
                if key == "env" and isinstance(value, dict)
                else repr(value)
            )  # env values may be secrets
            raise InventoryError(f"{where} key {key!r}: expected {expected}, got {got}")
        if kind not in kinds:
            raise InventoryError(f'{where} key {key!r} only applies to kind = "ssh"')
        if key == "providers":
            _check_providers(where, value)
        values[key] = value
    if kind == "ssh" and "host" not in values:
        raise InventoryError(f'{where}: kind = "ssh" needs key "host"')
    values["kind"] = kind
    return DeviceConfig(name=name, source=str(path), explicit=tuple(values), **values)


def load_inventory(path: Optional[Path]) -> Dict[str, DeviceConfig]:
    """Devices from ``path`` (if it exists) plus the implicit ``local`` device."""
    devices: Dict[str, DeviceConfig] = {"local": DeviceConfig("local")}
    if path is None or not path.exists():
        return devices
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        problem = f"invalid TOML: {exc}"
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 text (byte {exc.start}: {exc.object[exc.start : exc.start + 1]!r}); expected a TOML file"
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror or exc}); expected a TOML file"
    else:
        problem = None
    if problem is not None:
        raise InventoryError(f"{path}: {problem}")
    unknown = sorted(set(data) - {"devices"})
    if unknown:
        raise InventoryError(f"{path}: unknown top-level key {unknown[0]!r}; expected only [devices.<name>] tables")
    tables = data.get("devices", {})
    if not isinstance(tables, dict):
        raise InventoryError(f"{path}: key 'devices' must hold [devices.<name>] tables")
    for name, table in tables.items():
        devices[name] = _check_device(path, name, table)
    return devices


def unknown_device_message(name: str, devices: Mapping[str, DeviceConfig], path: Optional[Path]) -> str:
    """One line naming the unknown device, the closest known one and where the known ones come from."""
    source = str(path) if path is not None and path.exists() else "no inventory file"
    hint = did_you_mean(name, devices)
    return f"unknown edge device {name!r}{hint}; known devices: {', '.join(sorted(devices))} (from {source})"
