"""The object a test gets as ``edge_session``: one model on one device and provider, on any device kind."""

from __future__ import annotations

import copy
import hashlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .._text import model_label
from ..board.wire import Op
from ..config.providers import ProviderSpec
from ..errors import EdgeSessionError, SessionLost, StaleOutputs, WorkerDied, WorkerError
from ..model.info import ModelInfo
from ..model.inputs import Feed, check_feed
from .origins import Origins
from .placement import Placement, format_fallback
from .protocol import Device, Outputs, SessionBackend

if TYPE_CHECKING:
    from ..checks.diagnose import Diagnosis

AHEAD_MAX_BYTES = 64 * 1024  # the largest feed a test's reference runs ahead with (see EdgeSession.follow)


@dataclass
class _Live:
    """The session's backend, shared by every :meth:`EdgeSession.named` view of one cached session."""

    backend: Optional[SessionBackend] = None
    memo: Optional[Tuple[str, List[Dict[str, np.ndarray]]]] = None  # the last run_all: feeds' digest, outputs
    placement_checked: bool = False  # the provider was seen to take part of the graph (see _check_placement)
    reused: int = 0  # run_all calls answered from the memo (no inference)
    follower: Optional[EdgeSession] = None  # the running test's reference: its run of the same feed rides along
    ahead: Optional[Tuple[Feed, Dict[str, np.ndarray]]] = None  # a feed (a copy) and this session's outputs, run ahead
    ahead_missed: bool = False  # a run made ahead for the running test was not asked for: no more of them


def same_feed(one: Feed, other: Feed) -> bool:
    """Whether two feeds hold the same inputs: names, dtypes, shapes and bytes."""
    if one.keys() != other.keys():
        return False
    for name, array in one.items():
        twin = other[name]
        if array.dtype != twin.dtype or array.shape != twin.shape:
            return False
        if memoryview(np.ascontiguousarray(array)).cast("B") != memoryview(np.ascontiguousarray(twin)).cast("B"):
            return False
    return True


def feeds_digest(feeds: Sequence[Mapping[str, np.ndarray]]) -> str:
    """A sha256 over every feed's input names, dtypes, shapes and bytes, in order."""
    digest = hashlib.sha256()
    for feed in feeds:
        for name, array in feed.items():
            array = np.ascontiguousarray(array)
            digest.update(f"\0{name}\0{array.dtype.str}\0{array.shape}\0".encode())
            digest.update(array.view(np.uint8).reshape(-1) if array.size else b"")
        digest.update(b"\1")
    return digest.hexdigest()


