"""Plugin overhead: N QNN-HTP-vs-CPU comparisons through pytest-edgeort vs hand-written ORT code.

Four ways to do the same work end to end, each in a fresh process (python start, imports, session
creation, N x (generate input, run on QNN HTP, run on CPU, compare)), alternated and repeated so
machine noise hits all alike:

- plain:     a hand-written onnxruntime script (no pytest at all);
- pytest:    the same hand-written onnxruntime code as N parametrized pytest tests (what teams write
             before they adopt a plugin: module-scoped sessions, an SNR assert);
- worker:    the same hand-written tests with the two sessions in a worker process of their own (``fork``, a
             ``multiprocessing`` pipe): the isolation DESIGN.md asks of every session, and nothing else;
- edgeort:   the same N tests with pytest-edgeort's markers and fixtures (worker process, placement
             check, full comparison report, records for the JSON report).

Every process runs with Python's bytecode cache on (in a scratch ``PYTHONPYCACHEPREFIX``, after one untimed
run of each command), as an installed package has it: pip byte-compiles what it installs, and an environment
that sets ``PYTHONDONTWRITEBYTECODE`` (this one does) would otherwise time compiling the plugin's and the test
files' sources on every run.

The untimed first run of each command also leaves the plugin's start hint (``.edgeort-cache/ahead.json``: the devices a
command ran edge tests on, whose workers its next run starts before collecting), as a project's earlier runs of the
command do; the column "no hint" deletes it before each of its runs, as a command's first run (a fresh clone in CI).
The target (plugin within 1.05x, issue 21) is edgeort / pytest: the cost the plugin adds to a pytest run, judged by
the median of the rounds' ratios (a round runs every command once, back to back, so its ratio sees one phase of the
machine's speed; the ratio of the medians is printed next to it). The
hand-written runs' in-process simulator runs at one of two speeds (where its helper threads land), so the median's
ratio is printed next to the strict one, against the fastest hand-written run.
edgeort / plain is printed too; it also contains pytest's own per-test cost. Runs of 1 comparison, alternated
with the others, split that cost into a fixed part (a run of 1) and the cost of each further comparison.
``--baseline DIR`` (another checkout, e.g. a ``git worktree`` of an earlier commit) runs that checkout's plugin as
one more column, alternated with the rest: a change to the plugin measured side by side in one run.
A run of one plain test (no edge marker), with the plugin installed and with ``-p no:edgeort``, shows what the
plugin costs pytest runs that do not use it (DESIGN.md: it must not slow them). One more run of each N-test file,
with a phase timer (``-p phases``), splits a test's time into pytest's phases and the NPU inference inside it: where
the plugin's cost per test is, and which of its two speeds the in-process simulator of the hand-written tests had.

    python -m benchmarks.overhead [--n 200] [--repeats 3] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from pytest_edgeort.run import CACHE_DIR
from pytest_edgeort.starthint import FILE as HINT_FILE
from pytest_edgeort.starthint import remember
from tests.support.models import conv_matmul_qdq  # (same small u8 QDQ conv/matmul model as the tests)

#: the two sessions the hand-written code opens (a QNN HTP one without CPU fallback, a CPU one) from ``MODEL``: the
#: plain script's, and (indented, ``{sessions}``) ``HAND_TEST``'s fixture's and ``WORKER_TEST``'s worker process's
SESSIONS = """
ort.register_execution_provider_library("QNNExecutionProvider", onnxruntime_qnn.get_library_path())
so = ort.SessionOptions()
so.add_provider_for_devices([d for d in ort.get_ep_devices() if d.ep_name == "QNNExecutionProvider"],
                            {"backend_type": "htp"})
npu = ort.InferenceSession(MODEL, sess_options=so)
npu.disable_fallback()
cpu = ort.InferenceSession(MODEL, providers=["CPUExecutionProvider"])
"""
INDENTED_SESSIONS = textwrap.indent(SESSIONS.strip("\n"), "    ")

PLAIN = (
    """
import sys
import numpy as np
import onnxruntime as ort
import onnxruntime_qnn

MODEL, n = sys.argv[1], int(sys.argv[2])
"""
    + SESSIONS
    + """failures = 0
