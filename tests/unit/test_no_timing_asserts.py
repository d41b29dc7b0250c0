"""No test asserts on elapsed wall-clock time: shared CI machines have bursts, and a speed goal
belongs in a benchmark script that prints ratios measured side by side (benchmarks/).

Waiting for an event with a generous deadline (``while not done: assert monotonic() < deadline``) is
allowed: it bounds a wait, it does not measure speed. Bounding a call that must give up by itself is
a ``pytest.mark.timeout`` with a wide margin, never an assert on its duration."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Set, Tuple

ROOT = Path(__file__).resolve().parents[2]
CLOCKS = {"monotonic", "perf_counter", "time", "monotonic_ns", "perf_counter_ns", "time_ns"}


def _is_clock_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in CLOCKS
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "time"
    )


def _is_duration(node: ast.AST, durations: Set[str]) -> bool:
    """A clock reading minus something, or a name that holds one."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id in durations:
            return True
        if isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.Sub) and any(map(_is_clock_call, ast.walk(sub.left))):
            return True
    return False


def timing_asserts(source: str) -> Iterator[Tuple[int, str]]:
    """``(line, text)`` of every assert on an elapsed duration in ``source``."""
    tree = ast.parse(source)
    durations: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and _is_duration(node.value, set()):
            durations.update(t.id for t in node.targets if isinstance(t, ast.Name))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert) and _is_duration(node.test, durations):
            yield node.lineno, ast.unparse(node.test)


def test_the_guard_finds_the_shapes_of_a_timing_assert():
    found = list(
        timing_asserts(
            "start = time.monotonic()\nrun()\nelapsed = time.monotonic() - start\nassert elapsed < 3\n"
            "assert time.perf_counter() - start < 2.0\n"
            "deadline = time.monotonic() + 5\nwhile busy():\n    assert time.monotonic() < deadline, 'wait'\n"
        )
    )
    assert [line for line, _ in found] == [4, 5]


def test_no_test_or_test_helper_asserts_on_elapsed_time():
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: assert {text}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for line, text in timing_asserts(path.read_text())
    ]
    assert not offenders, "timing asserts (move the speed goal to benchmarks/):\n" + "\n".join(offenders)
