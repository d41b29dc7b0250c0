"""The no-CPU-fallback check as a test item runs it: the one-line outcome, the record, JUnit properties."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import pytest

from .config.providers import resolve_provider
from .errors import ModelError, ProviderError
from .junit import record_coverage, record_provenance
from .outcomes import fail, require_provider
from .reporting.schema import CheckRecord
from .run import EdgeRun


def assert_no_fallback(
    run: EdgeRun,
    node: pytest.Item,
    device: str,
    provider: str,
    model: Path,
    options: Optional[Mapping[str, Any]] = None,
    fields: Optional[Mapping[str, Any]] = None,
) -> float:
    """Fail unless ``model`` is created with CPU fallback disabled; return the EP's node coverage.

    ``fields`` go into the record over the session's (suites name their folder and ``suite``, not the
    prepared file's hash)."""
    from .checks.no_fallback import NoFallbackResult, check_no_fallback

    if not resolve_provider(provider).accelerator:
        message = f"provider {provider} is CPU itself: there is no CPU fallback to check"
        raise pytest.skip.Exception(message, _use_item_location=True)  # -rs names the test
    require_provider(run, device, provider)
    try:
        result = check_no_fallback(run, device, provider, model, options)
    except (ProviderError, ModelError) as exc:
        result = NoFallbackResult(error=str(exc))
    if result.session is None:
        cpu_nodes = [{"op_type": op, "count": len(names), "nodes": names} for op, names in result.cpu_nodes.items()]
        run.record(
            CheckRecord(
                **{
                    "nodeid": node.nodeid,
                    "check": "no_cpu_fallback",
                    "passed": False,
                    "device": device,
                    "provider": provider,
                    "model": model.name,
                    "model_path": str(model),
                    "error": result.error,
                    "cpu_nodes": cpu_nodes,
                    **(fields or {}),
                }
            )
        )
        fail(str(result.error))
    session = result.session
    coverage = session.npu_coverage if session.npu_coverage is not None else 1.0
    record = CheckRecord.from_session(
        node.nodeid, "no_cpu_fallback", session.provenance(), passed=True, **(fields or {})
    )
    run.record(record)
    record_provenance(node, record)
    record_coverage(node, coverage)
    return coverage
