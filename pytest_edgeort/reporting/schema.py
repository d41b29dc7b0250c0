"""What a run records, as typed data: a check record per edge test's check, the report document, and
their JSON form (``to_dict``/``from_dict`` round-trip; records cross pytest-xdist workers that way)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

SCHEMA = "pytest-edgeort/report"
SCHEMA_VERSION = 1
INTERRUPTED = 2  # pytest.ExitCode.INTERRUPTED (Ctrl-C, SIGTERM), without importing pytest here

#: What a session knows about itself (``EdgeSession.provenance()``): a record made from a session carries
#: every one of these keys, null where unknown; other records carry only what is known.
SESSION_FACTS = (
    "device",
    "provider",
    "ep",
    "ep_api",
    "provider_options",
    "cpu_fallback",
    "offload_graph_io_quantization",
    "model",
    "model_path",
    "model_sha256",
    "platform",
    "soc",
    "u8_isa",
    "graph_optimization",
    "qdq_fusion",
    "onnxruntime",
    "qnn_sdk",
    "qnn_ep",
    "npu_coverage",
    "placement",
    "ep_context",
    "hosted",
)

#: What an op-matrix case's ``op_matrix["class"]`` can be, in the order tables list them; ``ok`` is the only good one.
OP_MATRIX_CLASSES: Dict[str, str] = {
    "ok": "fully on the provider, matches the CPU reference or the onnx expected outputs",
    "wrong": "fully on the provider, outside the default tolerance of both the CPU reference and the expected outputs",
    "stale_memory": "fully on the provider, outputs depend on memory left by earlier graphs",
    "run_failed": "fully on the provider, but running it failed",
    "cpu_fallback": "some or all nodes need the CPU (which ops: detail)",
    "rejected": "the session cannot be created although no node needs the CPU (error class: detail)",
    "crashed": "the worker died creating or running it (signal: detail)",
    "no_reference": "the CPU reference cannot run it (no CPU kernel)",
    "unrepresentable": "inputs or outputs the worker protocol cannot carry (sequence, string, bfloat16, ...)",
}


STRICT_VERDICT = "fallback disabled"
PROFILE_VERDICT = "no CPU layer in the AI Hub profile"
#: What a passed ``no_cpu_fallback`` check can have proved, by its ``placement_verdict``.
PLACEMENT_VERDICTS: Dict[str, str] = {
    STRICT_VERDICT: "the session ran with CPU fallback disabled (onnxruntime refuses any node the EP cannot take)",
    PROFILE_VERDICT: "CPU fallback stayed on (AI Hub cannot turn it off) and the job's per-layer profile put no layer "
    "on the CPU beyond QNN's graph-I/O (de)quantization",
}
_LEAVES = (str, int, bool, type(None))


def json_safe(value: Any) -> Any:
    """Plain JSON data: numpy scalars as numbers, tuples as lists, infinities/NaN as strings."""
    kind = type(value)  # the plain types first, by exact type: a record's facts are thousands of them per test
    if kind is float:
        return value if math.isfinite(value) else str(value)
    if kind in _LEAVES:
        return value
    # a plain leaf inside a dict or list is taken as it is, without a call (a comparison holds ~100 of them)
    if kind is dict:
        return {
            str(k): v if type(v) in _LEAVES or (type(v) is float and math.isfinite(v)) else json_safe(v)
            for k, v in value.items()
        }
    if kind is list or kind is tuple:
        return [v if type(v) in _LEAVES or (type(v) is float and math.isfinite(v)) else json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return json_safe(value.item())
    return value


def number(value: Any) -> Optional[float]:
    """A metric as a number: JSON's ``"inf"``/``"-inf"``/``"nan"`` spellings as floats; None for anything else."""
    if isinstance(value, str) and value in ("inf", "-inf", "nan"):
        return float(value)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass
