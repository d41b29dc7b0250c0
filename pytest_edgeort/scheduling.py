"""The xdist controller's scheduler: work that must stay on one worker, read from the node ids.

The xdist controller collects nothing itself: it sees the workers' node ids only. An edge item's id ends in
``[<device>-<provider>]`` (plus any other parameters, joined by ``-``), so the device is read from the id, against
the devices this run selected. Two kinds of edge work stay together, as one work unit (scope) xdist hands to one
worker:

- every item of a device that takes a board lock (one worker drives a board);
- a suite's items on one device and provider (``edge_suite.toml::conformance[local-qnn-htp]``, ``::golden[...]``,
  ...): they share one session, so ``golden`` reuses what ``conformance`` computed instead of running the examples
  again in another worker's session (issue 21: no repeated inference in one run).

The scheduler is then xdist's own ``LoadGroupScheduling`` with those groups; every other item keeps its own scope
(``xdist_group`` marks, where xdist still applies them, keep theirs), so it is spread like ``load``. A run without
such work (no edge items, or only unlocked devices' marker tests) keeps xdist's own scheduler for its ``--dist``
mode: the choice is made when the first worker's collection arrives (:class:`ChosenOnCollection`). Node ids stay
as pytest makes them: nothing here depends on xdist rewriting them.
"""

from __future__ import annotations

from typing import Any, Collection, List, Optional, Sequence

from .config import MANIFEST

#: The ``--dist`` modes this scheduler replaces (``load`` is xdist's default under ``-n``).
TAKES_OVER = ("load", "loadgroup")


def device_of(nodeid: str, devices: Collection[str]) -> Optional[str]:
    """The device among ``devices`` whose name is a whole ``-``-separated run of the id's parameters
    and is followed by at least one more part (the provider); the longest such name; else None."""
    if not nodeid.endswith("]") or "[" not in nodeid:
        return None
    parts = nodeid[nodeid.rindex("[", 0, nodeid.rindex("]")) + 1 : -1].split("-")
    best: Optional[str] = None
    for device in devices:
        want = device.split("-")
        if (best is None or len(device) > len(best)) and any(
            parts[i : i + len(want)] == want for i in range(len(parts) - len(want))
        ):
            best = device
    return best


def work_unit(nodeid: str, locked: Collection[str], devices: Collection[str]) -> Optional[str]:
    """The work unit an edge item must share with others: its locked device's, else its suite's on its device and
    provider; None for an item that may go anywhere."""
    device = device_of(nodeid, locked)
    if device is not None:
        return f"edgeort device {device}"
    path, _, item = nodeid.partition("::")
    if path.rpartition("/")[2] == MANIFEST and "[" in item and device_of(nodeid, devices) is not None:
        return f"edgeort suite {path}{item[item.index('[') :]}"
    return None


def device_scheduling(config: Any, log: Any, locked: Collection[str], devices: Collection[str]) -> Any:
    """xdist's loadgroup scheduler, plus the work units of :func:`work_unit`."""
    from xdist.scheduler import LoadGroupScheduling  # loads execnet: only on the controller, when it schedules

    class DeviceScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid, locked, devices) or super()._split_scope(nodeid)

    return DeviceScheduling(config, log)


def xdist_scheduling(config: Any, log: Any) -> Any:
    """The scheduler xdist itself makes for the run's ``--dist`` mode (one of :data:`TAKES_OVER`)."""
    from xdist.scheduler import LoadGroupScheduling, LoadScheduling

    return {"load": LoadScheduling, "loadgroup": LoadGroupScheduling}[config.getvalue("dist")](config, log)


class ChosenOnCollection:
    """The run's scheduler, chosen when the first worker's collection arrives: :func:`device_scheduling` when a
    collected id belongs to a work unit, else xdist's own (:func:`xdist_scheduling`). Until then it keeps the
    nodes xdist adds; once chosen, every attribute is the chosen scheduler's."""

    def __init__(self, config: Any, log: Any, locked: Sequence[str], devices: Sequence[str]) -> None:
        self._config, self._log, self._locked, self._devices = config, log, tuple(locked), tuple(devices)
        self._nodes: List[Any] = []
        self._chosen: Any = None

    def __getattr__(self, name: str) -> Any:
        chosen = self.__dict__.get("_chosen")
        if chosen is None:
            raise AttributeError(f"{type(self).__name__}.{name}: no scheduler chosen before the first collection")
        return getattr(chosen, name)

    def add_node_collection(self, node: Any, collection: Sequence[str]) -> None:
        if self._chosen is None:
            if any(work_unit(nodeid, self._locked, self._devices) for nodeid in collection):
                self._chosen = device_scheduling(self._config, self._log, self._locked, self._devices)
            else:
                self._chosen = xdist_scheduling(self._config, self._log)
            for added in self._nodes:
                self._chosen.add_node(added)
        self._chosen.add_node_collection(node, collection)

    # what xdist may ask before the first collection
    @property
    def nodes(self) -> List[Any]:
        return list(self._nodes) if self._chosen is None else self._chosen.nodes

    @property
    def collection_is_completed(self) -> bool:
        return self._chosen is not None and self._chosen.collection_is_completed

    @property
    def tests_finished(self) -> bool:
        return self._chosen is not None and self._chosen.tests_finished

    @property
    def has_pending(self) -> bool:
        return self._chosen is None or self._chosen.has_pending

    def add_node(self, node: Any) -> None:
        if self._chosen is None:
            self._nodes.append(node)
        else:
            self._chosen.add_node(node)

    def remove_node(self, node: Any) -> Optional[str]:
        if self._chosen is not None:
            return self._chosen.remove_node(node)
        if node not in self._nodes:
            raise KeyError(node)  # as xdist's own schedulers do for a node they do not have
        self._nodes.remove(node)
        return None
