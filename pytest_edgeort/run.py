"""Run-wide state: the devices of the inventory, the session cache and the results of one pytest run."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple, Union

import pytest

from ._text import model_label
from .config.kinds import BUILTIN_KINDS, DeviceKind
from .config.providers import provider_options, resolve_provider
from .devices import imported, make_device
from .devices.boardlock import lock_owner
from .errors import DeviceUnavailable, EdgeError, EdgeSessionError, InventoryError
from .options import EdgeOptions
from .results import RunResults

if TYPE_CHECKING:  # numpy/onnx/onnxruntime-side modules load only when an edge test runs; the inventory's and the
    # records' when a run reads the inventory or records a result (a run without edge tests does neither)
    from concurrent.futures import Future

    from .config.inventory import DeviceConfig
    from .devices.protocol import Device
    from .devices.session import EdgeSession
    from .devices.transport import Transport
    from .items.target import EdgeTarget
    from .reporting.schema import CheckRecord

SessionKey = Tuple[str, str, str, Tuple[Tuple[str, str], ...], bool]
MakeDevice = Callable[["DeviceConfig", DeviceKind], "Device"]


def _print_notice(message: str) -> None:
    print(message, flush=True)


class DeviceRegistry:
    """The inventory and the selected devices, each connected on first use; a device found
    unreachable stays unreachable for the run (DeviceUnavailable is raised again, at once). Entries
    are checked against the device-kind table ``kinds`` and built by ``make``."""

    def __init__(
        self,
        options: EdgeOptions,
        notify: Callable[[str], None],
        run_id: str,
        dist: Optional[str] = None,
        kinds: Mapping[str, DeviceKind] = BUILTIN_KINDS,
        make: MakeDevice = make_device,
        builds_own: Callable[[], bool] = lambda: False,
    ) -> None:
        self.options = options
        self.kinds = kinds
        self.make = make
        self.builds_own = builds_own  # a plugin's make_device hook builds devices: kinds' starts_ahead start nothing
        self.notify = notify
        self.run_id = run_id  # the board locks' run: xdist's testrunuid, shared by the workers of one run
        self.dist = dist  # an xdist worker: the run's --dist mode
        self.connected: Dict[str, Device] = {}
        self.unreachable: Dict[str, DeviceUnavailable] = {}
        self.notes: List[str] = []  # what devices said about the running test (see take_notes)
        self.probes: Dict[str, Tuple[str, ...]] = {}  # device -> the QNN backends its tests run on (plan_probes)
        self.ahead: Dict[str, Transport] = {}  # device -> the worker its kind's starts_ahead started, until adopted
        self._inventory: Optional[Dict[str, DeviceConfig]] = None

    @property
    def inventory(self) -> Dict[str, DeviceConfig]:
        if self._inventory is None:
            from .config.inventory import load_inventory

            self._inventory = load_inventory(self.options.devices_file, self.kinds)
        return self._inventory

    def _unknown(self, name: str) -> InventoryError:
        """The one-line error for a device ``name`` the inventory does not have, with a did-you-mean."""
        from .config.inventory import unknown_device_message

        return InventoryError(unknown_device_message(name, self.inventory, self.options.devices_file))

    def names(self) -> Tuple[str, ...]:
        """The selected devices, validated against the inventory."""
        for name in self.options.devices:
            if name not in self.inventory:
                raise self._unknown(name)
        return self.options.devices

    def locked(self) -> Tuple[str, ...]:
        """The selected devices that take a board lock, by their kind's lock policy (none when the
        inventory is malformed: the workers report that)."""
        return self._selected(lambda config: self.kinds[config.kind].uses_lock(config.lock))

    def hosted(self) -> Tuple[str, ...]:
        """The selected devices whose kind runs hosted jobs (AI Hub): their items' jobs are submitted ahead."""
        return self._selected(lambda config: self.kinds[config.kind].capabilities.jobs)

    def _selected(self, wanted: Callable[[DeviceConfig], bool]) -> Tuple[str, ...]:
        """The selected devices whose inventory entry is ``wanted`` (none when the inventory is malformed)."""
        try:
            return tuple(name for name in self.names() if wanted(self.inventory[name]))
        except InventoryError:
            return ()

    def get(self, name: str) -> Device:
        """The device object, connected lazily; DeviceUnavailable is remembered for the run; InventoryError (one
        line, with a did-you-mean) for a name the inventory does not have."""
        if name in self.unreachable:
            raise self.unreachable[name]
        if name not in self.connected:
            if name not in self.inventory:  # edge_open(device=...) names any device of the inventory
                raise self._unknown(name)
            self._make(name)
        device = self.connected[name]
        try:
            device.describe()
        except DeviceUnavailable as exc:
            self.unreachable[name] = exc
            raise
        return device

    def _make(self, name: str) -> Device:
        """Build the device of inventory entry ``name`` (not connected yet; it adopts a worker started ahead)."""
        config = self.inventory[name]
        device = self.make(config, self.kinds[config.kind])
        device.notify = self.notify
        device.note = self.notes.append
        device.ep_cache = self.options.ep_cache
        device.sharers = 1 if self.kinds[config.kind].uses_lock(config.lock) else pytest_processes()
        device.lock_owner = lock_owner(self.run_id, self.dist)
        device.probe_backends = self.probes.get(name)
        if name in self.ahead:  # (a device a plugin built may start its workers its own way: not this one)
            transport = self.ahead.pop(name)
            if self.builds_own():
                transport.terminate()
            else:
                device.adopt(transport)
        self.connected[name] = device
        return device

    def start_ahead(self, name: str) -> None:
        """Start device ``name``'s worker now, without building the device, where its kind's row has ``starts_ahead``
        (a local worker loads while pytest collects) and no board lock comes first; nothing for a device already
        built or started, one the inventory lacks, a malformed inventory (the run reports that), or when a plugin
        builds devices itself. A worker that cannot start is left to the first use, which says why."""
        if name in self.connected or name in self.ahead or name in self.unreachable or self.builds_own():
            return
        try:
            config = self.inventory.get(name)
        except InventoryError:
            return
        kind = self.kinds[config.kind] if config is not None else None
        if kind is None or not kind.starts_ahead or kind.uses_lock(config.lock):
            return
        try:
            self.ahead[name] = imported(kind.starts_ahead)(config, self.run_id)
        except DeviceUnavailable:
            pass

    def drop_unused(self, used: Iterable[str]) -> None:
        """Stop the workers started ahead for devices that no selected item runs on (``-k``, ``-m`` deselected them,
        or the command's last run had edge items and this one has none)."""
        for name in set(self.ahead) - set(used):
            self.ahead.pop(name).terminate()
        for name in set(self.connected) - set(used):
            if self.connected[name].facts() is None:  # never described: nothing of it is in any record
                self.connected.pop(name).close()

    def take_notes(self) -> List[str]:
        """What devices noted since the last call (a request the running test's interruption stopped)."""
        notes, self.notes[:] = list(self.notes), []
        return notes

    def facts(self) -> Dict[str, Dict[str, Any]]:
        """What each connected device has found out about itself (versions, board lock waits)."""
        found = {name: device.facts() for name, device in self.connected.items()}
        return {name: facts for name, facts in found.items() if facts is not None}

    def close(self) -> None:
        """Stop every device's workers, and those started ahead for devices never built."""
        for transport in self.ahead.values():
            transport.terminate()
        self.ahead.clear()
        for device in self.connected.values():
            device.close()


