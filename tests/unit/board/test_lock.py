"""The board-side lock: runs that start on a fresh board at the same moment all get an answer."""

from __future__ import annotations

import multiprocessing
import os
from typing import Any, List

from pytest_edgeort.board.lock import take_lock

BOARDS = 200


def _take_all(root: str, start: Any, results: Any) -> None:
    start.wait()
    answers: List[Any] = []
    for index in range(BOARDS):
        path = os.path.join(root, str(index), "edgeort", "board.lock")
        try:
            answers.append(take_lock(path, {"who": "run"})["acquired"])
        except Exception as exc:  # the failure under test: the lock's folder created by the other run meanwhile
            answers.append(str(exc))
    results.put(answers)
    start.wait()  # hold every lock taken until all runs have answered


def test_runs_taking_the_lock_of_a_fresh_board_at_once_get_one_holder_each(tmp_path):
    """The lock's folder does not exist yet and four runs create it at once: each board gets exactly one
    holder, and the other runs see it held; none fails with 'File exists'."""
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(4), context.Queue()
    runs = [context.Process(target=_take_all, args=(str(tmp_path), start, results)) for _ in range(4)]
    for run in runs:
        run.start()
    answers = [results.get(timeout=60) for _ in runs]
    for run in runs:
        run.join(60)
    errors = {a for run_answers in answers for a in run_answers if not isinstance(a, bool)}
    assert errors == set()
    assert [sum(run_answers[i] for run_answers in answers) for i in range(BOARDS)] == [1] * BOARDS
