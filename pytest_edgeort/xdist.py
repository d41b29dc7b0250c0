"""pytest-xdist scheduling per device: a locked board's items stay on one worker, the rest spread.

The xdist controller collects nothing itself: it sees the workers' node ids only. An edge item's
id ends in ``[<device>-<provider>]`` (plus any other parameters, joined by ``-``), so the device is
read from the id, against the devices this run selected. The scheduler is xdist's own
``LoadGroupScheduling`` with one more kind of group: every item of a device that takes a board lock
forms one work unit (scope), which xdist hands to one worker; every other item keeps its own scope
(``xdist_group`` marks, where xdist still applies them, keep theirs), so it is spread like ``load``.
Node ids stay as pytest makes them: nothing here depends on xdist rewriting them.
"""
from __future__ import annotations

from typing import Any, Collection, Optional

from xdist.scheduler import LoadGroupScheduling  # imported only by the xdist controller's hook

#: The ``--dist`` modes this scheduler replaces (``load`` is xdist's default under ``-n``).
TAKES_OVER = ("load", "loadgroup")


def device_of(nodeid: str, devices: Collection[str]) -> Optional[str]:
    """The device among ``devices`` whose name is a whole ``-``-separated run of the id's parameters
    and is followed by at least one more part (the provider); the longest such name; else None."""
    if not nodeid.endswith("]") or "[" not in nodeid:
        return None
    parts = nodeid[nodeid.rindex("[", 0, nodeid.rindex("]")) + 1:-1].split("-")
    best: Optional[str] = None
    for device in devices:
        want = device.split("-")
        if (best is None or len(device) > len(best)) and any(
                parts[i:i + len(want)] == want for i in range(len(parts) - len(want))):
            best = device
    return best


class DeviceScheduling(LoadGroupScheduling):
    """xdist's loadgroup, plus one work unit per device in ``locked``."""

    def __init__(self, config: Any, log: Any, locked: Collection[str]) -> None:
        super().__init__(config, log)
        self.locked = tuple(locked)

    def _split_scope(self, nodeid: str) -> str:
        device = device_of(nodeid, self.locked)
        return f"edgeort device {device}" if device is not None else super()._split_scope(nodeid)
