"""The worker-based device kinds' base: worker lifecycle, board lock, model upload, session backends.

One implementation of :class:`~.protocol.Device`: ``local`` (:mod:`.local`) spawns subprocesses; SSH
boards live in :mod:`.ssh`; both run the board zipapp worker.

A device owns one worker per isolation group (sessions whose options change process-global QNN
state get their own process), keeps what the worker reports about the device, and uploads models by
sha256. When its kind's lock policy or the inventory asks for it (SSH boards by default), it holds
the board lock (:mod:`.boardlock`) before it starts any other worker, and gives it back last.
"""

from __future__ import annotations

import functools
import itertools
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np

from ..board.wire import Kind
from ..config.inventory import DeviceConfig
from ..config.kinds import BUILTIN_KINDS, DEFAULT_OUTPUT_MAX_MB, Capabilities, DeviceKind
from ..config.providers import ALIASES, ProviderSpec, available_aliases, isolation_group, unusable_aliases
from ..errors import DeviceFault, DeviceUnavailable, WorkerDied, WorkerError
from ..model.info import ModelInfo
from .boardlock import LOCK_GROUP, BoardLock, acquire, lock_owner
from .client import WorkerClient, run_request
from .facts import capabilities_problem
from .lanes import LANE_MIN_S, lane_count, spread
from .placement import Placement
from .protocol import SessionBackend
from .replies import ReplyCheck, outputs_bound
from .transport import Transport
from .workerspec import worker_flags, worker_label

_session_ids = itertools.count(1)
LOCK_LOSS_GRACE_S = 3.0  # how long the other workers of a dropped connection may take to end too (loaded CI)


