"""Turning expected problems into one-line pytest outcomes: skip (or fail when strict) and fail."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, NoReturn, Optional

import pytest

from .config.providers import resolve_provider
from .errors import DeviceFault, DeviceUnavailable, EdgeError, ProviderError
from .run import EdgeRun

if TYPE_CHECKING:
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
    run: EdgeRun,
    device: str,
    model: Path,
    provider: str,
    options: Optional[Mapping[str, Any]] = None,
    cpu_fallback: bool = True,
) -> EdgeSession:
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
