"""Which feed produced the output arrays a session returned, for as long as the caller keeps them.

``edge_compare`` derives what it judges deep outputs against (the float model's outputs: the yardstick) and
what a failure's diagnosis bisects from the inputs of the outputs under test. A test that runs a whole data
set first and compares afterwards holds many outputs at once, and only the feed that made each is right
for it: the session's last feed belongs to the last sample only.
"""

from __future__ import annotations

import weakref
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from ..model.inputs import Feed


class Origins:
    """Feeds by the identity of the output arrays they produced (weakly held: an entry goes with its array),
    and the last run's outputs, matched by value (a copy of them, as a test may pass)."""

    def __init__(self) -> None:
        self._feeds: Dict[int, Tuple[weakref.ref, Feed]] = {}
        self._last: Optional[Tuple[Mapping[str, np.ndarray], Feed]] = None

    def add(self, outputs: Mapping[str, np.ndarray], feed: Feed) -> None:
        """``outputs`` (one run's arrays, as returned to the caller) came from ``feed``."""
        feeds = self._feeds
        for array in outputs.values():
            key = id(array)

            def forget(ref: weakref.ref, key: int = key) -> None:
                if feeds.get(key, (None,))[0] is ref:
                    del feeds[key]

            feeds[key] = (weakref.ref(array, forget), feed)
        self._last = (dict(outputs), feed)

    def feed_of(self, outputs: Mapping[str, Any]) -> Optional[Feed]:
        """The feed whose run returned every array of ``outputs`` (a subset of one run's outputs counts), or
        whose last run returned arrays equal to them; None for arrays of other origin (a test's own)."""
        found: Optional[Feed] = None
        for array in outputs.values():
            entry = self._feeds.get(id(array))
            if entry is None or entry[0]() is not array or (found is not None and entry[1] is not found):
                return self._last_feed(outputs)
            found = entry[1]
        return found

    def _last_feed(self, outputs: Mapping[str, Any]) -> Optional[Feed]:
        if self._last is None or not outputs:
            return None
        last, feed = self._last
        equal = (name in last and np.array_equal(last[name], array, equal_nan=True) for name, array in outputs.items())
        return feed if all(equal) else None