def pytest_processes() -> int:
    """How many pytest processes drive devices in this run: pytest-xdist's worker count in a worker, else 1."""
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    return int(count) if count.isdigit() and int(count) > 0 else 1


def renamed(error: EdgeSessionError, path: Path, name: Union[Path, str]) -> EdgeSessionError:
    """``error`` (raised for the model file ``path``) naming the user's model ``name`` instead."""
    if str(name) == str(path):
        return error
    text = str(error).replace(str(path), str(name)).replace(path.name, model_label(name))
    return type(error)(text, error.placement)


class SessionCache:
    """One session per (device, model sha256, provider, options, fallback mode); a refused session
    is remembered and not re-created for every test."""

    def __init__(self, devices: DeviceRegistry) -> None:
        self.devices = devices
        self.open: Dict[SessionKey, EdgeSession] = {}
        self.refused: Dict[SessionKey, Tuple[Path, EdgeSessionError]] = {}  # with the file it was made from
        self.created = 0

    def get(
        self,
        device_name: str,
        model_path: Path,
        provider: str,
        options: Optional[Mapping[str, Any]] = None,
        cpu_fallback: bool = True,
        name: Optional[Union[Path, str]] = None,
        cached: bool = True,
    ) -> EdgeSession:
        """The cached session, created on first use, as ``name`` (the user's model; default ``model_path``)
        names it: the key is the content hash, so another file of the same bytes shares the session.
        ``cached=False``: a new session the caller closes (the op matrix opens ~1,900 models once each: kept
        open they would fill the EP's memory)."""
        from .devices.session import EdgeSession
        from .model.info import model_info

        spec = resolve_provider(provider)
        device = self.devices.get(device_name)
        inventory_opts = self.devices.inventory[device_name].providers.get(spec.alias)
        merged = provider_options(spec, inventory_opts, options, where=f"device {device_name!r}")
        model = model_info(model_path)
        key: SessionKey = (device_name, model.sha256, spec.alias, tuple(sorted(merged.items())), cpu_fallback)
        name = model_path if name is None else name
        if not cached:
            return EdgeSession(device, model, spec, merged, cpu_fallback, self._count_creation).named(name)
        if key in self.refused:
            first, error = self.refused[key]
            raise renamed(error, first, name)
        cached = self.open.get(key)
        if cached is None:
            try:
                cached = EdgeSession(device, model, spec, merged, cpu_fallback, self._count_creation)
            except EdgeSessionError as exc:
                self.refused[key] = (model_path, exc)
                raise renamed(exc, model_path, name) from None
            self.open[key] = cached
        return cached.named(name)

    def _count_creation(self, session: EdgeSession) -> None:
        self.created += 1

    def close(self) -> None:
        """Close every session."""
        for session in self.open.values():
            session.close()
        self.open.clear()


