"""Simulator lanes: one batch of a simulated session's runs spread over several worker processes, a core each.

QNN's HTP simulator (``libQnnHtp.so`` on x86-64) computes a graph on the calling thread alone, so a batch of
runs in one worker keeps one core busy however many the machine has. Measured on onnxruntime 1.32.0 +
onnxruntime-qnn 2.7.0 (QNN 2.51), magika on a 2-vCPU VM: one process 1.38 s per inference; two processes, one
per core, 1.41 s each (1.93x the throughput); two processes on one core 2.68 s each.

A batch (:meth:`~.base.WorkerSession.run_all`) of a simulated session whose runs would take :data:`LANE_MIN_S` or
more (its last run says; a session that has not run yet runs its first feed alone to know) is split in contiguous
shares: the session's own worker runs the first share, lane workers the others, each on a core of its own (the run
request names it). A lane worker is another worker process of the same device and isolation group, started on first
use and kept for the run; a lane opens the same compiled graph from the EP-context cache entry the session's worker
made, and is used only on a proven hit (created with compilation disabled), so every share runs the very graph the
session runs. Outputs come back in feed order, bit for bit what one worker gives. A session whose graph has no cache
entry (``--edge-no-ep-cache``, an EP that writes no context model) runs its batches in its own worker, as it would
without lanes.

How many: the inventory key ``simulator_workers`` (1 turns lanes off), else the device's cores divided by the
pytest processes that share the device (pytest-xdist workers, for a device without board lock), at most
:data:`MAX_LANES`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, List, Mapping, Optional, Sequence, TypeVar

import numpy as np

if TYPE_CHECKING:
    from .base import WorkerSession

LANE_MIN_S = 1.0  # a batch whose runs would take less stays in the session's worker (a lane costs ~0.2 s to start)
MAX_LANES = 4  # worker processes one batch is spread over, at most (the session's own included)

T = TypeVar("T")
Outputs = Mapping[str, np.ndarray]


def lane_count(setting: Optional[int], cpus: Optional[int], sharers: int) -> int:
    """How many worker processes a simulated batch may use: ``setting`` (the inventory's ``simulator_workers``)
    where given, else the device's ``cpus`` divided by the ``sharers`` (pytest processes driving the device)."""
    if setting is not None:
        return max(1, int(setting))
    return max(1, min(MAX_LANES, int(cpus or 1) // max(1, sharers)))


def shares(items: Sequence[T], n: int) -> List[List[T]]:
    """``items`` in ``n`` contiguous shares, in order, their sizes at most one apart (the first ones larger)."""
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for index in range(n):
        end = start + size + (index < extra)
        out.append(list(items[start:end]))
        start = end
    return out


def spread(session: WorkerSession, feeds: Sequence[Outputs], lanes: Sequence[WorkerSession]) -> List[Outputs]:
    """Run ``feeds`` over ``session`` (the first share) and its ``lanes`` (the others) at once, each on a core of its
    own; the outputs in feed order. The first error raised (the session's own, else the first lane's) is raised."""
    parts = shares(feeds, 1 + len(lanes))
    results: List[Optional[List[Outputs]]] = [None] * len(parts)
    errors: List[Optional[BaseException]] = [None] * len(parts)
    stop = threading.Event()  # the session's share failed: lanes start no further run

    def share(index: int, backend: WorkerSession) -> None:
        try:
            results[index] = [backend.run(feed, False, index)[1] for feed in parts[index] if not stop.is_set()]
        except BaseException as exc:  # handed to the caller's thread
            errors[index] = exc

    threads = [
        threading.Thread(target=share, args=(index, lane), name=f"edgeort-lane-{index}", daemon=True)
        for index, lane in enumerate(lanes, 1)
    ]
    for thread in threads:
        thread.start()
    try:
        share(0, session)
        if errors[0] is not None:
            raise errors[0]
    except BaseException as exc:
        stop.set()  # the lanes start no further run
        if not isinstance(exc, Exception):  # Ctrl-C, SIGTERM, a test's timeout: their runs in progress are not awaited
            for lane in lanes:
                lane.client.kill()  # the next batch starts a fresh lane worker
        raise
    for thread in threads:
        thread.join()
    for error in errors[1:]:
        if error is not None:
            raise error
    return [outputs for part in results for outputs in part or ()]
