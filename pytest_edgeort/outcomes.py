"""Turning expected problems into one-line pytest outcomes: skip (or fail when strict) and fail."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, NoReturn, Optional

import pytest

from .errors import DeviceFault, DeviceUnavailable, EdgeError, ModelError, ProviderError
from .config.providers import resolve_provider
from .run import EdgeRun

if TYPE_CHECKING:
    from .compare.engine import Comparison
    from .devices.session import EdgeSession


def unavailable(run: EdgeRun, message: str) -> NoReturn:
    """Skip, or fail under --edge-strict, because a device/provider/package is missing."""
    __tracebackhide__ = True
    if run.options.strict:
        fail(f"{message} [--edge-strict]")
    raise pytest.skip.Exception(message, _use_item_location=True)  # -rs names the test, not this file


def require_provider(run: EdgeRun, device: str, provider: str) -> None:
    """Skip (fail when strict) unless ``device`` is reachable and has ``provider``."""
    try:
        spec = resolve_provider(provider)
    except ProviderError as exc:
        spec, error = None, str(exc)
    if spec is None:
        fail(error)
    fault = False
    try:
        missing = run.device(device).missing_provider(spec)
    except DeviceUnavailable as exc:
        missing, fault = str(exc), isinstance(exc, DeviceFault)
    if fault:  # a split board, a changed host key: never an outage to skip
        fail(missing)
    if missing:
        unavailable(run, missing)


def open_session(
    run: EdgeRun, device: str, model: Path, provider: str, options: Optional[Mapping[str, Any]] = None,
    cpu_fallback: bool = True,
) -> "EdgeSession":
    """A cached session, turning every expected problem into one readable skip/fail line."""
    require_provider(run, device, provider)
    try:
        return run.session(device, model, provider, options, cpu_fallback)
    except EdgeError as exc:
        error = exc
    raise_outcome(run, error)


def raise_outcome(run: EdgeRun, error: EdgeError) -> NoReturn:
    """The one-line outcome of an expected problem: a device that is unavailable skips (fails under
    --edge-strict); a device fault (split board, changed host key) and everything else fail."""
    __tracebackhide__ = True
    if isinstance(error, DeviceUnavailable) and not isinstance(error, DeviceFault):
        unavailable(run, str(error))
    fail(str(error))


def fail(message: str) -> NoReturn:
    """Fail the test with one line (no traceback, no exception chain)."""
    __tracebackhide__ = True
    pytest.fail(message, pytrace=False)


def assert_no_fallback(run: EdgeRun, node: pytest.Item, device: str, provider: str, model: Path,
                       options: Optional[Mapping[str, Any]] = None, label: Optional[str] = None) -> float:
    """Fail unless ``model`` is created with CPU fallback disabled; return the EP's node coverage.

    ``label`` names the model in records (suites show their folder, not the prepared file's hash)."""
    from .checks.no_fallback import NoFallbackResult, check_no_fallback

    if not resolve_provider(provider).accelerator:
        pytest.skip(f"provider {provider} is CPU itself: there is no CPU fallback to check")
    require_provider(run, device, provider)
    try:
        result = check_no_fallback(run, device, provider, model, options)
    except (ProviderError, ModelError) as exc:
        result = NoFallbackResult(error=str(exc))
    if result.session is None:
        run.record({"nodeid": node.nodeid, "check": "no_cpu_fallback", "passed": False, "device": device,
                    "provider": provider, "model": label or model.name, "model_path": str(model),
                    "error": result.error, "cpu_nodes": [{"op_type": op, "count": len(names), "nodes": names}
                                                         for op, names in result.cpu_nodes.items()]})
        fail(str(result.error))
    session = result.session
    coverage = session.npu_coverage if session.npu_coverage is not None else 1.0
    run.record({"nodeid": node.nodeid, "check": "no_cpu_fallback", "passed": True, **session.provenance(),
                "model": label or model.name})
    node.user_properties.append(("edge_npu_coverage", f"{coverage:.4f}"))
    return coverage


def record_properties(node: pytest.Item, session: "EdgeSession") -> None:
    """JUnit XML properties (record_property machinery): device, provider, model hash, versions."""
    prov = session.provenance()
    present = {name for name, _ in node.user_properties}
    for key in ("device", "provider", "model_sha256", "onnxruntime", "qnn_sdk", "qnn_ep", "platform"):
        if prov.get(key) is not None and f"edge_{key}" not in present:
            node.user_properties.append((f"edge_{key}", str(prov[key])))


def record_metrics(node: pytest.Item, result: "Comparison") -> None:
    """Key metrics of a comparison as JUnit XML properties."""
    for out in result.outputs:
        for key in ("max_lsb", "max_abs", "snr_db", "topk_agreement"):
            value = getattr(out, key)
            if value is not None:
                node.user_properties.append((f"edge_{out.name}_{key}", f"{value:.6g}"))