@dataclass
class WorkerSession:
    """A session open in a worker: the :class:`~.protocol.SessionBackend` of the worker-based kinds."""

    device: WorkerDevice
    sid: str
    client: WorkerClient
    reply: Dict[str, Any]
    outputs: ReplyCheck  # what a run's reply may declare: the model's outputs
    placement: Optional[Placement] = None
    memory_checked: bool = False  # a run of this session passed the memory-state check
    group: str = "default"  # the worker's isolation group
    reopen: Optional[Callable[[str], WorkerSession]] = None  # the same session in a worker of another group
    lanes: Optional[List[WorkerSession]] = None  # the session in simulator lane workers (None: not opened yet)
    run_s: Optional[float] = None  # how long its last inference took, request and reply included (None: none yet)

    @property
    def alive(self) -> bool:
        return self.client.alive

    @property
    def api(self) -> Optional[str]:
        return self.reply.get("api")

    @property
    def facts(self) -> Dict[str, Any]:
        """What the worker recorded when it made the session (from the EP-context cache entry on a hit), and
        what makes its CPU results host-dependent (``graph_optimization``, ``qdq_fusion``)."""
        keys = ("offload_graph_io_quantization", "ep_context", "graph_optimization", "qdq_fusion")
        return {key: self.reply.get(key) for key in keys}

    def _call(self, request: Callable[[float], Any]) -> Any:
        """``request(timeout)`` on a board whose lock this run still holds; a lost worker retires its peers."""
        self.device.check_board_lock()
        try:
            return request(self.device.config.command_timeout)
        except WorkerDied:
            self.device.worker_died()
            raise

    def run(
        self, feed: Mapping[str, np.ndarray], check_memory: bool, core: Optional[int] = None
    ) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
        """One inference; ``core``: the core (an index into the worker's cores) a simulated run takes."""
        start = time.perf_counter()
        reply, outputs = self._call(
            lambda timeout: self.client.run(self.sid, feed, check_memory, timeout, outputs=self.outputs, core=core)
        )
        self.run_s = (time.perf_counter() - start) / (2 if check_memory else 1)  # the check runs the feed twice
        return reply, dict(outputs)

    def run_paired(
        self, feed: Mapping[str, np.ndarray], check_memory: bool, other: SessionBackend
    ) -> Optional[Tuple[Dict[str, Any], Dict[str, np.ndarray], Optional[Dict[str, np.ndarray]]]]:
        """:meth:`run`, and ``other``'s run of the same feed sent in the same write where both live in this worker
        (no round trip between them): ``(facts, outputs, other's outputs, None where its run failed)``; None where
        ``other`` lives elsewhere."""
        if not isinstance(other, WorkerSession) or other.client is not self.client:
            return None
        start = time.perf_counter()
        first = run_request(self.sid, feed, check_memory, self.outputs)
        (reply, outputs), (then, arrays) = self._call(
            lambda timeout: self.client.run_both(first, run_request(other.sid, feed, False, other.outputs), timeout)
        )
        self.run_s = (time.perf_counter() - start) / (2 if check_memory else 1)  # (an upper bound: both runs)
        return reply, dict(outputs), dict(arrays) if then.get("ok") else None

    def run_all(self, feeds: Sequence[Mapping[str, np.ndarray]]) -> List[Dict[str, np.ndarray]]:
        """One request per feed: the worker's protocol has no batch request (a pipe costs little per run). A
        simulated session's batch that would take :data:`~.lanes.LANE_MIN_S` or more (its last run says; a session
        that has not run yet runs the first feed alone to know) is spread over simulator lanes (:mod:`.lanes`)."""
        if len(feeds) < 2 or not self.reply.get("simulated") or self.reopen is None:
            return [self.run(feed, False)[1] for feed in feeds]
        first = [self.run(feeds[0], False)[1]] if self.run_s is None else []
        rest = feeds[len(first) :]
        lanes = self.device.lanes_of(self) if (self.run_s or 0.0) * len(rest) >= LANE_MIN_S else []
        return [*first, *(spread(self, rest, lanes) if lanes else (self.run(feed, False)[1] for feed in rest))]

    def time(
        self, feed: Mapping[str, np.ndarray], runs: int, warmup: int, max_s: Optional[float], min_runs: int
    ) -> List[float]:
        return self._call(lambda timeout: self.client.time_runs(self.sid, feed, runs, warmup, timeout, max_s, min_runs))

    def take_profile(self) -> Dict[str, bytes]:
        """Close this (profiled) session; the files its profile wrote, by name."""
        return self._call(lambda timeout: self.client.take_profile(self.sid, timeout))

    def close(self) -> None:
        for lane in self.lanes or ():
            lane.close()
        if self.alive:
            try:
                self.client.close_session(self.sid, timeout=10)
            except Exception:  # closing is best effort; the worker is stopped at run end anyway
                pass


