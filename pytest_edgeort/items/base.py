"""The base of this plugin's pytest items: they request no fixtures and say so as test functions do
(``fixturenames``, ``funcargs``), because plugins such as labgrid's read those attributes of every item."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest


class FixturelessItem(pytest.Item):
    """A pytest item with the attributes other plugins expect of a test function, empty."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fixturenames: List[str] = []
        self.funcargs: Dict[str, Any] = {}
