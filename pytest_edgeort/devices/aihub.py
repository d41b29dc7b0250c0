"""The ``qai-hub`` device kind: a Qualcomm AI Hub hosted device, driven through the real ``qai-hub`` client.

A session here opens nothing: each batch of inferences is an inference job (:mod:`.hubjobs`) on the hosted
device, with the examples as one dataset, profiled. Outputs come from the job's output dataset, latency from
its profile (timed on the device, never on this host), placement from the profile's per-layer compute units.
AI Hub's ONNX Runtime jobs always keep the CPU EP as a fallback, so a session with CPU fallback disabled is
refused: the placement verdict of this kind is "no layer on CPU in the AI Hub profile" (see
:mod:`pytest_edgeort.checks.no_fallback`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .._text import did_you_mean
from ..config.inventory import DeviceConfig
from ..config.kinds import Capabilities, DeviceKind
from ..config.providers import ProviderSpec
from ..errors import DeviceFault, WorkerError
from ..model.info import ModelInfo, TensorInfo
from .boardlock import lock_owner
from .hubjobs import (
    TEST_DOUBLE_ATTRIBUTE,
    Budget,
    HubJob,
    HubJobs,
    Ledger,
    client_config,
    job_key,
    ledger_path,
    with_backoff,
)
from .placement import Node, Placement

#: provider alias -> the job options that select it; NPU and GPU run through ONNX Runtime's QNN EP there
COMPUTE_UNITS: Dict[str, str] = {
    "qnn-htp": "--compute_unit npu --onnx_execution_providers qnn",
    "qnn-gpu": "--compute_unit gpu --onnx_execution_providers qnn",
    "cpu": "--compute_unit cpu",
}
#: a profile layer's compute unit -> the EP it stands for in a :class:`Placement`
UNIT_EPS = {"NPU": "QNNExecutionProvider", "GPU": "QNNExecutionProvider", "CPU": "CPUExecutionProvider"}
DEFAULT_JOB_TIMEOUT_S = 1800.0
DEFAULT_BUDGET_S = 3600.0
NO_FALLBACK_OFF = (
    "AI Hub runs ONNX models with CPU fallback always on (no job option reaches session.disable_cpu_ep_fallback); "
    "its placement evidence is the per-layer compute unit of the job's profile"
)


class AIHubDevice:
    """One ``[devices.<name>]`` entry of kind ``qai-hub``: a hosted device, found on first use."""

    def __init__(self, config: DeviceConfig, kind: DeviceKind) -> None:
        self.config = config
        self.kind = kind
        self.name = config.name
        self.notify: Callable[[str], None] = lambda message: None
        self.note: Callable[[str], None] = lambda message: None
        self.ep_cache = False
        self.lock_owner: Dict[str, Optional[str]] = lock_owner()
        self.probe_backends: Optional[Tuple[str, ...]] = None  # (no QNN backend probe: AI Hub says what it has)
        self.where = f"device {self.name!r} (qai-hub)"
        self.budget = Budget(float(config.settings.get("budget_s", DEFAULT_BUDGET_S)))
        self._caps: Optional[Dict[str, Any]] = None
        self.jobs: Optional[HubJobs] = None
        self.hub_device: Any = None

    @property
    def capabilities(self) -> Capabilities:
        return self.kind.capabilities

    def describe(self) -> Dict[str, Any]:
        """The hosted device AI Hub matches to the entry (name/os/attributes) and the service's facts;
        DeviceUnavailable without a token or client, DeviceFault when AI Hub refuses or has no such device."""
        if self._caps is None:
            import qai_hub

            config = client_config()
            client = qai_hub.Client(config=config)
            settings = self.config.settings
            wanted = {"name": settings.get("device", ""), "os": settings.get("os", "")}
            attributes = list(settings.get("attributes", []))
            found = with_backoff(
                lambda: client.get_devices(**wanted, attributes=attributes), "listing devices", self.budget, self.where
            )
            if not found:
                raise DeviceFault(self._no_such_device(client, wanted["name"], attributes))
            self.hub_device = found[0]
            self.jobs = HubJobs(
                client,
                self.where,
                self.budget,
                float(settings.get("job_timeout", DEFAULT_JOB_TIMEOUT_S)),
                Ledger(ledger_path(self.name)),
                str(self.lock_owner["run"]),
            )
            self._caps = self._facts(config.api_url, qai_hub.__version__)
        return self._caps

    def _no_such_device(self, client: Any, name: str, attributes: List[str]) -> str:
        what = f"no device named {name!r}" if name else "no device"
        if attributes:
            what += f" with attributes {', '.join(attributes)}"
        every = with_backoff(client.get_devices, "listing devices", self.budget, self.where)
        names = sorted({device.name for device in every})
        hint = did_you_mean(name, names) if name else ""
        return f"{self.where}: AI Hub has {what}{hint} (device/attributes/os under [devices.{self.name}])"

    def _facts(self, api_url: str, client_version: str) -> Dict[str, Any]:
        attributes = list(self.hub_device.attributes)
        value = {a.split(":", 1)[0]: a.split(":", 1)[1] for a in attributes if ":" in a}
        double = any(a.startswith(TEST_DOUBLE_ATTRIBUTE) for a in attributes)
        service = f"AI Hub test double at {api_url}" if double else f"Qualcomm AI Hub ({api_url})"
        return {
            "platform": f"qai-hub: {self.hub_device.name} (os {self.hub_device.os})",
            "soc": value.get("chipset"),
            "providers": sorted(set(UNIT_EPS.values())),
            "aliases": list(COMPUTE_UNITS),
            "hosted": {
                "service": service,
                "test_double": double,
                "device": self.hub_device.name,
                "os": self.hub_device.os,
                "attributes": attributes,
                "chipset": value.get("chipset"),
                "hexagon": value.get("hexagon"),
                "client": f"qai-hub {client_version}",
                "options": self.config.settings.get("options", ""),
            },
        }

    def facts(self) -> Optional[Dict[str, Any]]:
        if self._caps is None:
            return None
        jobs = self.jobs
        counts = {"submitted": jobs.submitted, "reattached": jobs.reattached} if jobs is not None else {}
        return {**self._caps, "jobs": counts}

    def provider_aliases(self) -> List[str]:
        return list(COMPUTE_UNITS)

    def missing_provider(self, spec: ProviderSpec) -> Optional[str]:
        if spec.alias in COMPUTE_UNITS:
            return None
        return f"{self.where} has no provider {spec.alias!r}; AI Hub runs: {', '.join(COMPUTE_UNITS)}"

    def open_session(
        self,
        model: ModelInfo,
        spec: ProviderSpec,
        options: Mapping[str, str],
        cpu_fallback: bool,
        profile: bool = False,
    ) -> HubSession:
        """A session whose runs are jobs; WorkerError(kind='create') for what AI Hub cannot do: CPU fallback
        disabled, an ONNX Runtime provider option (job options go in the entry's ``options`` key)."""
        self.describe()
        if not cpu_fallback:
            raise WorkerError("create", NO_FALLBACK_OFF)
        own = sorted(key for key in options if spec.fixed_options.get(key) != options[key])
        if own:
            raise WorkerError(
                "create",
                f"provider option(s) {', '.join(own)} have no AI Hub equivalent: AI Hub takes job options, e.g. "
                f'options = "--qnn_options ..." under [devices.{self.name}]',
            )
        return HubSession(self, model, spec)

    def job_options(self, spec: ProviderSpec) -> str:
        """The job's options: the provider's compute unit, then the entry's own ``options``."""
        return f"{COMPUTE_UNITS[spec.alias]} {self.config.settings.get('options', '')}".strip()

    def close(self) -> None:
        """Nothing runs here; jobs not collected stay in the ledger for the next run to re-attach to."""


@dataclass
class HubSession:
    """A model on a hosted device and compute unit: the :class:`~.protocol.SessionBackend` of ``qai-hub``."""

    device: AIHubDevice
    model: ModelInfo
    spec: ProviderSpec
    memory_checked: bool = True  # AI Hub runs each job on a freshly loaded model: nothing left by earlier graphs
    done: List[HubJob] = field(default_factory=list)  # this session's collected jobs, in order
    pending: List[HubJob] = field(default_factory=list)  # submitted ahead, not collected yet
    timed: int = 0  # how many times ``time`` was asked (each later one is a re-measurement: a job of its own)
    _placement: Optional[Placement] = None

    alive = True
    api = "qai-hub"

    @property
    def jobs(self) -> HubJobs:
        assert self.device.jobs is not None  # open_session described the device
        return self.device.jobs

    @property
    def placement(self) -> Optional[Placement]:
        """Per-layer placement from the profile of the session's first job (None before one finished)."""
        return self._placement

    @property
    def facts(self) -> Dict[str, Any]:
        hosted = dict(self.device.describe()["hosted"])
        hosted["jobs"] = [job.url for job in self.done]
        hosted["tools"] = {name: v for job in self.done for name, v in job.tools.items()}  # QAIRT's version among them
        hosted["options"] = self.device.job_options(self.spec)
        return {
            "offload_graph_io_quantization": None,
            "ep_context": None,
            "graph_optimization": None,
            "qdq_fusion": None,
            "hosted": hosted,
        }

    def submit(self, feeds: Sequence[Mapping[str, np.ndarray]], attempt: int = 0) -> HubJob:
        """Submit (or re-attach to) the job that runs ``feeds`` (``attempt`` > 0: another job of the same feeds,
        a re-measurement); it is not waited for."""
        from .session import feeds_digest

        digest = feeds_digest(feeds)
        device, jobs = self.device, self.jobs
        options = device.job_options(self.spec)
        hub = device.hub_device
        again = [f"attempt {attempt}"] if attempt else []
        key = job_key(self.model.sha256, hub.name, hub.os, options, digest, *again)
        label = f"{self.model.path.name}'s inputs"
        job = jobs.submit(
            key,
            hub,
            lambda: jobs.model(self.model.sha256, self.model.path),
            lambda: jobs.dataset(digest, feeds, label),
            options,
            f"{self.model.path.name} {self.spec.alias}",
        )
        if job not in self.done and job not in self.pending:
            self.pending.append(job)
        return job

    def _collect(self, job: HubJob) -> HubJob:
        self.jobs.collect(job)
        if job in self.pending:
            self.pending.remove(job)
        if job not in self.done:
            self.done.append(job)
        if self._placement is None:
            self._placement = layer_placement((job.profile or {}).get("execution_detail") or [])
        return job

    def run(self, feed: Mapping[str, np.ndarray], check_memory: bool) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
        return {}, self.run_all([feed])[0]

    def run_paired(self, feed: Mapping[str, np.ndarray], check_memory: bool, other: Any) -> None:
        """Never: every run is a job of its own (see ``submit`` for running ahead)."""
        return None

    def run_all(self, feeds: Sequence[Mapping[str, np.ndarray]]) -> List[Dict[str, np.ndarray]]:
        job = self._collect(self.submit(feeds))
        return job_results(job.outputs or [], self.model.outputs, len(feeds), f"AI Hub job {job.url}")

    def time(
        self, feed: Mapping[str, np.ndarray], runs: int, warmup: int, max_s: Optional[float], min_runs: int
    ) -> List[float]:
        """The inference times (ms) a job's profile measured on the device: the session's last collected job's,
        else its first submitted one's, else a job of ``feed``'s; a later call (a re-measurement) runs a job of
        ``feed`` of its own. Up to ``runs`` of them (AI Hub decides warm-up and count)."""
        if self.timed:  # a re-measurement: a new job, timed anew on the device
            job = self._collect(self.submit([feed], attempt=self.timed))
        elif self.done:
            job = self.done[-1]
        else:
            job = self._collect(self.pending[0] if self.pending else self.submit([feed]))
        self.timed += 1
        summary = (job.profile or {}).get("execution_summary") or {}
        micros = list(summary.get("all_inference_times") or []) or [summary.get("estimated_inference_time")]
        times = [float(us) / 1000.0 for us in micros if isinstance(us, (int, float)) and us > 0]
        if not times:
            raise WorkerError("time", f"AI Hub job {job.url}'s profile has no inference time")
        return times[:runs]

    def take_profile(self) -> Dict[str, bytes]:
        raise WorkerError("profile", "AI Hub's per-layer profile is read from its jobs, not from a profiled session")

    def close(self) -> None:
        """Nothing stays open on AI Hub between jobs."""


def layer_placement(layers: Sequence[Mapping[str, Any]]) -> Placement:
    """A profile's ``execution_detail`` as a placement: each layer under the EP of its compute unit."""
    by_ep: Dict[str, List[Node]] = {}
    for layer in layers:
        unit = str(layer.get("compute_unit", "")).upper()
        ep = UNIT_EPS.get(unit, f"{unit or 'unknown'} compute unit")
        by_ep.setdefault(ep, []).append((str(layer.get("name", "")), str(layer.get("type", "")), ""))
    return Placement({ep: tuple(nodes) for ep, nodes in by_ep.items()})


def job_results(
    outputs: Sequence[Mapping[str, np.ndarray]], declared: Sequence[TensorInfo], count: int, job: str
) -> List[Dict[str, np.ndarray]]:
    """A job's results checked against what the model declares: ``count`` of them, each with every output by
    name and in its declared dtype (never cast: a converted output is another result); WorkerError naming ``job``."""
    names = [tensor.name for tensor in declared]
    if len(outputs) != count or any(sorted(o) != sorted(names) for o in outputs):
        got = sorted(outputs[0]) if outputs else []
        raise WorkerError(
            "run", f"{job} returned {len(outputs)} result(s) with outputs {got}; expected {count} with {sorted(names)}"
        )
    results = [{name: np.asarray(o[name]) for name in names} for o in outputs]
    for tensor in declared:
        if results and results[0][tensor.name].dtype != np.dtype(tensor.dtype):
            got = results[0][tensor.name].dtype
            what = f"{job} returned output {tensor.name!r} as {got}; the model declares {tensor.dtype}"
            raise WorkerError("run", what)
    return results
