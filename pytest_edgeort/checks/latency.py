"""Latency statistics from per-inference times (pure numbers)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Optional, Sequence

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Summary of timed runs in milliseconds."""

    runs: int
    min_ms: float
    p50_ms: float
    p90_ms: float
    mean_ms: float

    @classmethod
    def from_times(cls, times_ms: Sequence[float]) -> "LatencyStats":
        t = np.asarray(times_ms, dtype=np.float64)
        return cls(len(t), float(t.min()), float(np.percentile(t, 50)), float(np.percentile(t, 90)), float(t.mean()))

    def speedup_over(self, other: "LatencyStats") -> Optional[float]:
        """How many times faster (p50) this is than ``other``; None when not measurable."""
        return other.p50_ms / self.p50_ms if self.p50_ms > 0 else None

    def to_dict(self) -> Dict[str, float]:
        return asdict(self)
