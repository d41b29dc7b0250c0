"""SIGTERM (CI cancellation, ``timeout``, Kubernetes) handled like Ctrl-C in runs with edge tests.

pytest finishes an interrupted session: the JSON report and JUnit XML are written with what finished,
``pytest_unconfigure`` stops every worker (killing those that do not stop within a short grace) and
the board locks are released. A SIGTERM handler someone else installed is left alone, and runs
without edge tests keep the default (the plugin must not change unrelated runs).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Optional


def interrupt_on_sigterm() -> bool:
    """Make SIGTERM raise KeyboardInterrupt, if it still has its default handler and this is the main
    thread; True if installed (or already ours)."""
    current = signal.getsignal(signal.SIGTERM)
    if current is _raise_interrupt:
        return True
    if threading.current_thread() is not threading.main_thread() or current is not signal.SIG_DFL:
        return False
    signal.signal(signal.SIGTERM, _raise_interrupt)
    return True


def _raise_interrupt(signum: int, frame: Optional[FrameType]) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise KeyboardInterrupt("SIGTERM")
