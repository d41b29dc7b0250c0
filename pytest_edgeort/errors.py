"""The errors users see, all :class:`EdgeError`. Each carries ONE readable line naming the file/key/device at fault.

(The board package keeps its own few error kinds: it runs on boards with the standard library only.)

Kept free of heavy imports so the plugin can load without numpy/onnx (unrelated runs stay fast).
"""

from __future__ import annotations

from typing import Any, Optional


class EdgeError(Exception):
    """Base class: the message is the whole story, shown without a traceback."""


class InventoryError(EdgeError, ValueError):
    """The device inventory is malformed (names the file, the device, the key and the expectation)."""


class ProviderError(EdgeError, ValueError):
    """A provider name or option is invalid (names what was expected)."""


class SuiteError(EdgeError, ValueError):
    """An ``edge_suite.toml`` is malformed (names the file, the key and what was expected)."""


class MissingPackage(EdgeError):
    """A ``pkg:`` model lives in a package that is not installed (message has the pip command)."""


class ModelError(EdgeError, ValueError):
    """A model file is missing, unreadable or unusable as given (names the file)."""


class InputError(EdgeError, ValueError):
    """Inputs cannot be generated or loaded as asked (names the model/file and input)."""


class DeviceUnavailable(EdgeError):
    """A device cannot be reached or cannot run workers (names the device)."""


class DeviceFault(DeviceUnavailable):
    """A device problem that is no outage: the test fails, with or without ``--edge-strict``."""


class SchedulingError(DeviceFault):
    """Two pytest-xdist workers of one run reached for the same locked board."""


class HostKeyChanged(DeviceFault):
    """The board's SSH host key differs from known_hosts: a security event, not a missing board."""


class HostKeyRefused(EdgeError):
    """The board's SSH host key is not in known_hosts (raised from inside paramiko's connect)."""


class WorkerError(EdgeError):
    """A device refused or failed a session request; ``kind`` says how (create, run, missing-provider,
    ... as in :class:`pytest_edgeort.board.wire.Kind`). Raised by session backends of every kind."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class WorkerDied(EdgeError):
    """A session backend is gone (worker crash or kill, dropped connection) or stopped answering."""


class EdgeSessionError(EdgeError):
    """A session could not be created or run (device, provider, model, cause)."""

    def __init__(self, message: str, placement: Optional[Any] = None) -> None:
        super().__init__(message)
        self.placement = placement


class SessionLost(EdgeSessionError):
    """The session's worker died or was stopped during the request (a crash, named by its signal; a hang
    past ``command_timeout``; a lost connection): the next request starts a fresh worker."""


class StaleOutputs(EdgeSessionError):
    """Outputs depend on memory left by earlier graphs (the memory-state check of the first run)."""


class ReportError(EdgeError):
    """A report file cannot be written (names the path)."""


class ComparisonError(AssertionError):
    """``edge_compare`` outside tolerance: an AssertionError (``pytest.raises(AssertionError)`` and
    ``except AssertionError`` work, as with ``numpy.testing``), with the :class:`Comparison` attached."""

    def __init__(self, message: str, comparison: Any) -> None:
        super().__init__(message)
        self.comparison = comparison


ComparisonError.__module__ = "pytest_edgeort"  # its public name: pytest prints "pytest_edgeort.ComparisonError"