class EdgeSession:
    """A cached ONNX Runtime session on a device (its :class:`~.protocol.SessionBackend`); ``run(feed)``
    returns ``{output name: array}``, ``run_all(feeds)`` one such dict per feed. ``name`` is the user's model
    (their path, a ``pkg:`` source) that messages and records name: sessions are cached by content hash, so
    the file a session was made from may be another test's copy or a prepared model in the cache."""

    def __init__(
        self,
        device: Device,
        model: ModelInfo,
        spec: ProviderSpec,
        options: Mapping[str, str],
        cpu_fallback: bool,
        on_create: Callable[[EdgeSession], None],
    ) -> None:
        self.device = device
        self.model = model
        self.spec = spec
        self.options = dict(options)
        self.cpu_fallback = cpu_fallback
        self.name: Union[Path, str] = model.path
        self.origins = Origins()  # which feed made the outputs the test holds (see inputs_of)
        self._provenance: Optional[Tuple[Tuple[Any, ...], Dict[str, Any]]] = None  # (what it was made from, facts)
        self._on_create = on_create
        self._live = _Live()
        self._open()

    def named(self, name: Union[Path, str]) -> EdgeSession:
        """This session (the same backend) as the user's model ``name`` names it in messages and records."""
        if str(name) == str(self.name):
            return self
        view = copy.copy(self)
        view.name = name
        return view

    @property
    def reused(self) -> int:
        """How many ``run_all`` calls were answered from the memo (no inference)."""
        return self._live.reused

    @property
    def _backend(self) -> Optional[SessionBackend]:
        return self._live.backend

    # -- identity
    @property
    def provider(self) -> str:
        return self.spec.alias

    @property
    def label(self) -> str:
        return f"{self.display_name} on {self.device.name}/{self.spec.alias}"

    @property
    def display_name(self) -> str:
        """The model's file name (a ``pkg:`` source in full)."""
        return model_label(self.name)

    @property
    def placement(self) -> Optional[Placement]:
        return self._backend.placement if self._backend else None

    @property
    def npu_coverage(self) -> Optional[float]:
        """Fraction of nodes on the provider's EP (None when placement is unknown)."""
        placement = self.placement
        return None if placement is None else placement.coverage(self.spec.ep_name)

    @property
    def simulated(self) -> bool:
        """Whether the provider is a simulator on this device (QNN on x86-64): real numerics, no board timing."""
        return self.spec.simulated(self.device.describe())

    def provenance(self) -> Dict[str, Any]:
        """Facts to record with every result from this session (a test asks twice: worked out again only when the
        backend, its placement, the device's report or the session's name is another)."""
        caps, backend, placement = self.device.describe(), self._backend, self.placement
        known = self._provenance
        if known is not None:
            (was_caps, was_backend, was_placement, was_name), facts = known
            if was_caps is caps and was_backend is backend and was_placement is placement and was_name == self.name:
                return _copied(facts)
        facts = self._facts(caps, backend)
        self._provenance = ((caps, backend, placement, self.name), facts)
        return _copied(facts)

    def _facts(self, caps: Mapping[str, Any], backend: Optional[SessionBackend]) -> Dict[str, Any]:
        made = backend.facts if backend else {}
        return {
            "device": self.device.name,
            "provider": self.spec.alias,
            "ep": self.spec.ep_name,
            "ep_api": backend.api if backend else None,
            "provider_options": dict(self.options),
            "cpu_fallback": self.cpu_fallback,
            "offload_graph_io_quantization": made.get("offload_graph_io_quantization"),
            "model": self.display_name,
            "model_path": str(self.name),
            "model_sha256": self.model.sha256,
            "platform": caps.get("platform"),
            "soc": caps.get("soc"),
            "u8_isa": caps.get("u8_isa"),
            "graph_optimization": made.get("graph_optimization"),
            "qdq_fusion": made.get("qdq_fusion"),
            "onnxruntime": caps.get("onnxruntime"),
            "qnn_sdk": (caps.get("qnn") or {}).get("sdk_version"),
            "qnn_ep": (caps.get("qnn") or {}).get("ep_package_version"),
            "npu_coverage": self.npu_coverage,
            "placement": self.placement.to_dict() if self.placement is not None else None,
            "ep_context": made.get("ep_context"),
            "hosted": made.get("hosted"),
        }

    def user_paths(self, text: str) -> str:
        """A worker's message with the device's cache file (``.../models/<sha256>.onnx``) named as
        the user's model file."""
        return re.sub(r"[^\s'\"]*models/%s\.onnx" % self.model.sha256, str(self.name), text)

    def _explain(self, error: str) -> str:
        """A worker's creation error in the user's terms: their model path, and what is likely and what to
        do where the error is a known one (:data:`CREATION_HINTS`; QNN's own words are a C++ trace)."""
        for hint in CREATION_HINTS:
            explained = hint(self, error)
            if explained is not None:
                return explained
        return self.user_paths(error)

    # -- lifecycle
    def _open(self) -> None:
        try:
            self._live.backend = self.device.open_session(self.model, self.spec, self.options, self.cpu_fallback)
        except WorkerError as exc:
            mode = "" if self.cpu_fallback else " with CPU fallback disabled"
            raise EdgeSessionError(f"{self.label}: session creation failed{mode}: {self._explain(str(exc))}") from None
        except WorkerDied as exc:
            raise SessionLost(f"{self.label}: {self.user_paths(str(exc))}") from None
        self._on_create(self)
        self._check_placement()

    def _check_placement(self) -> None:
        """The provider must have taken some of the graph. Kinds whose placement is known only after a run (a
        hosted device's job profile) are checked after their first run (:meth:`_placement_known`)."""
        placement = self.placement
        if not self.spec.accelerator or placement is None:
            return
        self._live.placement_checked = True
        if placement.total == 0:
            raise EdgeSessionError(
                f"{self.label}: no node of the graph is left after onnxruntime's optimizations (it folded to "
                f"constants at load), so nothing runs on {self.spec.ep_name} and there is no {self.spec.alias} "
                "result to report",
                placement,
            )
        if placement.count(self.spec.ep_name) == 0:
            where = format_fallback(placement.nodes_not_on(self.spec.ep_name))
            raise EdgeSessionError(
                f"{self.label}: {self.spec.ep_name} took none of the {placement.total} nodes, everything runs on "
                f"CPU, so there is no {self.spec.alias} result to report; nodes: {where}",
                placement,
            )

    def _placement_known(self) -> None:
        """After a run: a placement that became known only now (a hosted job's profile) is checked now."""
        if not self._live.placement_checked:
            self._check_placement()

    def _live_backend(self) -> SessionBackend:
        if self._backend is None or not self._backend.alive:
            self._open()  # the worker died earlier (crash/kill): recreate in a fresh worker
        assert self._backend is not None
        return self._backend

    def _request(self, op: str, call: Callable[[SessionBackend], Any]) -> Any:
        """``call(backend)`` on the live session; EdgeSessionError naming ``op`` on failure."""
        try:
            return call(self._live_backend())
        except WorkerError as exc:
            raise EdgeSessionError(f"{self.label}: {op} failed: {self.user_paths(str(exc))}") from None
        except WorkerDied as exc:
            raise SessionLost(f"{self.label}: {self.user_paths(str(exc))}") from None

    # -- what tests call
    @property
    def checks_memory_state(self) -> bool:
        """Whether the first run of this session checks that outputs do not depend on memory left by
        earlier graphs: on QNN HTP, where kernels that leave elements unwritten were measured."""
        return self.spec.ep_name == "QNNExecutionProvider" and self.spec.qnn_backend == "htp"

    def follow(self, reference: Optional[EdgeSession]) -> None:
        """While a test runs (``edge_reference`` sets it, its teardown clears it): each :meth:`run` of this session
        also runs ``reference`` on the same feed, in the same request where the device kind can (one worker), and
        ``reference.run`` of that very feed (bit for bit) returns those outputs: a test's two runs in one round
        trip. A run made ahead that the test does not ask for stops it for the rest of the test."""
        if reference is not None and reference._live is self._live:  # (a cpu test against its cpu reference)
            reference = None
        for session in (self._live.follower, reference):
            if session is not None:
                session._live.ahead, session._live.ahead_missed = None, False
        self._live.follower = reference

    def _run_followed(self, backend: SessionBackend, feed: Feed, check: bool) -> Tuple[Dict[str, Any], Outputs]:
        """``backend.run``, with the follower's run of the same feed where it can come along (see :meth:`follow`)."""
        follower = self._live.follower
        other = follower._backend if follower is not None else None
        if follower is None or other is None or not other.alive or not follower._takes_ahead(feed, other):
            return backend.run(feed, check)
        paired = backend.run_paired(feed, check, other)
        if paired is None:  # the kind cannot (another worker, a hosted device): not for the rest of the test
            self._live.follower = None
            return backend.run(feed, check)
        reply, outputs, ahead = paired
        if ahead is not None:  # (its run failed: its own run meets that error again)
            follower._live.ahead = ({name: array.copy() for name, array in feed.items()}, ahead)
        return reply, outputs

    def _takes_ahead(self, feed: Feed, backend: SessionBackend) -> bool:
        """Whether this session's run of ``feed`` may be made ahead: not after one the test did not ask for, not
        where its memory-state check is due, and for a small feed only (its bytes travel twice)."""
        live = self._live
        if live.ahead is not None:  # the last one was not asked for
            live.ahead, live.ahead_missed = None, True
        due = self.checks_memory_state and not backend.memory_checked
        return not live.ahead_missed and not due and sum(a.nbytes for a in feed.values()) <= AHEAD_MAX_BYTES

    def _take_ahead(self, feed: Feed) -> Optional[Dict[str, np.ndarray]]:
        """The outputs of ``feed`` run ahead (see :meth:`follow`), if that was this very feed."""
        ahead, self._live.ahead = self._live.ahead, None
        if ahead is None:
            return None
        if same_feed(ahead[0], feed):
            return ahead[1]
        self._live.ahead_missed = True
        return None

    def run(self, feed: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Run one inference. The first run of a QNN HTP session runs the feed twice, with the NPU's
        memory filled with two different patterns before each run, and fails unless both agree bit
        for bit: so a verdict never depends on what ran before (test order or selection)."""
        feed = check_feed(self.model, feed, self.label)
        ahead = self._take_ahead(feed) if self._live.ahead is not None else None
        if ahead is not None:
            self._placement_known()
            self.origins.add(ahead, feed)
            return ahead
        backend = self._live_backend()
        check = self.checks_memory_state and not backend.memory_checked
        reply, outputs = self._request(Op.RUN, lambda backend: self._run_followed(backend, feed, check))
        self._placement_known()
        if reply.get("memory_differs"):
            detail = ", ".join(
                f"{name!r}: {count} element{'s' * (count != 1)}"
                for name, count in sorted(reply["memory_differs"].items())
            )
            raise StaleOutputs(
                f"{self.label}: outputs depend on memory left by earlier graphs ({detail} differ bit for bit "
                "when the same example runs twice with the NPU memory filled differently in between), so "
                "this result depends on test order and selection"
            )
        backend.memory_checked = backend.memory_checked or check
        result = dict(outputs)
        self.origins.add(result, feed)
        return result

    def inputs_of(self, outputs: Mapping[str, Any]) -> Optional[Feed]:
        """The feed this session ran to return ``outputs`` (those arrays, or the last run's by value); None for
        arrays it did not return (a test's own): what a comparison's yardstick and diagnosis run on."""
        return self.origins.feed_of(outputs)

    def run_all(self, feeds: Sequence[Mapping[str, np.ndarray]]) -> List[Dict[str, np.ndarray]]:
        """One inference per feed, in order, as one batch where the device kind has one; the first
        feed alone first while the memory-state check (see :meth:`run`) is still due.

        The same feeds as the previous call (bit for bit) are not run again: their outputs (copies) come
        from this session's memo, so a suite's golden check reuses what its conformance check computed."""
        checked = [check_feed(self.model, feed, self.label) for feed in feeds]
        if not checked:
            return []
        digest = feeds_digest(checked)
        live = self._live
        if live.memo is not None and live.memo[0] == digest:
            live.reused += 1
            result = [{name: array.copy() for name, array in outputs.items()} for outputs in live.memo[1]]
        else:
            check_first = self.checks_memory_state and not self._live_backend().memory_checked
            head = [self.run(checked[0])] if check_first else []
            rest = checked[len(head) :]
            outputs = self._request(Op.RUN, lambda backend: backend.run_all(rest)) if rest else []
            self._placement_known()
            result = [*head, *(dict(o) for o in outputs)]
            live.memo = (digest, [{name: array.copy() for name, array in o.items()} for o in result])
        for feed, outputs in zip(checked, result):
            self.origins.add(outputs, feed)
        return result

    def submit(self, feeds: Sequence[Mapping[str, np.ndarray]]) -> None:
        """Start running ``feeds`` now where the device kind's runs are hosted jobs (capabilities ``jobs``): the
        :meth:`run_all` of the same feeds then collects that job; elsewhere nothing happens."""
        if self.device.capabilities.jobs and feeds:
            checked = [check_feed(self.model, feed, self.label) for feed in feeds]
            self._request("submit", lambda backend: backend.submit(checked))

    def time(
        self,
        feed: Mapping[str, np.ndarray],
        runs: int = 20,
        warmup: int = 2,
        max_s: Optional[float] = None,
        min_runs: int = 1,
    ) -> List[float]:
        """Per-inference latencies in ms measured inside the worker (no transport in the numbers): up to
        ``runs`` after up to ``warmup`` untimed runs, stopping after ``max_s`` seconds in all (when given)
        but not before ``min_runs`` timed runs."""
        feed = check_feed(self.model, feed, self.label)
        return self._request(Op.TIME, lambda backend: backend.time(feed, runs, warmup, max_s, min_runs))

    def profile(self, feed: Mapping[str, np.ndarray], runs: int = 3) -> Dict[str, bytes]:
        """Run ``feed`` ``runs`` times on a profiled copy of this session (QNN: per-node cycles and the map
        to ONNX nodes) and return the files the profile wrote, by name (see :mod:`~..checks.profile`)."""
        if self.spec.ep_name != "QNNExecutionProvider" or not self.device.capabilities.profiling:
            raise EdgeSessionError(f"{self.label}: no per-op profile: only QNN on a device kind that profiles has one")
        feed = check_feed(self.model, feed, self.label)

        def profiled(backend: SessionBackend) -> Dict[str, bytes]:
            probe = self.device.open_session(self.model, self.spec, self.options, self.cpu_fallback, profile=True)
            try:
                for _ in range(runs):
                    probe.run(feed, False)
                return probe.take_profile()
            finally:
                probe.close()

        return self._request("profile", profiled)

    def sibling(self, model: ModelInfo) -> EdgeSession:
        """Another model opened like this one (device, provider, options, fallback mode), outside the run's
        session cache: the caller closes it."""
        return EdgeSession(self.device, model, self.spec, self.options, self.cpu_fallback, lambda _: None)

    def diagnose(
        self,
        inputs: Union[Mapping[str, np.ndarray], Sequence[Mapping[str, np.ndarray]]],
        reference: Optional[EdgeSession] = None,
        tolerance: Optional[Any] = None,
        budget_s: Optional[float] = None,
        strategy: str = "auto",
        cache: Optional[Path] = None,
        verdict: Optional[Any] = None,
    ) -> Diagnosis:
        """The first node whose output departs from ``reference`` (default: this model on the device's CPU)
        on ``inputs`` (one feed, or several compared stacked on axis 0):
        :func:`pytest_edgeort.checks.diagnose.diagnose`; ``tolerance``: a ToleranceSpec, ``cache``: where
        prefix models go (default: the system's temporary folder); ``verdict``: the check's own Comparison of the
        outputs on ``inputs`` against ``reference`` (the outputs are then judged by it)."""
        from ..checks.diagnose import DEFAULT_BUDGET_S, PREFIX_DIR, diagnose
        from ..config.providers import resolve_provider

        examples = [inputs] if isinstance(inputs, Mapping) else list(inputs)
        feeds = [check_feed(self.model, feed, self.label) for feed in examples]
        own = reference is None
        if reference is None:
            reference = EdgeSession(self.device, self.model, resolve_provider("cpu"), {}, True, lambda _: None)
        folder = cache or Path(tempfile.gettempdir()) / f"edgeort-{PREFIX_DIR}"
        try:
            budget = budget_s or DEFAULT_BUDGET_S
            return diagnose(self, reference, feeds, folder, tolerance, budget, strategy, verdict=verdict)
        finally:
            if own:
                reference.close()

    def close(self) -> None:
        if self._live.backend is not None:
            self._live.backend.close()
        self._live.backend = None

    def __repr__(self) -> str:
        return f"<EdgeSession {self.label} fallback={'on' if self.cpu_fallback else 'off'}>"


def _copied(facts: Mapping[str, Any]) -> Dict[str, Any]:
    """``facts`` (a session's provenance) as a caller may change them: its own dicts of options and placement."""
    placement = facts["placement"]
    return {
        **facts,
        "provider_options": dict(facts["provider_options"]),
        "placement": None if placement is None else {ep: dict(ops) for ep, ops in placement.items()},
    }


def _fp16_needs_soc(session: EdgeSession, error: str) -> Optional[str]:
    """QNN refuses fp16 without a SoC: what to set, instead of its words."""
    if "fp16 precision mode is enabled but soc_model is not specified" not in error.lower():
        return None
    alias = session.spec.alias
    return (
        f"{alias} needs the QNN option soc_model here (QNN runs float in fp16 for a given "
        f'SoC; on the x86-64 simulator any, e.g. "60"): @pytest.mark.edge_providers('
        f'"{alias}", options={{"soc_model": "60"}}) or soc_model = "60" under '
        f"[devices.{session.device.name}.providers.{alias}] in edge-devices.toml"
    )


def _float_graph_on_htp(session: EdgeSession, error: str) -> Optional[str]:
    """A float graph QNN's HTP accepted node by node but could not finalize: say that it is float, and the fixes."""
    fp16 = session.options.get("enable_htp_fp16_precision") == "1"
    if "QNN_COMMON_ERROR_MEM_ALLOC" not in error or session.spec.qnn_backend != "htp" or session.model.is_qdq or fp16:
        return None
    return (
        f"{session.user_paths(error)}; likely cause: {model_label(session.name)} is a float graph and HTP runs "
        f'quantized ones: quantize it (u8/u16 QDQ; in a suite [prepare] quantize = {{activations = "uint8", '
        f'weights = "uint8", calibration = "calib.npz"}}), or test it in fp16 with provider qnn-htp-fp16'
    )


#: Known session-creation errors, each a function ``(session, error) -> message or None``, the first match wins.
CREATION_HINTS: Tuple[Callable[[EdgeSession, str], Optional[str]], ...] = (_fp16_needs_soc, _float_graph_on_htp)