class WorkerDevice:
    """A device whose sessions live in board zipapp workers: worker lifecycle, board lock, model upload."""

    def __init__(self, config: DeviceConfig, kind: Optional[DeviceKind] = None) -> None:
        self.config = config
        self.kind = kind or BUILTIN_KINDS[config.kind]
        self.name = config.name
        self.clients: Dict[str, WorkerClient] = {}
        self.ahead: Dict[str, Transport] = {}  # workers started ahead (adopt), not yet greeted (group -> transport)
        self._caps: Optional[Dict[str, Any]] = None
        self.uploads = 0
        self.board_lock: Optional[BoardLock] = None
        self._ended_holder: Optional[WorkerClient] = None  # the ended lock holder check_board_lock waited for
        self.notify: Callable[[str], None] = lambda message: None
        self.note: Callable[[str], None] = lambda message: None
        self.ep_cache = True
        self.lock_owner: Dict[str, Optional[str]] = lock_owner()
        self.probe_backends: Optional[Tuple[str, ...]] = None
        self._present: Set[Tuple[str, str, Optional[str]]] = set()  # providers missing_provider found
        self.sharers = 1  # pytest processes that drive this device at once (xdist workers, for an unlocked device)

    # -- subclass hooks
    def _start_transport(self, group: str) -> Transport:
        """Start the worker (with ``worker_args(group)``) and return its transport."""
        raise NotImplementedError

    def lock_path(self) -> str:
        """Where the board lock lives on the device."""
        raise NotImplementedError

    @property
    def where(self) -> str:
        """The device's address in messages."""
        return "this machine"

    def worker_died(self) -> None:
        """Called after a request found its worker gone (SSH: retire every worker of a lost connection)."""

    def close(self) -> None:
        """Stop every worker; the lock-only worker goes last, so the board is free only when idle."""
        for transport in self.ahead.values():
            transport.terminate()
        self.ahead.clear()
        for group in sorted(self.clients, key=lambda g: g == LOCK_GROUP):
            self.clients[group].close()
        self.clients.clear()
        self.board_lock = None

    def adopt(self, transport: Transport) -> None:
        """Greet ``transport``, a default worker the run started before building this device (the kind's
        ``starts_ahead``), on first use instead of starting one."""
        self.ahead["default"] = transport

    # -- workers
    def worker_args(self, group: str) -> List[str]:
        """The worker's command-line flags (:func:`~.workerspec.worker_flags`)."""
        return worker_flags(self.config, group, self.lock_owner["run"])

    def worker_label(self, group: str) -> str:
        """The worker of ``group`` in messages."""
        return worker_label(self.name, group)

    def check_board_lock(self) -> None:
        """DeviceFault if this run held the board lock and its holder process ended while session
        workers still run (someone killed it): another run may be on the board now. (After a dropped
        connection everything ended together: the next session takes the lock again.)"""
        holder = self.clients.get(LOCK_GROUP)
        if holder is None or holder.usable():
            return
        others = [c for g, c in self.clients.items() if g != LOCK_GROUP]
        if self._ended_holder is not holder:  # a dropped connection ends its channels one by one: wait once
            self._ended_holder = holder
            deadline = time.monotonic() + LOCK_LOSS_GRACE_S
            while any(c.usable() for c in others) and time.monotonic() < deadline:
                time.sleep(0.05)
        if any(c.usable() for c in others):
            raise DeviceFault(
                f"device {self.name!r}: board lock lost: the process that held it (pid {holder.pid} on the device) "
                "ended while this run still uses the board, so another run may be on it now; the board's "
                "remaining tests fail"
            )

    def _hold_board_lock(self) -> None:
        """Take the board lock unless this device does not use one or holds it (again, after a
        dropped connection ended its holder)."""
        self.check_board_lock()
        holder = self.clients.get(LOCK_GROUP)
        if not self.kind.uses_lock(self.config.lock) or (holder is not None and holder.usable()):
            return
        client = self.client(LOCK_GROUP)
        try:
            self.board_lock = acquire(
                client,
                self.config.lock_file or self.lock_path(),
                self.lock_owner,
                self.config.lock_timeout,
                self.name,
                self.where,
                self.notify,
                self.config.command_timeout,
            )
            return
        except DeviceUnavailable as exc:
            error = exc
        except (WorkerError, WorkerDied) as exc:
            error = DeviceUnavailable(f"device {self.name!r}: {exc}")
        client.close()
        del self.clients[LOCK_GROUP]
        raise error

    def client(self, group: str = "default") -> WorkerClient:
        """The live worker of ``group``, started (again) on demand, under the board lock."""
        if group != LOCK_GROUP:
            self._hold_board_lock()
        existing = self.clients.get(group)
        if existing is not None and existing.alive:
            return existing
        transport = self.ahead.pop(group, None) or self._start_transport(group)
        try:
            client = WorkerClient(
                transport,
                self.worker_label(group),
                startup_timeout=max(30.0, self.config.command_timeout),
                timeout_origin=(self.config.command_timeout, self.config.setting("command_timeout")),
                on_interrupt=self.note,
            )
        except WorkerError as exc:
            raise DeviceUnavailable(f"device {self.name!r}: {exc}") from None
        except WorkerDied as exc:
            raise DeviceUnavailable(f"device {self.name!r}: {exc}") from None
        self.clients[group] = client
        return client

    @property
    def capabilities(self) -> Capabilities:
        """What this kind can do (its row of the device-kind table)."""
        return self.kind.capabilities

    @property
    def uses_ep_cache(self) -> bool:
        """Whether sessions come through the EP-context cache (the run allows it and the kind has one)."""
        return self.ep_cache and self.capabilities.ep_context_cache

    def describe(self) -> Dict[str, Any]:
        """The worker's report about the device (platform, SoC, versions, providers), connecting first;
        DeviceUnavailable (this device's tests skip) when the worker cannot answer it."""
        if self._caps is None:
            self._caps = self._ask_capabilities(self.probe_backends)
        return self._caps

    def _ask_capabilities(self, probe: Optional[Sequence[str]]) -> Dict[str, Any]:
        client = self.client()
        try:
            caps = client.capabilities(self.config.command_timeout, self.uses_ep_cache, probe)
        except WorkerDied as exc:  # the request runs the QNN backend probe: it can crash or hang
            raise DeviceUnavailable(f"device {self.name!r}: {exc}") from None
        except WorkerError as exc:
            raise DeviceUnavailable(f"device {self.name!r}: {client.label}: capabilities failed: {exc}") from None
        problem = capabilities_problem(caps)
        if problem:
            raise DeviceUnavailable(f"device {self.name!r}: {client.label} sent capabilities that {problem}")
        return caps

    def _probe(self, backends: Sequence[Optional[str]]) -> None:
        """Try a graph on those QNN ``backends`` that ship but were left out when the device was first described
        (a test opened a provider no selected item named), and add what that found to the capabilities."""
        qnn = self.describe().get("qnn") or {}
        probed = qnn.get("probed")
        if probed is None:
            return
        wanted = sorted({b for b in backends if b and b not in probed and b in qnn.get("backends", ())})
        if not wanted:
            return
        found = self._ask_capabilities(wanted).get("qnn") or {}
        qnn["probed"] = sorted(set(probed) | set(found.get("probed", ())))
        unusable = {**qnn.get("unusable", {}), **found.get("unusable", {})}
        if unusable:
            qnn["unusable"] = unusable

    def facts(self) -> Optional[Dict[str, Any]]:
        """What the report says about the device: its capabilities and the board lock it waited for
        (None while its capabilities are unknown, e.g. it was unreachable from this process)."""
        if self._caps is None:
            return None
        return {**self._caps, "board_lock": self.board_lock.to_dict() if self.board_lock else None}

    def provider_aliases(self) -> List[str]:
        caps = self.describe()
        return available_aliases(tuple(caps["providers"]), caps.get("qnn"))

    def missing_provider(self, spec: ProviderSpec) -> Optional[str]:
        """None if the device can run ``spec``, else a one-line reason naming what it does have. (Asked before every
        session lookup; a provider found once stays: its backend has been probed.)"""
        key = (spec.alias, spec.ep_name, spec.qnn_backend)
        if key in self._present:
            return None
        self._probe([spec.qnn_backend])
        caps = self.describe()
        if spec.ep_name in caps["providers"] and (spec.alias in self.provider_aliases() or spec.alias not in ALIASES):
            self._present.add(key)
            return None
        self._probe((caps.get("qnn") or {}).get("backends", ()))  # the line names every provider it has
        have = self.provider_aliases()
        errors = caps.get("plugin_errors") or {}
        unusable = unusable_aliases(caps.get("qnn"))
        extra = f" ({spec.ep_name} failed to load: {errors[spec.ep_name]})" if spec.ep_name in errors else ""
        if spec.alias in unusable:
            extra = f" (its library ships, but {unusable[spec.alias]})"
        return (
            f"device {self.name!r} has no provider {spec.alias!r} ({spec.ep_name}"
            + (f", backend {spec.qnn_backend}" if spec.qnn_backend else "")
            + f"){extra}; it has: {', '.join(have)} (onnxruntime {caps.get('onnxruntime')})"
        )

    def ensure_model(self, client: WorkerClient, model: ModelInfo) -> None:
        """Upload the model (and its external data files) unless the worker's cache has them."""
        timeout = self.config.command_timeout
        if not model.external_data:
            if not client.has_model(model.sha256, timeout):
                client.put_model(model.sha256, model.path.read_bytes(), timeout)
                self.uploads += 1
            return
        for index, (location, sha256) in enumerate(bundle_files(model)):
            if not client.has_file(model.cache_id, location, timeout):
                source = model.path if index == 0 else model.path.parent / location
                client.put_file(model.cache_id, location, sha256, source.read_bytes(), timeout)
                self.uploads += 1

    def open_session(
        self,
        model: ModelInfo,
        spec: ProviderSpec,
        options: Mapping[str, str],
        cpu_fallback: bool,
        profile: bool = False,
    ) -> WorkerSession:
        """Create a session in the right worker; WorkerError(kind='create') when the EP refuses. ``profile``: its
        runs write QNN's per-op profile (``take_profile`` fetches it).

        The worker verifies the cached model's hash first; a cached file that does not match (it
        changed on the device) is deleted there, uploaded again, and the creation is retried once."""
        try:
            return self._create(model, spec, options, cpu_fallback, profile)
        except WorkerDied:
            self.worker_died()
            raise

    def _create(
        self,
        model: ModelInfo,
        spec: ProviderSpec,
        options: Mapping[str, str],
        cpu_fallback: bool,
        profile: bool,
        group: Optional[str] = None,
    ) -> WorkerSession:
        group = group or isolation_group(spec, options)
        client = self.client(group)
        sid = f"s{next(_session_ids)}"
        bundle = model.cache_id if model.external_data else None
        for attempt in (1, 2):
            self.ensure_model(client, model)
            try:
                reply = client.create_session(
                    sid,
                    model.sha256,
                    spec.ep_name,
                    options,
                    cpu_fallback,
                    self.config.command_timeout,
                    bundle=bundle,
                    files=bundle_files(model) if bundle else (),
                    ep_cache=self.uses_ep_cache,
                    profile=profile,
                )
                break
            except WorkerError as exc:
                if exc.kind != Kind.MISSING_MODEL or attempt == 2:
                    raise
        megabytes = self.config.settings.get("output_max_mb", DEFAULT_OUTPUT_MAX_MB)
        outputs = outputs_bound(model.outputs, int(megabytes * 1024 * 1024), model.path.name)
        context = reply.get("ep_context") or {}
        if context.get("state") == "rebuilt":
            self.notify(
                f"edgeort: device {self.name!r}: EP-context cache entry of {model.path.name} ({spec.alias}) "
                f"rebuilt: {context.get('reason')}"
            )
        session = WorkerSession(self, sid, client, reply, outputs, Placement.from_worker(reply.get("placement")))
        session.group = group
        if not profile:
            session.reopen = functools.partial(self._create, model, spec, options, cpu_fallback, False)
        return session

    def lanes_of(self, session: WorkerSession) -> List[WorkerSession]:
        """``session`` open in this device's simulator lane workers (:mod:`.lanes`): opened on first use, again when
        a lane's worker ended; none where lanes are off or a lane cannot load the session's EP-context cache entry."""
        if session.lanes is not None and all(lane.client.usable() for lane in session.lanes):
            return session.lanes
        for lane in session.lanes or ():
            lane.close()
        count = lane_count(self.config.settings.get("simulator_workers"), self.describe().get("cpus"), self.sharers)
        session.lanes = []
        for index in range(1, count if session.reopen is not None and self.uses_ep_cache else 1):
            group = f"{session.group}/lane{index}"
            ended = self.clients.get(group)
            if ended is not None and not ended.usable():  # its worker ended (killed, crashed): a fresh one starts
                self.clients.pop(group).close()
            try:
                lane = session.reopen(group)
            except (WorkerError, WorkerDied, DeviceUnavailable):
                break  # the batch runs on the lanes that did open (or in the session's own worker)
            session.lanes.append(lane)
            if (lane.reply.get("ep_context") or {}).get("state") != "hit":  # not the session's very graph
                session.lanes.pop().close()
                break
        return session.lanes


def bundle_files(model: ModelInfo) -> List[List[str]]:
    """``[location, sha256]`` of a model with external data as the device caches it: the model file
    first (named by its hash), then its data files at their paths relative to it."""
    return [[f"{model.sha256}.onnx", model.sha256], *([loc, sha] for loc, sha in model.external_data)]
