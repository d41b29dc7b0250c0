"""The no-CPU-fallback check as pytest runs it (``edge_assert_no_fallback`` and suite items): the record,
JUnit properties and the one-line outcome."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

from .._text import model_label
from ..checks.no_fallback import NoFallbackResult, check_no_fallback
from ..config.providers import resolve_provider
from ..errors import ModelError, ProviderError
from ..junit import record_coverage
from ..outcomes import fail, require_provider, skip
from .context import SuiteCheck, SuiteContext
from .node import CheckNode

if TYPE_CHECKING:
    import numpy as np


def assert_no_fallback(
    node: CheckNode,
    model: Path,
    options: Optional[Mapping[str, Any]] = None,
    name: Optional[Union[Path, str]] = None,
    feeds: Sequence[Mapping[str, np.ndarray]] = (),
) -> float:
    """Fail unless ``model`` (the user's ``name``, where it is a prepared copy) is created with CPU fallback
    disabled (on a kind that cannot disable it: no layer on CPU in the profile of a run of ``feeds``); return
    the EP's node coverage."""
    name = model if name is None else name
    if not resolve_provider(node.provider).accelerator:
        skip(f"provider {node.provider} is CPU itself: there is no CPU fallback to check")
    require_provider(node.run, node.device, node.provider)
    try:
        strict = node.run.options.strict
        result = check_no_fallback(node.run, node.device, node.provider, model, options, name, feeds, strict)
    except (ProviderError, ModelError) as exc:
        result = NoFallbackResult(error=str(exc))
    if result.session is None:
        cpu_nodes = [{"op_type": op, "count": len(names), "nodes": names} for op, names in result.cpu_nodes.items()]
        node.record_failure(model=model_label(name), model_path=str(name), error=result.error, cpu_nodes=cpu_nodes)
        fail(str(result.error))
    session = result.session
    node.record(session, passed=True, placement_verdict=result.verdict)
    coverage = session.npu_coverage if session.npu_coverage is not None else 1.0
    record_coverage(node.item, coverage)
    return coverage


def run_suite(item: SuiteContext) -> None:
    """The suite's (prepared) model without CPU fallback."""
    models = item.models()
    options = item.options(item.check_node.provider)
    assert_no_fallback(item.check_node, models.model, options, models.name, models.feeds)


CHECK = SuiteCheck(
    "no_cpu_fallback",
    run_suite,
    wanted=lambda suite: suite.no_cpu_fallback,
    accelerator_only=True,
    runs_reference=False,
)
