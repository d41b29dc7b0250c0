"""Latency: timed runs of one feed, their statistics, the speedup over CPU and the p90 gate."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Mapping, Optional, Sequence

import numpy as np

if TYPE_CHECKING:
    from ..devices.session import EdgeSession


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
        t = np.asarray(times_ms, dtype=np.float64)
        return cls(len(t), float(t.min()), float(np.percentile(t, 50)), float(np.percentile(t, 90)), float(t.mean()))

    def speedup_over(self, other: LatencyStats) -> Optional[float]:
        """How many times faster (p50) this is than ``other``; None when not measurable."""
        return other.p50_ms / self.p50_ms if self.p50_ms > 0 else None

    def to_dict(self) -> Dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class LatencyResult:
    """Timed runs of the provider under test, its speedup over the CPU provider and the gate it had."""

    stats: LatencyStats
    speedup_vs_cpu: Optional[float]
    gate_ms: Optional[float]

    @property
    def passed(self) -> bool:
        return self.gate_ms is None or self.stats.p90_ms <= self.gate_ms

    def failure(self, label: str) -> str:
        """The one-line failure message."""
        s = self.stats
        return (
            f"{label}: latency p90 {s.p90_ms:.3g} ms > latency_p90_ms {self.gate_ms:g} "
            f"(p50 {s.p50_ms:.3g} ms, min {s.min_ms:.3g} ms over {s.runs} runs)"
        )


def measure_latency(
    session: EdgeSession,
    feed: Mapping[str, Any],
    runs: int,
    gate_ms: Optional[float],
    open_cpu: Optional[Callable[[], EdgeSession]] = None,
) -> LatencyResult:
    """Time ``runs`` inferences of ``feed`` on ``session``, then on the session ``open_cpu`` opens (the speedup)."""
    stats = LatencyStats.from_times(session.time(feed, runs=runs))
    speedup = None
    if open_cpu is not None:
        speedup = stats.speedup_over(LatencyStats.from_times(open_cpu().time(feed, runs=runs)))
    return LatencyResult(stats, speedup, gate_ms)
