"""JUnit XML properties of edge tests (pytest's ``record_property`` machinery): ``edge_<name>`` pairs."""
from __future__ import annotations

from typing import Tuple

import pytest


def record_identity(item: pytest.Item, target: Tuple[str, str]) -> None:
    """``edge_device`` and ``edge_provider``, on every edge test, also one that failed or skipped
    before any session existed: CI groups results by device and provider."""
    present = {name for name, _ in item.user_properties}
    for name, value in zip(("edge_device", "edge_provider"), target):
        if name not in present:
            item.user_properties.append((name, value))


def record_error(item: pytest.Item, line: str) -> None:
    """``edge_error``: the one line that says why a phase of the test failed."""
    item.user_properties.append(("edge_error", line))