for i in range(n):
    x = np.random.default_rng(i).random((1, 3, 16, 16), dtype=np.float32)
    a, = npu.run(None, {"x": x})
    e, = cpu.run(None, {"x": x})
    err = a.astype(np.float64) - e
    snr = 10 * np.log10(np.sum(e.astype(np.float64) ** 2) / max(np.sum(err ** 2), 1e-30))
    failures += snr < 15
print("failures", failures)
sys.exit(1 if failures else 0)
"""
)

HAND_TEST = """
import time

import numpy as np
import onnxruntime as ort
import onnxruntime_qnn
import pytest
from phases import NPU_RUNS

MODEL = r"{model}"

@pytest.fixture(scope="module")
def sessions():
{sessions}
    return npu, cpu

@pytest.mark.parametrize("i", range({n}))
def test_matches_cpu(i, sessions):
    npu, cpu = sessions
    x = {{"x": np.random.default_rng(i).random((1, 3, 16, 16), dtype=np.float32)}}
    start = time.perf_counter()
    a, = npu.run(None, x)
    NPU_RUNS.append(time.perf_counter() - start)
    e, = cpu.run(None, x)
    err = a.astype(np.float64) - e
    assert 10 * np.log10(np.sum(e.astype(np.float64) ** 2) / max(np.sum(err ** 2), 1e-30)) >= 15
"""

PLUGIN_TEST = """
import time

import numpy as np
import pytest
from phases import NPU_RUNS

@pytest.mark.edge_model(r"{model}")
@pytest.mark.edge_providers("qnn-htp")
@pytest.mark.parametrize("i", range({n}))
def test_matches_cpu(i, edge_session, edge_reference, edge_compare):
    x = {{"x": np.random.default_rng(i).random((1, 3, 16, 16), dtype=np.float32)}}
    start = time.perf_counter()
    actual = edge_session.run(x)
    NPU_RUNS.append(time.perf_counter() - start)
    edge_compare(actual, edge_reference.run(x))
"""

#: ``context``: how multiprocessing starts the worker (``fork`` here; ``spawn`` where valgrind must not follow it)
WORKER_TEST = """
import multiprocessing
import time

import numpy as np
import pytest
from phases import NPU_RUNS

MODEL = r"{model}"


def serve(conn):
    import onnxruntime as ort
    import onnxruntime_qnn

{sessions}
    conn.send("ready")
    for x in iter(conn.recv, None):
        start = time.perf_counter()
        a, = npu.run(None, x)
        npu_s = time.perf_counter() - start
        e, = cpu.run(None, x)
        conn.send((a, e, npu_s))

@pytest.fixture(scope="module")
def worker():
    context = multiprocessing.get_context("{context}")
    here, there = context.Pipe()
    proc = context.Process(target=serve, args=(there,), daemon=True)
    proc.start()
    assert here.recv() == "ready"
    yield here
    here.send(None)
    proc.join()

@pytest.mark.parametrize("i", range({n}))
def test_matches_cpu(i, worker):
    worker.send({{"x": np.random.default_rng(i).random((1, 3, 16, 16), dtype=np.float32)}})
    a, e, npu_s = worker.recv()
    NPU_RUNS.append(npu_s)
    err = a.astype(np.float64) - e
    assert 10 * np.log10(np.sum(e.astype(np.float64) ** 2) / max(np.sum(err ** 2), 1e-30)) >= 15
"""

PHASES = """
\"\"\"A test's time split into pytest's phases (``-p phases``): medians in ms, as JSON in $PHASES_OUT.\"\"\"
import json
import os
import statistics
import time

import pytest

NPU_RUNS = []  # seconds of each NPU inference, appended by the test bodies
TIMES = {"setup": [], "call": [], "teardown": [], "test": []}


def _timed(phase):
    @pytest.hookimpl(wrapper=True)
    def hook(item):
        start = time.perf_counter()
        try:
            return (yield)
        finally:
            TIMES[phase].append(time.perf_counter() - start)

    return hook


pytest_runtest_setup, pytest_runtest_call = _timed("setup"), _timed("call")
pytest_runtest_teardown, pytest_runtest_protocol = _timed("teardown"), _timed("test")


def pytest_unconfigure(config):
    medians = {k: 1000 * statistics.median(v[10:]) for k, v in dict(TIMES, npu=NPU_RUNS).items() if v[10:]}
    if "PHASES_OUT" in os.environ:
        with open(os.environ["PHASES_OUT"], "w") as out:
            json.dump(medians, out)
