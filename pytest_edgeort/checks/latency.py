"""Latency: timed runs of one feed, their statistics, the speedup over CPU and the gates, re-measured
once before a gate fails (a shared machine's transient bursts must not fail a run; a real regression
fails both measurements)."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

if TYPE_CHECKING:
    from ..devices.session import EdgeSession

REMEASURE_PAUSE_S = 2.0  # let a burst on a shared machine pass before the second measurement
REMEASURE_FACTOR = 3  # the second measurement times this many times the runs of the first


@dataclass(frozen=True)
class LatencyStats:
    """Summary of timed runs in milliseconds."""

    runs: int
    min_ms: float
    p50_ms: float
    p90_ms: float
    mean_ms: float

    @classmethod
    def from_times(cls, times_ms: Sequence[float]) -> LatencyStats:
        t = sorted(float(x) for x in times_ms)
        return cls(len(t), t[0], _percentile(t, 50), _percentile(t, 90), statistics.fmean(t))

    def speedup_over(self, other: LatencyStats) -> Optional[float]:
        """How many times faster (p50) this is than ``other``; None when not measurable."""
        return other.p50_ms / self.p50_ms if self.p50_ms > 0 else None

    def to_dict(self) -> Dict[str, float]:
        return asdict(self)


def _percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of sorted values, interpolated linearly (numpy's default method)."""
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class LatencyGate:
    """A bound on one statistic: ``stat`` is ``"p50"`` (the median) or ``"p90"``; suite key ``latency_<stat>_ms``."""

    stat: str
    ms: float

    @property
    def key(self) -> str:
        return f"latency_{self.stat}_ms"

    def value(self, stats: LatencyStats) -> float:
        return getattr(stats, f"{self.stat}_ms")

    def holds(self, stats: LatencyStats) -> bool:
        return self.value(stats) <= self.ms


@dataclass(frozen=True)
class LatencyResult:
    """Timed runs of the provider under test, its speedup over the CPU provider and its gates.

    ``attempts`` holds every measurement: one when the gates held at once, two when the first broke
    a gate and a longer measurement after a pause decided (the last one always decides)."""

    attempts: Tuple[LatencyStats, ...]
    speedup_vs_cpu: Optional[float]
    gates: Tuple[LatencyGate, ...]
    simulated: bool = False

    @property
    def stats(self) -> LatencyStats:
        """The deciding measurement."""
        return self.attempts[-1]

    @property
    def broken(self) -> List[LatencyGate]:
        return [gate for gate in self.gates if not gate.holds(self.stats)]

    @property
    def passed(self) -> bool:
        return not self.broken

    @property
    def decided_by(self) -> str:
        return "first measurement" if len(self.attempts) == 1 else "re-measurement"

    def record(self) -> Dict[str, Any]:
        """The JSON record's latency fields (``latency`` is the deciding measurement)."""
        return {
            "latency": self.stats.to_dict(),
            "latency_simulated": self.simulated,
            "latency_gates": {gate.key: gate.ms for gate in self.gates},
            "latency_gate_ms": next((gate.ms for gate in self.gates if gate.stat == "p90"), None),
            "latency_attempts": [
                {**stats.to_dict(), "passed": all(gate.holds(stats) for gate in self.gates)} for stats in self.attempts
            ],
            "latency_decided_by": self.decided_by,
            "speedup_vs_cpu": self.speedup_vs_cpu,
        }

    def failure(self, label: str) -> str:
        """The one-line failure message: the broken gates, then both measurements."""
        kind = "simulated latency" if self.simulated else "latency"
        broken = ", ".join(
            f"{gate.stat} {gate.value(self.stats):.3g} ms > {gate.key} {gate.ms:g}" for gate in self.broken
        )
        measured = "; ".join(
            f"{'first' if i == 0 else 're-measured'}: p50 {s.p50_ms:.3g} ms, p90 {s.p90_ms:.3g} ms, "
            f"min {s.min_ms:.3g} ms over {s.runs} runs"
            for i, s in enumerate(self.attempts)
        )
        confirmed = " (confirmed by a re-measurement)" if len(self.attempts) > 1 else ""
        return f"{label}: {kind} {broken}{confirmed} ({measured})"


@dataclass(frozen=True)
class LatencyBudget:
    """How long one measurement may take: up to ``runs`` timed runs, stopping after ``max_s`` seconds
    in all (warm-up included; None: no limit) but not before ``min_runs`` (suite keys ``latency_runs``,
    ``latency_max_s``, ``latency_min_runs``)."""

    runs: int = 20
    max_s: Optional[float] = 10.0
    min_runs: int = 3

    def scaled(self, factor: int) -> LatencyBudget:
        return LatencyBudget(self.runs * factor, None if self.max_s is None else self.max_s * factor, self.min_runs)

    def time(self, session: EdgeSession, feed: Mapping[str, Any]) -> LatencyStats:
        times = session.time(feed, runs=self.runs, max_s=self.max_s, min_runs=min(self.min_runs, self.runs))
        return LatencyStats.from_times(times)


def measure_latency(
    session: EdgeSession,
    feed: Mapping[str, Any],
    budget: LatencyBudget,
    gates: Sequence[LatencyGate] = (),
    open_cpu: Optional[Callable[[], EdgeSession]] = None,
    simulated: bool = False,
    pause: Callable[[float], None] = time.sleep,
) -> LatencyResult:
    """Time inferences of ``feed`` on ``session`` within ``budget``; when a gate breaks, pause and
    measure again with ``REMEASURE_FACTOR`` times the runs and the time, which decides. Then time
    the CPU session ``open_cpu`` opens for the speedup."""
    attempts = [budget.time(session, feed)]
    if not all(gate.holds(attempts[0]) for gate in gates):
        pause(REMEASURE_PAUSE_S)
        attempts.append(budget.scaled(REMEASURE_FACTOR).time(session, feed))
    speedup = None
    if open_cpu is not None:
        speedup = attempts[-1].speedup_over(budget.time(open_cpu(), feed))
    return LatencyResult(tuple(attempts), speedup, tuple(gates), simulated)
