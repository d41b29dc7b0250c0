"""No CPU fallback: the model must be created with CPU fallback disabled; else which nodes fall back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Protocol, Sequence, Union

from .._text import model_label
from ..config.providers import resolve_provider
from ..devices.placement import format_fallback
from ..errors import EdgeSessionError
from ..reporting.schema import PROFILE_VERDICT as PROFILED
from ..reporting.schema import STRICT_VERDICT as STRICT

if TYPE_CHECKING:
    import numpy as np

    from ..devices.protocol import Device
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

    def device(self, name: str) -> Device: ...


@dataclass(frozen=True)
class NoFallbackResult:
    """Passed: the session created without CPU fallback. Failed: why, the CPU nodes by op type, and the
    error that refused the session without fallback (``refusal``)."""

    session: Optional[EdgeSession] = None
    error: Optional[str] = None
    cpu_nodes: Dict[str, List[str]] = field(default_factory=dict)
    refusal: Optional[EdgeSessionError] = None
    verdict: str = STRICT  # what a pass proved

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
    feeds: Sequence[Mapping[str, np.ndarray]] = (),
    strict: bool = False,
) -> NoFallbackResult:
    """Create ``model`` with CPU fallback disabled; when that is refused, find the nodes that would run on
    CPU (a second session with fallback allowed) and say so in one line, naming the user's model ``name``.

    On a device kind that cannot disable CPU fallback (AI Hub), the verdict is the profile's: ``model`` runs
    ``feeds`` (or one generated feed) with fallback on and no layer may land on the CPU; ``strict``
    (``--edge-strict``) fails there instead, as the strict kind of check cannot run."""
    name = model if name is None else name
    if not run.device(device).capabilities.disable_cpu_fallback:
        return _profile_verdict(run, device, provider, model, options, name, feeds, strict)
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


def _profile_verdict(
    run: Sessions,
    device: str,
    provider: str,
    model: Path,
    options: Optional[Mapping[str, Any]],
    name: Union[Path, str],
    feeds: Sequence[Mapping[str, np.ndarray]],
    strict: bool,
) -> NoFallbackResult:
    """No layer on CPU in the profile of a run with fallback on (kinds whose placement evidence is a profile)."""
    kind = run.device(device).kind.name
    if strict:
        return NoFallbackResult(
            error=f"device {device!r} (kind {kind}) cannot run {model_label(name)} with CPU fallback disabled, "
            f"which --edge-strict requires; without it the check is {PROFILED!r}"
        )
    from ..model.inputs import generate_inputs

    session = run.session(device, model, provider, options, True, name)
    if session.placement is None:
        session.run_all(list(feeds) or [generate_inputs(session.model, seed=0)])
    placement = session.placement
    if placement is None or placement.total == 0:
        return NoFallbackResult(error=f"{session.label}: the AI Hub profile lists no layer, so placement is unknown")
    # QNN's graph-I/O (de)quantization runs on the CPU by design: as many CPU layers of those op types as the model
    # has graph-I/O (de)quantizing nodes are those (layer names are the runtime's, not the model's)
    offloaded = session.model.io_quantization
    found = placement.nodes_not_on(session.spec.ep_name).items()
    nodes = {op: names for op, names in found if len(names) > offloaded.get(op, 0)}
    if not nodes:
        return NoFallbackResult(session=session, verdict=PROFILED)
    count = sum(len(v) for v in nodes.values())
    return NoFallbackResult(
        error=f"{session.label}: {count} of {placement.total} layers ran on the CPU in the AI Hub profile (CPU "
        f"fallback cannot be disabled there): {format_fallback(nodes)}",
        cpu_nodes=nodes,
    )
