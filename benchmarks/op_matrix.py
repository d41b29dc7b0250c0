"""Op matrix time: every k-th case of the ONNX node-test corpus through ``pytest --edge-op-matrix`` on ``local``,
timed end to end, and the whole corpus extrapolated from it (the goal: <= 90 s on 2 cores, i.e. ``-n 2``).

The sample is spread over the sorted corpus, so cheap cases (unrepresentable, rejected at the capability
check) and expensive ones (compiled, run, memory-checked) are sampled in proportion. The corpus cache is
built first, outside the timing (a first run on a new onnx version adds its ~5-7 s once).

    python -m benchmarks.op_matrix [--every 8] [-n 0]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_edgeort.model.corpus import load_corpus

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--every", type=int, default=8, help="take every k-th case (default 8)")
    parser.add_argument("-n", default="0", help="pytest-xdist workers (default 0: one process)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "conftest.py").write_text("")
        _, cases = load_corpus(folder / ".edgeort-cache")
        sample = [c.name for c in cases][:: args.every]
        pattern = "^(" + "|".join(re.escape(name) for name in sample) + ")$"
        report = folder / "report.json"
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", args.n, "--edge-op-matrix"]
        command += ["--edge-op-filter", pattern, "--edge-report", str(report)]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True, env={"PYTHONPATH": str(ROOT)})
        wall = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(done.stdout[-3000:] + done.stderr[-3000:])
        records = json.loads(report.read_text())["results"]
    seconds = {}
    for record in records:
        matrix = record["op_matrix"]
        seconds.setdefault(matrix["class"], []).append(matrix["seconds"])
    case_time = sum(sum(times) for times in seconds.values())
    workers = max(1, int(args.n))
    fixed = wall - case_time / workers  # start-up, collection, workers' start, per-item pytest cost
    whole = fixed + case_time * len(cases) / len(sample) / workers
    print(f"{len(sample)} of {len(cases)} cases (every {args.every}th), -n {args.n}: {wall:.1f} s wall")
    print(f"  case time {case_time:.1f} s (sum over workers), the rest {fixed:.1f} s")
    scale = len(cases) / len(sample)
    print(f"whole corpus, extrapolated: {whole:.0f} s wall (the rest + case time x {scale:.1f} / {workers})")
    for klass, times in sorted(seconds.items(), key=lambda kv: -sum(kv[1])):
        print(
            f"  {klass:16s} {len(times):4d} cases, {sum(times):6.1f} s, {1000 * sum(times) / len(times):6.0f} ms/case"
        )


if __name__ == "__main__":
    main()
