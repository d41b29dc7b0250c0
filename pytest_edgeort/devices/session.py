"""The object a test gets as ``edge_session``: one model on one device and provider, on any device kind."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from ..board.wire import Op
from ..config.providers import ProviderSpec
from ..errors import EdgeSessionError, WorkerDied, WorkerError
from ..model.info import ModelInfo
from ..model.inputs import Feed, check_feed
from .placement import Placement, format_fallback
from .protocol import Device, SessionBackend

if TYPE_CHECKING:
    from ..checks.diagnose import Diagnosis


class EdgeSession:
    """A cached ONNX Runtime session on a device (its :class:`~.protocol.SessionBackend`); ``run(feed)``
    returns ``{output name: array}``, ``run_all(feeds)`` one such dict per feed."""

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
        self.last_inputs: Optional[Feed] = None
        self._on_create = on_create
        self._backend: Optional[SessionBackend] = None
        self._open()

    # -- identity
    @property
    def provider(self) -> str:
        return self.spec.alias

    @property
    def label(self) -> str:
        return f"{self.model.path.name} on {self.device.name}/{self.spec.alias}"

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
        """Facts to record with every result from this session."""
        caps = self.device.describe()
        offload = None
        if self.spec.ep_name == "QNNExecutionProvider":
            # QNN turns graph-I/O quantization offload off by itself when CPU fallback is disabled.
            offload = self.options.get("offload_graph_io_quantization", "1") if self.cpu_fallback else "0"
        return {
            "device": self.device.name,
            "provider": self.spec.alias,
            "ep": self.spec.ep_name,
            "ep_api": self._backend.api if self._backend else None,
            "provider_options": dict(self.options),
            "cpu_fallback": self.cpu_fallback,
            "offload_graph_io_quantization": offload,
            "model": self.model.path.name,
            "model_path": str(self.model.path),
            "model_sha256": self.model.sha256,
            "platform": caps.get("platform"),
            "soc": caps.get("soc"),
            "onnxruntime": caps.get("onnxruntime"),
            "qnn_sdk": (caps.get("qnn") or {}).get("sdk_version"),
            "qnn_ep": (caps.get("qnn") or {}).get("ep_package_version"),
            "npu_coverage": self.npu_coverage,
            "placement": self.placement.to_dict() if self.placement is not None else None,
        }

    def _user_paths(self, text: str) -> str:
        """A worker's message with the device's cache file (``.../models/<sha256>.onnx``) named as
        the user's model file."""
        return re.sub(r"[^\s'\"]*models/%s\.onnx" % self.model.sha256, str(self.model.path), text)

    def _explain(self, error: str) -> str:
        """A worker's creation error in the user's terms: their model path, and what to set when QNN
        refuses fp16 without a SoC (its own words are a C++ trace)."""
        if "fp16 precision mode is enabled but soc_model is not specified" in error.lower():
            return (
                f"{self.spec.alias} needs the QNN option soc_model here (QNN runs float in fp16 for a given "
                f'SoC; on the x86-64 simulator any, e.g. "60"): @pytest.mark.edge_providers('
                f'"{self.spec.alias}", options={{"soc_model": "60"}}) or soc_model = "60" under '
                f"[devices.{self.device.name}.providers.{self.spec.alias}] in edge-devices.toml"
            )
        return self._user_paths(error)

    # -- lifecycle
    def _open(self) -> None:
        try:
            self._backend = self.device.open_session(self.model, self.spec, self.options, self.cpu_fallback)
        except WorkerError as exc:
            mode = "" if self.cpu_fallback else " with CPU fallback disabled"
            raise EdgeSessionError(f"{self.label}: session creation failed{mode}: {self._explain(str(exc))}") from None
        except WorkerDied as exc:
            raise EdgeSessionError(f"{self.label}: {self._user_paths(str(exc))}") from None
        self._on_create(self)
        self._check_placement()

    def _check_placement(self) -> None:
        placement = self.placement
        if not self.spec.accelerator or placement is None:
            return
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
            raise EdgeSessionError(f"{self.label}: {op} failed: {self._user_paths(str(exc))}") from None
        except WorkerDied as exc:
            raise EdgeSessionError(f"{self.label}: {self._user_paths(str(exc))}") from None

    # -- what tests call
    @property
    def checks_memory_state(self) -> bool:
        """Whether the first run of this session checks that outputs do not depend on memory left by
        earlier graphs: on QNN HTP, where kernels that leave elements unwritten were measured."""
        return self.spec.ep_name == "QNNExecutionProvider" and self.spec.qnn_backend == "htp"

    def run(self, feed: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Run one inference. The first run of a QNN HTP session runs the feed twice, with the NPU's
        memory filled with two different patterns before each run, and fails unless both agree bit
        for bit: so a verdict never depends on what ran before (test order or selection)."""
        feed = check_feed(self.model, feed, self.label)
        backend = self._live_backend()
        check = self.checks_memory_state and not backend.memory_checked
        reply, outputs = self._request(Op.RUN, lambda backend: backend.run(feed, check))
        self.last_inputs = feed
        if reply.get("memory_differs"):
            detail = ", ".join(
                f"{name!r}: {count} element{'s' * (count != 1)}"
                for name, count in sorted(reply["memory_differs"].items())
            )
            raise EdgeSessionError(
                f"{self.label}: outputs depend on memory left by earlier graphs ({detail} differ bit for bit "
                "when the same example runs twice with the NPU memory filled differently in between), so "
                "this result depends on test order and selection"
            )
        backend.memory_checked = backend.memory_checked or check
        return dict(outputs)

    def run_all(self, feeds: Sequence[Mapping[str, np.ndarray]]) -> List[Dict[str, np.ndarray]]:
        """One inference per feed, in order, as one batch where the device kind has one; the first
        feed alone first while the memory-state check (see :meth:`run`) is still due."""
        checked = [check_feed(self.model, feed, self.label) for feed in feeds]
        if not checked:
            return []
        head = [self.run(checked[0])] if self.checks_memory_state and not self._live_backend().memory_checked else []
        rest = checked[len(head) :]
        outputs = self._request(Op.RUN, lambda backend: backend.run_all(rest)) if rest else []
        self.last_inputs = checked[-1]
        return [*head, *(dict(o) for o in outputs)]

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
        known: Optional[Any] = None,
    ) -> Diagnosis:
        """The first node whose output departs from ``reference`` (default: this model on the device's CPU)
        on ``inputs`` (one feed, or several compared stacked on axis 0):
        :func:`pytest_edgeort.checks.diagnose.diagnose`; ``tolerance``: a ToleranceSpec, ``cache``: where
        prefix models go (default: the system's temporary folder); ``known``: the ``(actual, expected)`` outputs
        a check already computed on ``inputs``."""
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
            return diagnose(self, reference, feeds, folder, tolerance, budget, strategy, known=known)
        finally:
            if own:
                reference.close()

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
        self._backend = None

    def __repr__(self) -> str:
        return f"<EdgeSession {self.label} fallback={'on' if self.cpu_fallback else 'off'}>"