"""


def timed(cmd: list, cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


PHASED = ("pytest", "worker", "edgeort", "baseline")  # the commands timed once more with the phase timer
PHASE_LABELS = (
    ("setup", "setup"),
    ("call", "call"),
    ("of it the NPU run", "npu"),
    ("teardown", "teardown"),
    ("reports and hooks", "rest"),
    ("whole test", "test"),
)


def phases(cmd: list, cwd: Path, env: dict) -> dict:
    """Median ms per test of each phase (see ``PHASES``) in one more run of ``cmd``."""
    out = cwd / "phases.json"
    timed(cmd + ["-p", "phases"], cwd, dict(env, PHASES_OUT=str(out)))
    return json.loads(out.read_text())


def forget_hint(folder: Path, cmd: list) -> None:
    """Drop the start hint of pytest command ``cmd`` (run in ``folder``), as if it had never run; the other commands'
    hints stay (deleting the whole file made ``edgeort-1`` run without its hint in every round but the first)."""
    key = json.dumps([os.path.realpath(folder), cmd[cmd.index("pytest") + 1 :]])  # as ``starthint.command_key``
    if key not in json.loads((folder / CACHE_DIR / HINT_FILE).read_text()):
        raise SystemExit(f"no start hint for {key} in {folder / CACHE_DIR / HINT_FILE}: the run would have one")
    remember(folder / CACHE_DIR, key, [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="comparisons per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of pytest-edgeort (a git worktree of an earlier commit): its plugin is one more column, "
        "alternated with the others, so a change is measured side by side in one run",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = conv_matmul_qdq(folder)
        (folder / "plain.py").write_text(PLAIN)
        for n in (args.n, 1):
            hand_test = HAND_TEST.format(model=model, n=n, sessions=INDENTED_SESSIONS)
            (folder / f"test_hand_{n}.py").write_text(textwrap.dedent(hand_test))
            (folder / f"test_edgeort_{n}.py").write_text(textwrap.dedent(PLUGIN_TEST.format(model=model, n=n)))
        worker_test = WORKER_TEST.format(model=model, n=args.n, context="fork", sessions=INDENTED_SESSIONS)
        (folder / f"test_worker_{args.n}.py").write_text(textwrap.dedent(worker_test))
        (folder / "test_unrelated.py").write_text("def test_unrelated():\n    assert True\n")
        (folder / "phases.py").write_text(PHASES)
        pytest_cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        commands = {
            "plain": [sys.executable, "plain.py", str(model), str(args.n)],
            "pytest": pytest_cmd + [f"test_hand_{args.n}.py"],
            "worker": pytest_cmd + [f"test_worker_{args.n}.py"],
            "edgeort": pytest_cmd + [f"test_edgeort_{args.n}.py"],
            "pytest-1": pytest_cmd + ["test_hand_1.py"],
            "edgeort-1": pytest_cmd + ["test_edgeort_1.py"],
            "edgeort-first": pytest_cmd + [f"test_edgeort_{args.n}.py"],  # run without the command's start hint
            "unrelated": pytest_cmd + ["test_unrelated.py"],
            "unrelated-without": pytest_cmd + ["-p", "no:edgeort", "test_unrelated.py"],
        }
        if args.baseline is not None:  # the same run with the plugin imported from the other checkout
            commands["baseline"] = ["env", f"PYTHONPATH={args.baseline.resolve()}", *commands["edgeort"]]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        for cmd in commands.values():  # untimed: fills the bytecode cache
            timed(cmd, folder, env)
        times: dict = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, cmd in commands.items():
                if name == "edgeort-first":  # as a command's first run: no hint to start its worker before collecting
                    forget_hint(folder, cmd)
                times[name].append(timed(cmd, folder, env))
        phased = [name for name in PHASED if name in commands] if args.n > 10 else []
        split = {name: phases(commands[name], folder, env) for name in phased}
    med = {name: statistics.median(t) for name, t in times.items()}
    labels = {
        "plain": "plain onnxruntime script",
        "pytest": "hand-written pytest + ORT",
        "worker": "hand-written, own worker",
        "edgeort": "pytest-edgeort",
        "edgeort-first": "pytest-edgeort, no hint",
    }
    if "baseline" in times:
        labels["baseline"] = "pytest-edgeort, --baseline"
    print(
        f"{args.n} comparisons (u8 QDQ conv/matmul 1x3x16x16, QNN HTP simulator vs CPU), median of {args.repeats}, "
        "bytecode cache on:"
    )
    for name, label in labels.items():
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"  {label:27s}: {med[name]:7.3f} s  ({1000 * med[name] / args.n:6.2f} ms/comparison; runs {runs})")
    # each round runs every command once, back to back: a round's ratio sees one phase of this VM's speed
    rounds = statistics.median(e / h for e, h in zip(times["edgeort"], times["pytest"]))
    print(
        f"  ratio edgeort / hand-written pytest: {rounds:5.2f}x, median of the rounds' ratios (target <= 1.05x); "
        f"of the medians {med['edgeort'] / med['pytest']:5.2f}x"
    )
    isolated = statistics.median(e / w for e, w in zip(times["edgeort"], times["worker"]))
    print(
        f"  ratio edgeort / hand-written with a worker process: {isolated:5.2f}x, median of the rounds' ratios (the "
        "same test with its sessions in a process of their own, as DESIGN.md runs sessions: the plugin beyond that)"
    )
    # the hand-written runs' in-process simulator has two speeds (docs/benchmarks.md): their fastest is the strict bar
    print(
        f"  ratio edgeort / the fastest hand-written run: {med['edgeort'] / min(times['pytest']):5.2f}x  "
        f"(edgeort's median against {min(times['pytest']):.3f} s)"
    )
    print(f"  ratio edgeort / plain script       : {med['edgeort'] / med['plain']:5.2f}x  (includes pytest itself)")
    first = statistics.median(e / h for e, h in zip(times["edgeort-first"], times["pytest"]))
    print(
        f"  ratio edgeort without the start hint / hand-written pytest: {first:5.2f}x, median of the rounds' ratios "
        "(a command's first run: its worker starts when collection finds the first edge test)"
    )
    if args.n > 1:  # a run of 1 comparison is the fixed cost; the rest divided by n - 1 is the cost of one more
        per = {name: (med[name] - med[f"{name}-1"]) / (args.n - 1) for name in ("pytest", "edgeort")}
        print(
            f"  a run of 1 comparison (the fixed cost): hand-written {med['pytest-1']:.3f} s, "
            f"edgeort {med['edgeort-1']:.3f} s ({med['edgeort-1'] - med['pytest-1']:+.3f} s)"
        )
        print(
            f"  each further comparison: hand-written {1000 * per['pytest']:.2f} ms, "
            f"edgeort {1000 * per['edgeort']:.2f}"
            f" ms: {per['edgeort'] / per['pytest']:5.2f}x"
        )
    if "baseline" in med:
        paired = statistics.median(e / b for e, b in zip(times["edgeort"], times["baseline"]))
        print(
            f"  ratio edgeort / --baseline edgeort: {paired:5.2f}x, median of the rounds' ratios; "
            f"of the medians {med['edgeort'] / med['baseline']:5.2f}x"
        )
    if split:
        for t in split.values():
            t["rest"] = t["test"] - t["setup"] - t["call"] - t["teardown"]
            t["own"] = t["test"] - t["npu"]
        hand, plugin = split["pytest"], split["edgeort"]
        parts = ", ".join(f"{name} {plugin[key]:.2f} vs {hand[key]:.2f}" for name, key in PHASE_LABELS)
        print(f"  per test, median ms, edgeort vs hand-written (one more run of each, phase timer): {parts}")
        # the simulator's speed moves the NPU run from run to run: a test's time outside it is the steadier figure
        own = ", ".join(f"{labels[name]} {t['own']:.2f}" for name, t in split.items())
        print(f"  per test outside the NPU run (whole test minus it), median ms: {own}")
    without, unrelated = med["unrelated-without"], med["unrelated"]
    print(
        f"  a run of one plain test (no edge marker): {unrelated:.3f} s with the plugin, {without:.3f} s with "
        f"-p no:edgeort ({1000 * (unrelated - without):+.0f} ms, {unrelated / without:.2f}x)"
    )


if __name__ == "__main__":
    main()