class EdgeRun:
    """Everything the plugin keeps for one pytest run (one per xdist worker, plus the controller's):
    the options, the devices, the session cache and the results, plus the few calls checks make."""

    def __init__(
        self,
        options: EdgeOptions,
        rootdir: Path,
        notify: Callable[[str], None] = _print_notice,
        run_id: Optional[str] = None,
        dist: Optional[str] = None,
        kinds: Mapping[str, DeviceKind] = BUILTIN_KINDS,
        make: MakeDevice = make_device,
        builds_own: Callable[[], bool] = lambda: False,
    ) -> None:
        self.options = options
        self.rootdir = rootdir
        self.registry = DeviceRegistry(options, notify, run_id or uuid.uuid4().hex, dist, kinds, make, builds_own)
        self.cache = SessionCache(self.registry)
        self.results = RunResults()
        self._closing: Optional[Future[None]] = None  # see stop_workers_ahead
        self.usage_errors: List[str] = []  # raised once collection is done, as one clean line
        # what the fixtures work out once per run, not per test: ``edge_model`` marks resolved, by (id of the mark,
        # the test's folder) with the mark itself (an id is only unique while its object lives), and the models
        # whose inputs have a static shape
        self.markers: Dict[Tuple[int, Path], Tuple[Any, Any]] = {}
        self.static_models: Set[Path] = set()

    def device_names(self) -> Tuple[str, ...]:
        """The selected devices, validated against the inventory."""
        return self.registry.names()

    def device(self, name: str) -> Device:
        """The device, connected on first use."""
        return self.registry.get(name)

    def plan_probes(self, targets: Iterable[EdgeTarget]) -> None:
        """Probe, when a device is first described, only the QNN backends the selected items run on (a
        failing probe costs ~40 ms of every run on the simulator's missing GPU); another backend is probed
        when a test opens a session on it. A device started ahead that no item runs on stops."""
        probes: Dict[str, Set[str]] = {}
        for target in targets:
            try:
                backend = resolve_provider(target.provider).qnn_backend
            except EdgeError:  # a provider that does not resolve: its item fails with that line
                backend = None
            probes.setdefault(target.device, set()).update([backend] if backend else [])
        self.registry.probes = {device: tuple(sorted(backends)) for device, backends in probes.items()}
        for name, device in self.registry.connected.items():  # started ahead, not described yet
            device.probe_backends = self.registry.probes.get(name)
        self.registry.drop_unused(probes)

    def providers_for(self, requested: Optional[Tuple[str, ...]]) -> List[str]:
        """Providers a test/suite asks for (or the defaults), minus those --edge-provider drops."""
        return self.options.providers_for(requested)

    def session(
        self,
        device_name: str,
        model_path: Path,
        provider: str,
        options: Optional[Mapping[str, Any]] = None,
        cpu_fallback: bool = True,
        name: Optional[Union[Path, str]] = None,
        cached: bool = True,
    ) -> EdgeSession:
        """A cached session for (device, model sha256, provider, options, fallback mode), named ``name``;
        ``cached=False``: a new one, not kept, that the caller closes."""
        return self.cache.get(device_name, model_path, provider, options, cpu_fallback, name, cached)

    def record(self, record: CheckRecord) -> None:
        """Keep one check's result until the plugin attaches it to the test's report."""
        self.results.record(record)

    @property
    def devices(self) -> Dict[str, Device]:
        """The devices connected so far."""
        return self.registry.connected

    @property
    def sessions_created(self) -> int:
        """How many sessions this process has created (the cache's misses)."""
        return self.cache.created

    @property
    def records(self) -> List[CheckRecord]:
        """Every check's result that reached this process (in the xdist controller: all workers')."""
        return self.results.records

    def stop_workers_ahead(self) -> None:
        """Start :meth:`close` in a thread: the workers stop (a QNN worker takes the kernel ~15 ms to tear down)
        while pytest prints its summary, and :meth:`close` waits for that. Nothing needs a device after the tests."""
        if self.registry.connected and self._closing is None:
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(1, thread_name_prefix="edgeort-close")
            self._closing = pool.submit(self._close_now)
            pool.shutdown(wait=False)

    def close(self) -> None:
        """Close every session and stop every worker (no stray processes); waits for, and raises the error of,
        a close that :meth:`stop_workers_ahead` started."""
        closing, self._closing = self._closing, None
        if closing is not None:
            closing.result()
        self._close_now()

    def _close_now(self) -> None:
        self.cache.close()
        self.registry.close()


#: What an edge test's fixtures and checks import on first use (~20 ms): loaded when collection has found edge items,
#: while a local worker started ahead loads numpy and onnxruntime (the two overlap on two cores)
TEST_MODULES = (
    "pytest_edgeort.devices.session",
    "pytest_edgeort.checks.conformance",
    "pytest_edgeort.items.conformance",
    "pytest_edgeort.model.inputs",
    "numpy.random",  # (numpy loads it on first use: generated inputs are seeded draws, ~6 ms)
)


def import_ahead() -> None:
    """Import :data:`TEST_MODULES`."""
    import importlib

    for name in TEST_MODULES:
        importlib.import_module(name)


RUN_KEY = pytest.StashKey[EdgeRun]()
CACHE_DIR = ".edgeort-cache"  # in the rootdir: prepared and shape-fixed models, failing fuzz inputs


def edge_run(config: pytest.Config) -> EdgeRun:
    """The run state of this pytest process (created in pytest_configure)."""
    return config.stash[RUN_KEY]