class CheckRecord:
    """One check of one edge test: what ran where, what it found, and why it failed (if it did).

    Absent facts are None. ``extra`` keeps keys this version does not know (a newer writer's), so
    loading and saving a report loses nothing."""

    nodeid: Optional[str] = None  # the test's pytest node id
    check: Optional[str] = None  # conformance, no_cpu_fallback, golden, latency, fuzz, op_matrix; "suite", "test"
    passed: Optional[bool] = None  # the check's own verdict (None: the test's outcome decides)
    outcome: Optional[str] = None  # the test's final pytest outcome, joined in the report document
    suite: Optional[str] = None  # the edge_suite.toml of a suite item
    reference: Optional[str] = None  # what the outputs were compared with
    reference_device: Optional[str] = None  # the device the reference ran on
    label: Optional[str] = None  # what the test called this comparison: edge_compare(..., label="sample 17")
    # the session's facts (SESSION_FACTS)
    device: Optional[str] = None
    provider: Optional[str] = None
    ep: Optional[str] = None
    ep_api: Optional[str] = None
    provider_options: Optional[Dict[str, Any]] = None
    cpu_fallback: Optional[bool] = None
    offload_graph_io_quantization: Optional[str] = None
    model: Optional[str] = None
    model_path: Optional[str] = None
    model_sha256: Optional[str] = None
    platform: Optional[str] = None
    soc: Optional[str] = None
    u8_isa: Optional[List[str]] = None  # the device CPU's features that change onnxruntime's u8 kernels
    graph_optimization: Optional[str] = None  # the session's graph optimization level
    qdq_fusion: Optional[bool] = None  # whether QDQ node units were fused (moves results by 1 LSB on ties)
    onnxruntime: Optional[str] = None
    qnn_sdk: Optional[str] = None
    qnn_ep: Optional[str] = None
    npu_coverage: Optional[float] = None
    placement: Optional[Dict[str, Dict[str, int]]] = None  # EP -> op type -> nodes
    ep_context: Optional[Dict[str, Any]] = None  # the EP-context cache: {state: hit|stored|rebuilt|unsupported, key}
    hosted: Optional[Dict[str, Any]] = None  # a hosted device (AI Hub): service, device, attributes, jobs, test_double
    # what the check found
    comparison: Optional[Dict[str, Any]] = None  # Comparison.to_dict()
    examples: Optional[int] = None
    cpu_nodes: Optional[List[Dict[str, Any]]] = None  # [{op_type, count, nodes}]
    placement_verdict: Optional[str] = None  # what a no_cpu_fallback check proved (see PLACEMENT_VERDICTS)
    latency: Optional[Dict[str, float]] = None  # LatencyStats.to_dict() of the deciding measurement
    latency_simulated: Optional[bool] = None  # measured on a simulator (QNN on x86-64): not a board's timing
    latency_gates: Optional[Dict[str, float]] = None  # {"latency_p50_ms": 5.0, ...}
    latency_gate_ms: Optional[float] = None  # the p90 gate (older readers)
    latency_attempts: Optional[List[Dict[str, Any]]] = None  # every measurement, each with "passed"
    latency_decided_by: Optional[str] = None  # "first measurement" | "re-measurement"
    speedup_vs_cpu: Optional[float] = None
    profile: Optional[Dict[str, Any]] = None  # ProfileSummary.to_dict(): cycle shares per ONNX node/op type, files
    diagnosis: Optional[Dict[str, Any]] = None  # Diagnosis.to_dict(): the first divergent node, the bisection path
    golden: Optional[str] = None  # the golden file an update wrote
    golden_update: Optional[List[str]] = None
    golden_provenance: Optional[Dict[str, Any]] = None
    fuzz_examples: Optional[int] = None
    fuzz_input: Optional[str] = None
    op_matrix: Optional[Dict[str, Any]] = None  # an op-matrix case: {case, op_type, class, detail, ...}
    # why it failed
    phase: Optional[str] = None  # setup, call, teardown
    error: Optional[str] = None  # one line
    interrupted: Optional[str] = None  # a device request the test's interruption (pytest-timeout, Ctrl-C) stopped
    # when and where it ran
    attempt: Optional[int] = None  # which run of the test (pytest-rerunfailures runs a failed test again): 1, 2, ...
    attempt_outcome: Optional[str] = None  # that run's outcome as pytest reported it ("rerun" when it ran again)
    started: Optional[float] = None
    finished: Optional[float] = None
    xdist_worker: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_session(cls, nodeid: str, check: str, facts: Mapping[str, Any], **fields: Any) -> CheckRecord:
        """A record of a check that ran on a session: its ``provenance()`` ``facts``, then ``fields``."""
        return cls(nodeid=nodeid, check=check, **{**{k: facts.get(k) for k in SESSION_FACTS}, **fields})

    @property
    def has_session(self) -> bool:
        """True for a record made from a session (it names the EP the check ran on)."""
        return self.ep is not None

    @property
    def check_passed(self) -> Optional[bool]:
        """This check's own verdict: ``passed``, else its comparison's (an ``edge_compare`` record leaves
        ``passed`` to its test's outcome, and one test may compare many times); None when neither says."""
        if self.passed is not None:
            return self.passed
        verdict = (self.comparison or {}).get("passed")
        return verdict if isinstance(verdict, bool) else None

    @property
    def outputs(self) -> List[Mapping[str, Any]]:
        """The per-output comparison results (empty without a comparison)."""
        return list((self.comparison or {}).get("outputs") or ())

    def note_failure(self, phase: str, error: str) -> None:
        """The phase and reason a test failed in, unless the record has its own already."""
        self.phase = self.phase or phase
        self.error = self.error or error

    def to_dict(self) -> Dict[str, Any]:
        """The JSON form: the facts that are known (every session fact of a session's record), plus ``extra``."""
        data: Dict[str, Any] = dict(self.extra)
        values, session = vars(self), self.has_session
        for name in _RECORD_FIELDS:
            value = values[name]
            if value is not None or (session and name in _SESSION_FACT_SET):
                data[name] = value
        return json_safe(data)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckRecord:
        """A record from its JSON form; keys this version does not know go to ``extra``."""
        values = {k: v for k, v in data.items() if k in _RECORD_FIELD_SET}
        return cls(**values, extra={k: v for k, v in data.items() if k not in _RECORD_FIELD_SET})


