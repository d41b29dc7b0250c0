"""What every device kind implements (:class:`Device`) and what its open sessions are (:class:`SessionBackend`).

The worker-based kinds (``local``, ``ssh``: :class:`~.base.WorkerDevice`) are one implementation: a board
zipapp worker behind a byte pipe. Another kind (a hosted device driven by jobs) implements the same
two protocols its own way; :class:`~.session.EdgeSession` and the checks see only these methods.
Failures are :class:`~pytest_edgeort.errors.DeviceUnavailable` (device unreachable) and, from a session
backend, ``WorkerError`` (the device refused a request; ``kind`` says which) or ``WorkerDied`` (the
backend is gone), both one line naming the device.
"""

from __future__ import annotations

from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    runtime_checkable,
)

if TYPE_CHECKING:
    import numpy as np

    from ..config.inventory import DeviceConfig
    from ..config.kinds import Capabilities, DeviceKind
    from ..config.providers import ProviderSpec
    from ..model.info import ModelInfo
    from .placement import Placement

Outputs = Dict[str, "np.ndarray"]


@runtime_checkable
class SessionBackend(Protocol):
    """One model on one device and provider, as the device keeps it open."""

    placement: Optional[Placement]  # where the graph's nodes run (None when the kind cannot say)
    memory_checked: bool  # a run passed the memory-state check (kinds without one leave it True)

    @property
    def alive(self) -> bool:
        """Whether requests can still reach the session (a dead one is opened again)."""

    @property
    def api(self) -> Optional[str]:
        """How the EP was registered on the device (``plugin``/``builtin``), for the record."""

    @property
    def facts(self) -> Dict[str, Any]:
        """What the device recorded when it made the session: ``offload_graph_io_quantization`` (effective),
        ``ep_context`` (the EP-context cache's state), and what makes its CPU results host-dependent
        (``graph_optimization``, ``qdq_fusion``); None where the kind cannot say."""

    def run(self, feed: Mapping[str, np.ndarray], check_memory: bool) -> Tuple[Dict[str, Any], Outputs]:
        """One inference: ``(facts about the run, {output name: array})``."""

    def run_paired(
        self, feed: Mapping[str, np.ndarray], check_memory: bool, other: SessionBackend
    ) -> Optional[Tuple[Dict[str, Any], Outputs, Optional[Outputs]]]:
        """``run``, and ``other``'s run of the same feed (a test's reference) in the same request where the kind can:
        ``(facts, outputs, other's outputs or None where its run failed)``; None where it cannot (the caller runs
        ``other`` on its own when it needs it)."""

    def run_all(self, feeds: Sequence[Mapping[str, np.ndarray]]) -> List[Outputs]:
        """One inference per feed, in order (a hosted device sends them as one batch)."""

    def time(
        self, feed: Mapping[str, np.ndarray], runs: int, warmup: int, max_s: Optional[float], min_runs: int
    ) -> List[float]:
        """Per-inference latencies in ms, measured on the device: up to ``runs`` after up to ``warmup``
        untimed runs, stopping after ``max_s`` seconds in all (None: no limit), never before ``min_runs``."""

    def take_profile(self) -> Dict[str, bytes]:
        """Close a session opened with ``profile=True``; the files its per-op profile wrote, by name."""

    def close(self) -> None:
        """Release the session (best effort)."""


@runtime_checkable
class JobBackend(SessionBackend, Protocol):
    """The session backend of a kind whose capabilities say ``jobs``: runs can be started ahead."""

    def submit(self, feeds: Sequence[Mapping[str, np.ndarray]]) -> Any:
        """Start the run of ``feeds`` without waiting; ``run_all(feeds)`` collects it."""


@runtime_checkable
class Device(Protocol):
    """One inventory entry, connected on first use. A kind whose row has ``starts_ahead`` also has ``adopt(transport)``:
    greet, on first use, the worker the run started for it before building it."""

    name: str
    config: DeviceConfig
    kind: DeviceKind
    notify: Callable[[str], None]  # where notices go (waiting for a board, insecure settings)
    note: Callable[[str], None]  # what the running test's record should say (a request its interruption stopped)
    ep_cache: bool  # sessions may use the device's EP-context cache (--edge-no-ep-cache: False)
    lock_owner: Dict[str, Optional[str]]  # who this run is, for kinds that take a board lock
    probe_backends: Optional[Tuple[str, ...]]  # QNN backends to try a graph on when first described (None: all)

    @property
    def capabilities(self) -> Capabilities:
        """What this kind of device can do (its row of the device-kind table)."""

    def describe(self) -> Dict[str, Any]:
        """What the device reports about itself (platform, SoC, versions, providers), connecting on
        first use; DeviceUnavailable when it cannot be reached."""

    def facts(self) -> Optional[Dict[str, Any]]:
        """What the report says about the device; None while it has not been reached."""

    def provider_aliases(self) -> List[str]:
        """The providers the device offers, by alias."""

    def missing_provider(self, spec: ProviderSpec) -> Optional[str]:
        """None if the device can run ``spec``, else one line naming what it does have."""

    def open_session(
        self,
        model: ModelInfo,
        spec: ProviderSpec,
        options: Mapping[str, str],
        cpu_fallback: bool,
        profile: bool = False,
    ) -> SessionBackend:
        """Open ``model`` with ``spec``; WorkerError(kind='create') when the provider refuses it. ``profile``: the
        session's runs write a per-op profile (kinds whose capabilities say ``profiling``)."""

    def close(self) -> None:
        """Release everything the device holds (workers, connections, locks, reservations)."""
