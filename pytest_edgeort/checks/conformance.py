"""The checks shared by marker tests and suite items: tolerance resolution, comparison, no-fallback.

Pure of pytest: they return results or one-line messages, the callers decide skip/fail.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..compare.engine import Comparison, compare_outputs
from ..model.info import ModelInfo
from ..devices.placement import format_fallback
from ..config.providers import ProviderSpec, resolve_provider
from ..run import EdgeRun
from ..devices.session import EdgeSession, EdgeSessionError
from ..compare.tolerance import Tolerance, default_tolerance, parse_tolerance, resolve_tolerance


def tolerances_for(model: ModelInfo, spec: ProviderSpec, layers: Sequence[Mapping[str, Any]], where: str
                   ) -> Dict[str, Tolerance]:
    """Per-output tolerance: precision default, then each layer (marker/suite, then call kwargs)."""
    parsed = [parse_tolerance(dict(layer), where) for layer in layers if layer]
    unknown = sorted({name for _, per in parsed for name in per} - {o.name for o in model.outputs})
    if unknown:
        raise ValueError(f"{where}: tolerance for unknown output {unknown[0]!r}; "
                         f"model outputs: {', '.join(o.name for o in model.outputs)}")
    result = {}
    for out in model.outputs:
        tol = default_tolerance(model.precision(out.name, spec.float_as_fp16), spec.accelerator,
                                model.depth(out.name), model.shape(out.name), model.scale(out.name) is not None)
        layers_for_output = [layer for rules, per in parsed for layer in (rules, per.get(out.name, {}))]
        result[out.name] = resolve_tolerance(tol, *layers_for_output)
    return result


def compare_session(session: EdgeSession, actual: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray],
                    layers: Sequence[Mapping[str, Any]], baseline: Optional[Mapping[str, np.ndarray]], where: str
                    ) -> Comparison:
    """Compare ``actual`` (from ``session``) against ``expected`` with the resolved tolerances."""
    model = session.model
    tolerances = tolerances_for(model, session.spec, layers, where)
    scales = {o.name: model.scale(o.name) for o in model.outputs}
    return compare_outputs(actual, expected, tolerances, scales, baseline)


def diagnose_no_fallback(run: EdgeRun, device: str, provider: str, model: Path,
                         options: Optional[Mapping[str, Any]] = None
                         ) -> Tuple[Optional[str], Dict[str, List[str]]]:
    """``(None, {})`` when the model is created with CPU fallback disabled; else why (listing the
    CPU nodes by op type) and those nodes as ``{op_type: [node name, ...]}``."""
    try:
        run.session(device, model, provider, options, cpu_fallback=False)
        return None, {}
    except EdgeSessionError as strict_error:
        refused = str(strict_error)
    spec_ep = resolve_provider(provider).ep_name
    probe_options = dict(options or {})
    if spec_ep == "QNNExecutionProvider":
        # keep graph-I/O Q/DQ on QNN as it is without fallback, so they do not show up as CPU nodes
        probe_options.setdefault("offload_graph_io_quantization", "0")
    try:
        placement = run.session(device, model, provider, probe_options, cpu_fallback=True).placement
    except EdgeSessionError as exc:
        placement = exc.placement
        if placement is None:
            return f"{refused}; a session with CPU fallback also failed: {exc}", {}
    if placement is None:
        return f"{refused}; placement is unknown (this onnxruntime cannot report it)", {}
    nodes = placement.nodes_not_on(spec_ep)
    if not nodes:
        return (f"{refused}; with CPU fallback allowed every node lands on {spec_ep}, so the failure is in the "
                "EP itself", {})
    count = sum(len(v) for v in nodes.values())
    return (f"{model.name} on {device}/{provider} does not run fully on {spec_ep}: {count} of {placement.total} "
            f"nodes would run on CPU: {format_fallback(nodes)}", nodes)
