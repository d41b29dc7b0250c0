"""Run-wide state: options, inventory, devices, the session cache and recorded results."""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Tuple

import pytest

from .devices.boardlock import lock_owner
from .errors import DeviceUnavailable, EdgeSessionError, InventoryError
from .config.inventory import DeviceConfig, load_inventory, unknown_device_message
from .config.providers import provider_options, resolve_provider

if TYPE_CHECKING:  # numpy/onnx/onnxruntime-side modules load only when an edge test runs
    from .devices.base import Device
    from .devices.session import EdgeSession

DEFAULT_SEED = 20240607
DEFAULT_PROVIDERS = ("qnn-htp",)


@dataclass(frozen=True)
class EdgeOptions:
    """The plugin's command-line/ini options, resolved."""

    devices: Tuple[str, ...] = ("local",)
    devices_file: Optional[Path] = None
    providers: Tuple[str, ...] = ()  # filter; empty keeps everything
    default_providers: Tuple[str, ...] = DEFAULT_PROVIDERS
    strict: bool = False
    seed: int = DEFAULT_SEED
    update_golden: bool = False
    report: Optional[Path] = None


SessionKey = Tuple[str, str, str, Tuple[Tuple[str, str], ...], bool]


def _print_notice(message: str) -> None:
    print(message, flush=True)


@dataclass
class EdgeRun:
    """Everything the plugin keeps for one pytest run (one per xdist worker, plus the controller's).

    Checks :meth:`record` their results as ``pending``; the plugin attaches them to the test's report
    (:meth:`take_payload`), and every report that reaches :meth:`merge_payload` (in this process, or
    in the xdist controller) adds them to ``records``: one path for the summary and the JSON report.
    """

    options: EdgeOptions
    rootdir: Path
    devices: Dict[str, Device] = field(default_factory=dict)
    unreachable: Dict[str, DeviceUnavailable] = field(default_factory=dict)
    sessions: Dict[SessionKey, EdgeSession] = field(default_factory=dict)
    failed_sessions: Dict[SessionKey, EdgeSessionError] = field(default_factory=dict)
    sessions_created: int = 0
    pending: List[Dict[str, Any]] = field(default_factory=list)
    records: List[Dict[str, Any]] = field(default_factory=list)
    device_facts: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    usage_errors: List[str] = field(default_factory=list)
    outcomes: Dict[str, str] = field(default_factory=dict)  # nodeid -> final pytest outcome
    skip_reasons: List[str] = field(default_factory=list)
    report_errors: List[str] = field(default_factory=list)  # reports that could not be written
    notify: Callable[[str], None] = _print_notice
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # xdist: the run's testrunuid, shared by workers
    xdist_dist: Optional[str] = None  # an xdist worker: the run's --dist mode
    _inventory: Optional[Dict[str, DeviceConfig]] = None

    # -- inventory and devices
    @property
    def inventory(self) -> Dict[str, DeviceConfig]:
        if self._inventory is None:
            self._inventory = load_inventory(self.options.devices_file)
        return self._inventory

    def device_names(self) -> Tuple[str, ...]:
        """The selected devices, validated against the inventory."""
        for name in self.options.devices:
            if name not in self.inventory:
                raise InventoryError(unknown_device_message(name, self.inventory, self.options.devices_file))
        return self.options.devices

    def locked_devices(self) -> Tuple[str, ...]:
        """The selected devices that take a board lock (none when the inventory is malformed: the
        workers report that)."""
        try:
            return tuple(name for name in self.device_names() if self.inventory[name].uses_lock)
        except InventoryError:
            return ()

    def device(self, name: str) -> Device:
        """The device object, connected lazily; DeviceUnavailable is remembered for the run."""
        if name in self.unreachable:
            raise self.unreachable[name]
        if name not in self.devices:
            from .devices import make_device

            self.devices[name] = make_device(self.inventory[name])
            self.devices[name].notify = self.notify
            self.devices[name].lock_owner = lock_owner(self.run_id, self.xdist_dist)
        device = self.devices[name]
        try:
            device.capabilities()
        except DeviceUnavailable as exc:
            self.unreachable[name] = exc
            raise
        return device

    def providers_for(self, requested: Optional[Tuple[str, ...]]) -> List[str]:
        """Providers a test/suite asks for (or the defaults), minus those --edge-provider drops."""
        wanted = list(requested or self.options.default_providers)
        for name in wanted:
            resolve_provider(name)  # unknown names fail early with a hint
        if self.options.providers:
            keep = set(self.options.providers)
            wanted = [p for p in wanted if p in keep or resolve_provider(p).ep_name in keep]
        return wanted

    # -- sessions
    def session(
        self,
        device_name: str,
        model_path: Path,
        provider: str,
        options: Optional[Mapping[str, Any]] = None,
        cpu_fallback: bool = True,
    ) -> EdgeSession:
        """A cached session for (device, model sha256, provider, options, fallback mode)."""
        from .model.info import model_info
        from .devices.session import EdgeSession

        spec = resolve_provider(provider)
        device = self.device(device_name)
        inventory_opts = self.inventory[device_name].providers.get(spec.alias)
        merged = provider_options(spec, inventory_opts, options, where=f"device {device_name!r}")
        model = model_info(model_path)
        key: SessionKey = (device_name, model.sha256, spec.alias, tuple(sorted(merged.items())), cpu_fallback)
        if key in self.failed_sessions:  # a refused session is not re-created for every test
            raise self.failed_sessions[key]
        cached = self.sessions.get(key)
        if cached is None:
            try:
                cached = EdgeSession(device, model, spec, merged, cpu_fallback, self._count_creation)
            except EdgeSessionError as exc:
                self.failed_sessions[key] = exc
                raise
            self.sessions[key] = cached
        return cached

    def _count_creation(self, session: "EdgeSession") -> None:
        self.sessions_created += 1

    def record(self, entry: Dict[str, Any]) -> None:
        """Keep one check's result until the plugin attaches it to the test's report."""
        self.pending.append(entry)

    def take_payload(self, started: float, finished: float) -> Dict[str, Any]:
        """The pending records (timed ``started``/``finished``, epoch s) and device facts not yet sent,
        as plain JSON-able data that survives pytest-xdist's report transport."""
        from .reporting.jsonreport import json_safe

        worker = os.environ.get("PYTEST_XDIST_WORKER")
        timing = {"started": started, "finished": finished, **({"xdist_worker": worker} if worker else {})}
        records = [{**timing, **entry} for entry in self.pending]
        self.pending.clear()
        facts = {name: device.facts() for name, device in self.devices.items() if device.facts() is not None}
        changed = {name: f for name, f in json_safe(facts).items() if self.device_facts.get(name) != f}
        return {"records": json_safe(records), "devices": changed}

    def merge_payload(self, payload: Mapping[str, Any]) -> None:
        """Add a report's payload (see :meth:`take_payload`) to the run's results."""
        self.records.extend(payload.get("records", ()))
        self.device_facts.update(payload.get("devices", {}))

    def close(self) -> None:
        """Close every session and stop every worker (no stray processes)."""
        for session in self.sessions.values():
            session.close()
        self.sessions.clear()
        for device in self.devices.values():
            device.close()


RUN_KEY = pytest.StashKey[EdgeRun]()


def edge_run(config: pytest.Config) -> EdgeRun:
    """The run state of this pytest process (created in pytest_configure)."""
    return config.stash[RUN_KEY]
