"""The pytest process's instructions per edge test, counted by valgrind: a per-test change to the plugin, measured.

On a shared VM the time of a whole pytest run moves by +-30 % from run to run (the CPU's speed, its neighbours), so a
change worth 2-5 % of a test's host work cannot be told apart by timing, even alternated (docs/benchmarks.md, session
21). An instruction count hardly moves: the benchmark's test file of ``overhead.py`` (a u8 QDQ conv/matmul model, QNN
HTP simulator vs CPU on the local device) runs under ``valgrind --tool=cachegrind --cache-sim=no`` with ``--small``
and with ``--large`` tests, and (count at large - count at small) / (large - small) is what each further test costs
the pytest process: its fixtures, ``edge_session.run``'s host side, ``edge_compare``, the records and report hooks,
and pytest's own work per test. The worker is another process, not counted (its inference is the same code either
way). ``--baseline DIR`` (another checkout, e.g. ``git worktree add /tmp/old <commit>``) is counted the same way,
alternated ``--repeats`` times with this one, after one uncounted run of each (it writes the bytecode cache, ~10
billion instructions, the start hint and the EP-context cache); what still moves between repeats of one checkout
(timing-dependent paths: how many reads a reply takes, ~+-3 %) is printed as the spread. ``overhead.py``'s
hand-written test with its two sessions in a worker process of its own (started with ``spawn``, so valgrind does not
follow it) is counted the same way: the same test's host work without the plugin, the bar the plugin's is printed
against.

Needs ``valgrind`` (Debian: ``apt-get install valgrind``); a run of 250 tests takes ~1 min under it.

    python -m benchmarks.host_instructions [--small 50] [--large 250] [--repeats 1] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Dict, List, Optional

from benchmarks.overhead import INDENTED_SESSIONS, PLUGIN_TEST, WORKER_TEST
from tests.support.models import conv_matmul_qdq  # (same small u8 QDQ conv/matmul model as the tests)

PHASES_STUB = "NPU_RUNS = []\n"  # what the test file imports from overhead.py's phase timer
EDGE_TESTS = "int(__import__('os').environ['EDGE_TESTS'])"  # the test files' parametrize range, from the run
HAND_FILE = "test_hand.py"  # overhead.py's hand-written test with its own worker process


def instructions(folder: Path, tests: int, checkout: Optional[Path], test_file: str = "test_edge.py") -> int:
    """Instructions valgrind counts in a pytest run of the first ``tests`` tests of ``test_file`` (the plugin from
    ``checkout``)."""
    env = dict(os.environ, PYTHONHASHSEED="0", CI="true")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    env["PYTHONPATH"] = os.pathsep.join([str(checkout), str(folder)] if checkout is not None else [str(folder)])
    env["EDGE_TESTS"] = str(tests)  # the test file's parametrize range
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", sys.executable]
    cmd += ["-m", "pytest", "-q", "-p", "no:cacheprovider", test_file]
    result = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, check=False)
    found = re.search(r"I\s+refs:\s+([\d,]+)", result.stderr)
    if result.returncode != 0 or found is None:
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise SystemExit(f"host_instructions: the run of {tests} tests failed: " + " | ".join(tail))
    return int(found.group(1).replace(",", ""))


def per_test(folder: Path, small: int, large: int, checkout: Optional[Path], test_file: str = "test_edge.py") -> float:
    """Instructions each further test of ``test_file`` costs the pytest process."""
    counts = [instructions(folder, n, checkout, test_file) for n in (large, small)]
    return (counts[0] - counts[1]) / (large - small)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=50)
    parser.add_argument("--large", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout, counted alternated")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("host_instructions: needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="edgeort-instructions-") as tmp:
        folder = Path(tmp)
        model = conv_matmul_qdq(folder)
        test = PLUGIN_TEST.format(model=model, n=EDGE_TESTS)
        (folder / "test_edge.py").write_text(test)
        (folder / "phases.py").write_text(PHASES_STUB)
        hand = WORKER_TEST.format(model=model, n=EDGE_TESTS, context="spawn", sessions=INDENTED_SESSIONS)
        (folder / HAND_FILE).write_text(textwrap.dedent(hand))
        checkouts: Dict[str, Optional[Path]] = {"this checkout": None}
        if args.baseline is not None:
            checkouts["--baseline"] = args.baseline.resolve()
        counts: Dict[str, List[float]] = {name: [] for name in checkouts}
        hand_counts: List[float] = []
        for checkout in checkouts.values():  # untimed: the bytecode cache, the start hint, the EP-context cache
            instructions(folder, args.small, checkout)
        instructions(folder, args.small, None, HAND_FILE)
        for _ in range(args.repeats):
            for name, checkout in checkouts.items():
                counts[name].append(per_test(folder, args.small, args.large, checkout))
            hand_counts.append(per_test(folder, args.small, args.large, None, HAND_FILE))
    print(
        f"pytest process instructions per edge test (valgrind, ({args.large} tests - {args.small}) / "
        f"{args.large - args.small}; {args.repeats} alternated repeat(s)):"
    )
    for name, values in counts.items():
        spread = f", repeats {min(values) / 1e6:.2f}-{max(values) / 1e6:.2f} M" if len(values) > 1 else ""
        print(f"  {name:14s}: {statistics.median(values) / 1e6:6.2f} M{spread}")
    hand, ours = statistics.median(hand_counts), statistics.median(counts["this checkout"])
    print(
        f"  hand-written, own worker: {hand / 1e6:6.2f} M (the same test without the plugin, its two sessions in a "
        f"spawned worker process); this checkout / it: {ours / hand:.2f}x"
    )
    if args.baseline is not None:
        ratio = statistics.median(counts["this checkout"]) / statistics.median(counts["--baseline"])
        print(f"  this checkout / --baseline: {ratio:.3f}x")


if __name__ == "__main__":
    main()
