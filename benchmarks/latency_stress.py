"""Latency gates under load: the example suites' latency items run N times while every core is busy.

A gate that fails a healthy model on a shared CI runner blocks every merge, so the example suites'
gates must hold under a CPU hog on every core. This script starts one busy-looping process per core
(at the same priority as the tests), runs `pytest -k latency` over the gated example suites N times
(each run a fresh pytest: worker start, session creation, timed runs), and prints per suite how many
items failed, how often the re-measurement decided, and the first measurement's p50/p90 spread, the
figures the suites' gates are set from.

    python -m benchmarks.latency_stress [--runs 30] [--hogs N] [--suite example_suites/digits_cnn ...]

Exits non-zero when any latency item failed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List

from pytest_edgeort.config.suite import load_suite

ROOT = Path(__file__).resolve().parents[1]
HOG_LIMIT_S = 3600  # a hog stops by itself after this, whatever happens to this script


def _hog(limit_s: float) -> None:
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        pass


def gated_suites() -> List[Path]:
    """The example suites whose latency item has a gate."""
    return sorted(p.parent for p in (ROOT / "example_suites").glob("*/edge_suite.toml") if load_suite(p).latency_gates)


def _spread(values: List[float]) -> str:
    return f"{min(values):.3g} / {statistics.median(values):.3g} / {max(values):.3g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="pytest runs of the latency items (default 30)")
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 1, help="busy processes (default: one per core)")
    parser.add_argument("--suite", action="append", type=Path, help="suite folder (default: every gated example)")
    args = parser.parse_args()
    suites = args.suite or gated_suites()
    hogs = [multiprocessing.Process(target=_hog, args=(HOG_LIMIT_S,), daemon=True) for _ in range(args.hogs)]
    for hog in hogs:
        hog.start()
    outcomes: Dict[str, List[str]] = defaultdict(list)
    first: Dict[str, List[dict]] = defaultdict(list)
    remeasured: Dict[str, int] = defaultdict(int)
    gates: Dict[str, dict] = {}
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "r.json"
            for n in range(args.runs):
                cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-k", "latency"]
                cmd += [str(s) for s in suites] + [f"--edge-report={report}"]
                subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
                for rec in json.loads(report.read_text())["results"]:
                    name = Path(rec["suite"]).parent.name
                    outcomes[name].append("passed" if rec.get("passed") else "failed")
                    first[name].append(rec["latency_attempts"][0])
                    remeasured[name] += rec["latency_decided_by"] != "first measurement"
                    gates[name] = rec.get("latency_gates") or {}
                print(
                    f"run {n + 1}/{args.runs}: {sum(o.count('failed') for o in outcomes.values())} failed so far",
                    flush=True,
                )
    finally:
        for hog in hogs:
            hog.terminate()
    load = f"{len(hogs)} CPU hogs on {os.cpu_count()} cores"
    print(f"\n{args.runs} runs of the latency items under {load}, {time.monotonic() - started:.0f} s")
    print(
        f"{'suite':20s} {'failed':>8s} {'re-measured':>12s}  {'first p50 ms min/med/max':>26s}  "
        f"{'first p90 ms min/med/max':>26s}  gates"
    )
    failed = 0
    for name in sorted(outcomes):
        bad = outcomes[name].count("failed")
        failed += bad
        print(
            f"{name:20s} {bad:>4d}/{len(outcomes[name]):<3d} {remeasured[name]:>12d}  "
            f"{_spread([a['p50_ms'] for a in first[name]]):>26s}  {_spread([a['p90_ms'] for a in first[name]]):>26s}  "
            f"{gates[name]}"
        )
    print(f"failed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
