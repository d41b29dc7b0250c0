"""The no-CPU-fallback check as pytest runs it (``edge_assert_no_fallback`` and suite items): the record,
JUnit properties and the one-line outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Union

from .._text import model_label
from ..checks.no_fallback import NoFallbackResult, check_no_fallback
from ..config.providers import resolve_provider
from ..errors import ModelError, ProviderError
from ..junit import record_coverage
from ..outcomes import fail, require_provider, skip
from .context import SuiteCheck, SuiteContext
from .node import CheckNode


def assert_no_fallback(
    node: CheckNode, model: Path, options: Optional[Mapping[str, Any]] = None, name: Optional[Union[Path, str]] = None
) -> float:
    """Fail unless ``model`` (the user's ``name``, where it is a prepared copy) is created with CPU fallback
    disabled; return the EP's node coverage."""
    name = model if name is None else name
    if not resolve_provider(node.provider).accelerator:
        skip(f"provider {node.provider} is CPU itself: there is no CPU fallback to check")
    require_provider(node.run, node.device, node.provider)
    try:
        result = check_no_fallback(node.run, node.device, node.provider, model, options, name)
    except (ProviderError, ModelError) as exc:
        result = NoFallbackResult(error=str(exc))
    if result.session is None:
        cpu_nodes = [{"op_type": op, "count": len(names), "nodes": names} for op, names in result.cpu_nodes.items()]
        node.record_failure(model=model_label(name), model_path=str(name), error=result.error, cpu_nodes=cpu_nodes)
        fail(str(result.error))
    session = result.session
    node.record(session, passed=True)
    coverage = session.npu_coverage if session.npu_coverage is not None else 1.0
    record_coverage(node.item, coverage)
    return coverage


def run_suite(item: SuiteContext) -> None:
    """The suite's (prepared) model without CPU fallback."""
    models = item.models()
    assert_no_fallback(item.check_node, models.model, item.options(item.check_node.provider), models.name)


CHECK = SuiteCheck("no_cpu_fallback", run_suite, wanted=lambda suite: suite.no_cpu_fallback, accelerator_only=True)