#: a record's fields but ``extra``, in their order (a record is made, sent and read back on every test)
_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(CheckRecord) if f.name != "extra")
_RECORD_FIELD_SET = frozenset(_RECORD_FIELDS)
_SESSION_FACT_SET = frozenset(SESSION_FACTS)


@dataclass
class ReportDocument:
    """The run report (``--edge-report``, and what the HTML report renders): every check record with its
    test's outcome, the devices' facts, the outcome of every edge test and the skip reasons."""

    records: List[CheckRecord] = field(default_factory=list)
    devices: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    outcomes: Dict[str, str] = field(default_factory=dict)  # nodeid -> final pytest outcome
    skipped: List[Tuple[str, int]] = field(default_factory=list)  # (reason, count), most frequent first
    seed: Optional[int] = None
    exitstatus: Optional[int] = None
    interrupted: bool = False
    created: Optional[str] = None  # ISO 8601, UTC
    schema: str = SCHEMA
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> Dict[str, Any]:
        """The JSON form (the keys the README documents; a record's test outcome is in the record)."""
        return json_safe(  # type: ignore[no-any-return]
            {
                "schema": self.schema,
                "version": self.schema_version,
                "created": self.created,
                "exitstatus": self.exitstatus,
                "interrupted": self.interrupted,
                "seed": self.seed,
                "devices": self.devices,
                "results": [r.to_dict() for r in self.records],
                "outcomes": self.outcomes,
                "skipped": [{"reason": reason, "count": count} for reason, count in self.skipped],
            }
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportDocument:
        """A document from its JSON form; ValueError (one line) for another schema or a newer version."""
        schema, version = data.get("schema", SCHEMA), data.get("version", SCHEMA_VERSION)
        if schema != SCHEMA or not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ValueError(
                f"not a {SCHEMA} report of version <= {SCHEMA_VERSION}: schema {schema!r}, version {version!r}"
            )
        return cls(
            records=[CheckRecord.from_dict(r) for r in data.get("results", ())],
            devices=dict(data.get("devices") or {}),
            outcomes=dict(data.get("outcomes") or {}),
            skipped=[(str(s.get("reason")), int(s.get("count", 0))) for s in data.get("skipped", ())],
            seed=data.get("seed"),
            exitstatus=data.get("exitstatus"),
            interrupted=bool(data.get("interrupted", False)),
            created=data.get("created"),
            schema=schema,
            schema_version=version,
        )
