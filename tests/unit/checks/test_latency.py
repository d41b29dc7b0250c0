"""The latency gate: a burst in one measurement is re-measured, a real regression fails both, every
measurement is recorded, and the median gate ignores what only the tail saw."""

from __future__ import annotations

from typing import List

import pytest

from pytest_edgeort.checks.latency import (
    REMEASURE_FACTOR,
    REMEASURE_PAUSE_S,
    LatencyBudget,
    LatencyGate,
    measure_latency,
)

TWENTY = LatencyBudget(runs=20)


class ScriptedTimings:
    """Plays back one list of per-run latencies per ``time`` call (the worker's timed runs)."""

    def __init__(self, *measurements: List[float]) -> None:
        self.measurements = list(measurements)
        self.calls: List[int] = []

    def time(self, feed, runs, max_s=None, min_runs=1):
        self.calls.append(runs)
        times = self.measurements.pop(0)
        return times[:runs] if len(times) >= runs else (times * runs)[:runs]


QUIET = [1.0] * 20
BURST = [1.0] * 17 + [20.0, 25.0, 30.0]  # 3 slow runs of 20: p90 20.5 ms, the failure
SLOW = [15.0] * 20


def test_a_burst_in_the_first_measurement_is_re_measured_and_passes():
    pauses: List[float] = []
    timings = ScriptedTimings(BURST, QUIET)
    result = measure_latency(timings, {}, TWENTY, [LatencyGate("p90", 10.0)], pause=pauses.append)
    assert result.passed
    assert pauses == [REMEASURE_PAUSE_S] and timings.calls == [20, 20 * REMEASURE_FACTOR]
    record = result.record()
    assert record["latency_decided_by"] == "re-measurement"
    assert [a["passed"] for a in record["latency_attempts"]] == [False, True]
    assert record["latency_attempts"][0]["p90_ms"] > 10 and record["latency"]["p90_ms"] == 1.0
    assert record["latency"]["runs"] == 20 * REMEASURE_FACTOR


def test_a_real_regression_fails_both_measurements_and_the_message_shows_both():
    timings = ScriptedTimings(SLOW, SLOW)
    result = measure_latency(timings, {}, TWENTY, [LatencyGate("p90", 10.0)], simulated=True, pause=lambda s: None)
    assert not result.passed and len(result.attempts) == 2
    assert result.failure("m.onnx on local/qnn-htp") == (
        "m.onnx on local/qnn-htp: simulated latency p90 15 ms > latency_p90_ms 10 (confirmed by a re-measurement) "
        "(first: p50 15 ms, p90 15 ms, min 15 ms over 20 runs; "
        "re-measured: p50 15 ms, p90 15 ms, min 15 ms over 60 runs)"
    )


def test_gates_that_hold_measure_once_without_a_pause():
    pauses: List[float] = []
    timings = ScriptedTimings(QUIET)
    result = measure_latency(timings, {}, TWENTY, [LatencyGate("p90", 10.0)], pause=pauses.append)
    assert result.passed and result.decided_by == "first measurement" and not pauses and timings.calls == [20]


def test_the_median_gate_ignores_a_tail_burst_that_the_p90_gate_sees():
    median = measure_latency(ScriptedTimings(BURST), {}, TWENTY, [LatencyGate("p50", 10.0)], pause=lambda s: None)
    assert median.passed and len(median.attempts) == 1
    both = [LatencyGate("p50", 10.0), LatencyGate("p90", 10.0)]
    tail = measure_latency(ScriptedTimings(BURST, BURST), {}, TWENTY, both, pause=lambda s: None)
    assert [g.key for g in tail.broken] == ["latency_p90_ms"]
    assert tail.record()["latency_gates"] == {"latency_p50_ms": 10.0, "latency_p90_ms": 10.0}


def test_without_a_gate_nothing_is_re_measured_and_the_speedup_uses_the_deciding_measurement():
    timings = ScriptedTimings(BURST)
    cpu = ScriptedTimings([4.0] * 20)
    result = measure_latency(timings, {}, TWENTY, (), open_cpu=lambda: cpu, pause=pytest.fail)
    assert result.passed and result.speedup_vs_cpu == pytest.approx(4.0)
