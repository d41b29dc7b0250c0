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


def measure_latency(
    session: EdgeSession,
    feed: Mapping[str, Any],
    runs: int,
    gates: Sequence[LatencyGate] = (),
    open_cpu: Optional[Callable[[], EdgeSession]] = None,
    simulated: bool = False,
    pause: Callable[[float], None] = time.sleep,
) -> LatencyResult:
    """Time ``runs`` inferences of ``feed`` on ``session``; when a gate breaks, pause and time
    ``REMEASURE_FACTOR`` times as many runs, which decide. Then time the CPU session ``open_cpu``
    opens for the speedup."""
    attempts = [LatencyStats.from_times(session.time(feed, runs=runs))]
    if not all(gate.holds(attempts[0]) for gate in gates):
        pause(REMEASURE_PAUSE_S)
        attempts.append(LatencyStats.from_times(session.time(feed, runs=runs * REMEASURE_FACTOR)))
    speedup = None
    if open_cpu is not None:
        speedup = attempts[-1].speedup_over(LatencyStats.from_times(open_cpu().time(feed, runs=runs)))
    return LatencyResult(tuple(attempts), speedup, tuple(gates), simulated)
