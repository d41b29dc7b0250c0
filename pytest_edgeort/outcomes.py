"""Turning expected problems into one-line pytest outcomes: skip (or fail when strict) and fail, never with
an exception chain ("during handling of the above exception") in the report."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, NoReturn, Optional, Tuple, Type, Union

import pytest

from .config.providers import resolve_provider
from .errors import DeviceFault, DeviceUnavailable, EdgeError, ProviderError
from .run import EdgeRun

if TYPE_CHECKING:
    from .devices.session import EdgeSession


def fail(message: str) -> NoReturn:
    """Fail the test with one line (no traceback, no exception chain, also when called in an ``except``)."""
    __tracebackhide__ = True
    raise pytest.fail.Exception(message, pytrace=False) from None


def skip(message: str) -> NoReturn:
    """Skip the test; ``-rs`` names the test, not this file."""
    __tracebackhide__ = True
    raise pytest.skip.Exception(message, _use_item_location=True) from None


def unavailable(run: Optional[EdgeRun], message: str) -> NoReturn:
    """Skip, or fail under --edge-strict, because a device/provider/package/golden is missing."""
    __tracebackhide__ = True
    if run is not None and run.options.strict:
        fail(f"{message} [--edge-strict]")
    skip(message)


def raise_outcome(run: Optional[EdgeRun], error: BaseException, skip: Tuple[Type[BaseException], ...] = ()) -> NoReturn:
    """The one-line outcome of an expected problem: a device that is unavailable or an error of a ``skip``
    kind skips (fails under --edge-strict); a device fault (split board, changed host key) and everything
    else fail."""
    __tracebackhide__ = True
    if isinstance(error, skip) or (isinstance(error, DeviceUnavailable) and not isinstance(error, DeviceFault)):
        unavailable(run, str(error))
    fail(str(error))


@contextlib.contextmanager
def outcome_of(
    *errors: Type[BaseException], run: Optional[EdgeRun] = None, skip: Tuple[Type[BaseException], ...] = ()
) -> Iterator[None]:
    """``with outcome_of(ValueError): ...``: an exception of ``errors`` in the block becomes its one-line
    outcome (:func:`raise_outcome`), without the exception chain."""
    __tracebackhide__ = True
    try:
        yield
    except errors as exc:
        raise_outcome(run, exc, skip)


def require_provider(run: EdgeRun, device: str, provider: str) -> None:
    """Skip (fail when strict) unless ``device`` is reachable and has ``provider``; a device fault (a split
    board, a changed host key) is never an outage to skip."""
    with outcome_of(ProviderError, DeviceUnavailable, run=run):
        missing = run.device(device).missing_provider(resolve_provider(provider))
    if missing:
        unavailable(run, missing)


def skip_on_hosted(run: EdgeRun, device: str, what: str, why: str) -> None:
    """Skip ``what`` on a device whose runs are hosted jobs (AI Hub), saying ``why``; a device that cannot be
    reached is its usual outcome (skip, fail under --edge-strict)."""
    __tracebackhide__ = True
    with outcome_of(EdgeError, run=run):
        found = run.device(device)
    if found.capabilities.jobs:
        skip(f"{what} does not run on device {device!r} (kind {found.kind.name}, runs are hosted jobs): {why}")


def open_session(
    run: EdgeRun,
    device: str,
    model: Path,
    provider: str,
    options: Optional[Mapping[str, Any]] = None,
    cpu_fallback: bool = True,
    name: Optional[Union[Path, str]] = None,
) -> EdgeSession:
    """A cached session (named ``name``, the user's model, where ``model`` is a prepared or shaped copy),
    turning every expected problem into one readable skip/fail line."""
    require_provider(run, device, provider)
    with outcome_of(EdgeError, run=run):
        return run.session(device, model, provider, options, cpu_fallback, name)
