"""JUnit XML properties of edge tests (pytest's ``record_property`` machinery): ``edge_<name>`` pairs."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Dict, Iterable, Mapping, Tuple, Union

import pytest

if TYPE_CHECKING:  # the record schema loads with the first record: a run without edge tests never loads it
    from .reporting.schema import CheckRecord

# JUnit property <- provenance key: every edge test carries these where they are known, also one
# that failed before any session existed.
PROVENANCE_KEYS = {
    "edge_device": "device",
    "edge_provider": "provider",
    "edge_model": "model_path",
    "edge_model_sha256": "model_sha256",
    "edge_onnxruntime": "onnxruntime",
    "edge_qnn_sdk": "qnn_sdk",
    "edge_qnn_ep": "qnn_ep",
    "edge_platform": "platform",
}


def _add(item: pytest.Item, pairs: Iterable[Tuple[str, Any]]) -> None:
    """Each ``(name, value)`` that is known (not None), unless the test carries ``name`` already."""
    have = {key for key, _ in item.user_properties}
    for name, value in pairs:
        if value is not None and name not in have:
            item.user_properties.append((name, str(value)))
            have.add(name)


def record_identity(item: pytest.Item, target: Tuple[str, str]) -> None:
    """``edge_device`` and ``edge_provider``, on every edge test, also one that failed or skipped
    before any session existed: CI groups results by device and provider."""
    _add(item, zip(("edge_device", "edge_provider"), target))


def record_provenance(item: pytest.Item, facts: Union[CheckRecord, Mapping[str, Any]]) -> None:
    """``edge_model``, ``edge_model_sha256``, versions and platform of a record, or of a session's ``provenance()``
    (each once, where known)."""
    known = facts if isinstance(facts, Mapping) else vars(facts)
    _add(item, ((name, known.get(key)) for name, key in PROVENANCE_KEYS.items()))


def record_error(item: pytest.Item, line: str) -> None:
    """``edge_error``: the one line that says why a phase of the test failed."""
    item.user_properties.append(("edge_error", line))


#: the comparison metrics a test carries, and whether a larger value is the worse one
METRICS = {"max_lsb": True, "max_abs": True, "snr_db": False, "topk_agreement": False}


def _badness(value: float, larger_is_worse: bool) -> Tuple[bool, float]:
    return math.isnan(value), value if larger_is_worse else -value  # NaN is the worst of all


def record_metrics(item: pytest.Item, record: CheckRecord) -> None:
    """Key metrics of the record's comparison: ``edge_<output>_max_lsb``, ``_max_abs``, ``_snr_db``,
    ``_topk_agreement``, each once per test, the worst of its comparisons so far (a test that compares every
    sample of a data set carries four properties per output, not four per sample)."""
    from .reporting.schema import number

    properties = item.user_properties
    index: Dict[str, int] = {}  # where each property is first: one pass, not one per metric
    for i, (have, _) in enumerate(properties):
        index.setdefault(have, i)
    for out in record.outputs:
        for key, larger_is_worse in METRICS.items():
            value = number(out.get(key))
            if value is None:
                continue
            name, text = f"edge_{out.get('name')}_{key}", f"{value:.6g}"
            at = index.get(name)
            if at is None:
                index[name] = len(properties)
                properties.append((name, text))
            elif _badness(value, larger_is_worse) > _badness(float(properties[at][1]), larger_is_worse):
                properties[at] = (name, text)


def record_coverage(item: pytest.Item, coverage: float) -> None:
    """``edge_npu_coverage``: the fraction of nodes the accelerator took."""
    item.user_properties.append(("edge_npu_coverage", f"{coverage:.4f}"))


def record_latency(item: pytest.Item, record: CheckRecord) -> None:
    """``edge_latency_p50_ms`` and ``edge_latency_p90_ms`` of the deciding measurement,
    ``edge_latency_simulated`` and ``edge_latency_decided_by``."""
    from .reporting.schema import number

    for key in ("p50_ms", "p90_ms"):
        value = number((record.latency or {}).get(key))
        if value is not None:
            item.user_properties.append((f"edge_latency_{key}", f"{value:.4g}"))
    if record.latency_simulated is not None:
        item.user_properties.append(("edge_latency_simulated", "true" if record.latency_simulated else "false"))
    if record.latency_decided_by:
        item.user_properties.append(("edge_latency_decided_by", record.latency_decided_by))
