"""The device inventory, ``edge-devices.toml``: each entry validated against its row of the device-kind table."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

from .._text import closest, did_you_mean
from ..errors import InventoryError, ProviderError
from .kinds import BUILTIN_KINDS, DeviceKind, quoted
from .providers import provider_options, resolve_provider
from .tomlfile import read_toml

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
    settings: Mapping[str, Any] = field(default_factory=dict)  # the kind's own keys (see config/kinds.py)
    source: Optional[str] = field(default=None, compare=False)  # the inventory file of this entry
    explicit: Tuple[str, ...] = field(default=(), compare=False)  # the keys that file sets

    def setting(self, key: str) -> str:
        """Where a value comes from, for messages: 'command_timeout = 2 in /x/edge-devices.toml'."""
        value = self.settings[key] if key in self.settings else getattr(self, key)
        shown = f"{value:g}" if isinstance(value, float) else repr(value)
        if key in self.explicit:
            return f"{key} = {shown} in {self.source}"
        return f"{key} = {shown}, the default" + (
            f" (set it under [devices.{self.name}] in {self.source})" if self.source else ""
        )


def _check_providers(where: str, tables: Mapping[str, Mapping[str, Any]]) -> None:
    """Provider names and option keys, checked now so a typo names the inventory file."""
    for provider, options in tables.items():
        try:
            provider_options(resolve_provider(provider), options)
        except ProviderError as exc:
            raise InventoryError(f"{where} key 'providers.{provider}': {exc}") from None


_FIELDS = frozenset(f.name for f in fields(DeviceConfig))


def _check_device(path: Path, name: str, table: Any, kinds: Mapping[str, DeviceKind]) -> DeviceConfig:
    where = f"{path}: [devices.{name}]"
    if not isinstance(table, dict):
        raise InventoryError(f"{where} must be a table, got {type(table).__name__}")
    if "kind" not in table and name != "local":
        raise InventoryError(f'{where}: missing key "kind" (expected {quoted(kinds, " or ")})')
    kind_name = table.get("kind", "local")
    kind = kinds.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        hint = did_you_mean(kind_name, kinds) if isinstance(kind_name, str) else ""
        raise InventoryError(f'{where} key "kind": expected one of {quoted(kinds)}, got {kind_name!r}{hint}')
    if name == "local" and kind_name != "local":
        raise InventoryError(
            f'{where}: the name "local" is reserved for this machine (kind = "local"); give the board another name'
        )
    problem = kind.check(table) if kind.check is not None else None  # first: it may refuse a secret by its key
    if problem:
        raise InventoryError(f"{where}: {problem}")
    values: Dict[str, Any] = {}
    settings: Dict[str, Any] = kind.defaults()
    for key, value in table.items():
        if key == "kind":
            continue
        spec = kind.keys.get(key)
        if spec is None:
            others = [k for k, row in kinds.items() if key in row.keys]
            if others:
                raise InventoryError(f"{where} key {key!r} only applies to kind = {quoted(others, ' or ')}")
            valid = ["kind", *kind.keys]
            hint = did_you_mean(key, valid)
            raise InventoryError(f"{where}: unknown key {key!r}{hint}; valid keys: {', '.join(valid)}")
        if not spec.accepts(value):
            raise InventoryError(f"{where} key {key!r}: expected {spec.expected}, got {spec.describe(value)}")
        if key == "providers":
            _check_providers(where, value)
        (values if key in _FIELDS else settings)[key] = value
    for key in kind.required:
        if key not in table:
            raise InventoryError(f'{where}: kind = "{kind_name}" needs key "{key}"')
    explicit = tuple(dict.fromkeys([*table, "kind"]))
    return DeviceConfig(name=name, kind=kind_name, settings=settings, source=str(path), explicit=explicit, **values)


def load_inventory(path: Optional[Path], kinds: Mapping[str, DeviceKind] = BUILTIN_KINDS) -> Dict[str, DeviceConfig]:
    """Devices from ``path`` (if it exists) plus the implicit ``local`` device, each checked against
    its row of the device-kind table ``kinds``."""
    devices: Dict[str, DeviceConfig] = {"local": DeviceConfig("local")}
    if path is None or not path.exists():
        return devices
    try:
        data = read_toml(path)
    except ValueError as exc:
        raise InventoryError(f"{path}: {exc}") from None
    unknown = sorted(set(data) - {"devices"})
    if unknown:
        raise InventoryError(f"{path}: unknown top-level key {unknown[0]!r}; expected only [devices.<name>] tables")
    tables = data.get("devices", {})
    if not isinstance(tables, dict):
        raise InventoryError(f"{path}: key 'devices' must hold [devices.<name>] tables")
    for name, table in tables.items():
        devices[name] = _check_device(path, name, table, kinds)
    return devices


def unknown_device_message(name: str, devices: Mapping[str, DeviceConfig], path: Optional[Path]) -> str:
    """One line naming the unknown device, the closest known one and where the known ones come from."""
    source = str(path) if path is not None and path.exists() else _no_inventory(path)
    hint = did_you_mean(name, devices)
    return f"unknown edge device {name!r}{hint}; known devices: {', '.join(sorted(devices))} (from {source})"


def _no_inventory(path: Optional[Path]) -> str:
    """Says no inventory file was read, and names a TOML file beside where it was looked for whose name is close
    (``edge_devices.toml`` for ``edge-devices.toml``): the likely inventory under another name."""
    if path is None:
        return "no inventory file"
    others = sorted(p.name for p in path.parent.glob("*.toml")) if path.parent.is_dir() else []
    near = closest(path.name, others)
    if near is None:
        return "no inventory file"
    return (
        f"no inventory file: {path.name} is not in {path.parent}, {near} is: rename it or pass "
        f"--edge-devices-file {near}"
    )
