"""No CPU fallback: the model must be created with CPU fallback disabled; else which nodes fall back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Protocol, Union

from .._text import model_label
from ..config.providers import resolve_provider
from ..devices.placement import format_fallback
from ..errors import EdgeSessionError

if TYPE_CHECKING:
    from ..devices.session import EdgeSession


class Sessions(Protocol):
    """Where sessions come from: the run's cache (:class:`~pytest_edgeort.run.EdgeRun`), or one case's own."""

    def session(
        self,
        device_name: str,
        model_path: Path,
        provider: str,
        options: Any = None,
        cpu_fallback: bool = True,
        name: Optional[Union[Path, str]] = None,
    ) -> EdgeSession: ...


@dataclass(frozen=True)
class NoFallbackResult:
    """Passed: the session created without CPU fallback. Failed: why, the CPU nodes by op type, and the
    error that refused the session without fallback (``refusal``)."""

    session: Optional[EdgeSession] = None
    error: Optional[str] = None
    cpu_nodes: Dict[str, List[str]] = field(default_factory=dict)
    refusal: Optional[EdgeSessionError] = None

    @property
    def passed(self) -> bool:
        return self.error is None


def check_no_fallback(
    run: Sessions,
    device: str,
    provider: str,
    model: Path,
    options: Optional[Mapping[str, Any]] = None,
    name: Optional[Union[Path, str]] = None,
) -> NoFallbackResult:
    """Create ``model`` with CPU fallback disabled; when that is refused, find the nodes that would run on
    CPU (a second session with fallback allowed) and say so in one line, naming the user's model ``name``."""
    name = model if name is None else name
    try:
        return NoFallbackResult(session=run.session(device, model, provider, options, False, name))
    except EdgeSessionError as strict_error:
        refusal = strict_error
        refused = str(strict_error)
    spec_ep = resolve_provider(provider).ep_name
    probe_options = dict(options or {})
    if spec_ep == "QNNExecutionProvider":
        # keep graph-I/O Q/DQ on QNN as it is without fallback, so they do not show up as CPU nodes
        probe_options.setdefault("offload_graph_io_quantization", "0")
    try:
        placement = run.session(device, model, provider, probe_options, True, name).placement
    except EdgeSessionError as exc:
        placement = exc.placement
        if placement is None:
            return NoFallbackResult(error=f"{refused}; a session with CPU fallback also failed: {exc}", refusal=refusal)
    if placement is None:
        return NoFallbackResult(
            error=f"{refused}; placement is unknown (this onnxruntime cannot report it)", refusal=refusal
        )
    nodes = placement.nodes_not_on(spec_ep)
    if not nodes:
        return NoFallbackResult(
            error=f"{refused}; with CPU fallback allowed every node lands on {spec_ep}, so the "
            "failure is in the EP itself",
            refusal=refusal,
        )
    count = sum(len(v) for v in nodes.values())
    return NoFallbackResult(
        error=f"{model_label(name)} on {device}/{provider} does not run fully on {spec_ep}: {count} of "
        f"{placement.total} nodes would run on CPU: {format_fallback(nodes)}",
        cpu_nodes=nodes,
        refusal=refusal,
    )
