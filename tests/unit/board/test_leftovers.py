"""Workers an earlier run left: stopped by process group when alive, never this run's, never a reused pid."""

from __future__ import annotations

import json
import subprocess

from pytest_edgeort.board.leftovers import FOLDER, _start_time, stop_leftovers


def record(workdir, pid: int, run: str, start) -> None:
    folder = workdir / FOLDER
    folder.mkdir(exist_ok=True)
    (folder / f"{pid}.json").write_text(json.dumps({"pid": pid, "pgid": pid, "start": start, "run": run}))


def test_only_live_workers_of_other_runs_are_stopped(tmp_path):
    old, ours, reused = (subprocess.Popen(["sleep", "60"], start_new_session=True) for _ in range(3))
    try:
        record(tmp_path, old.pid, "old", _start_time(old.pid))
        record(tmp_path, ours.pid, "new", _start_time(ours.pid))
        record(tmp_path, reused.pid, "old", _start_time(reused.pid) - 1)  # the pid now names another process
        record(tmp_path, 999999999, "old", 1)  # long gone
        assert stop_leftovers(str(tmp_path), "new") == [f"pid {old.pid} (process group {old.pid})"]
        assert old.wait(timeout=10) == -9
        assert ours.poll() is None and reused.poll() is None
        assert sorted(p.name for p in (tmp_path / FOLDER).iterdir()) == [f"{ours.pid}.json"]
    finally:
        for proc in (old, ours, reused):
            proc.kill()
            proc.wait()
