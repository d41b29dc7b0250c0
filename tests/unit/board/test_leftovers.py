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


def test_a_worker_removes_its_record_before_it_answers_shutdown(tmp_path):
    """The host stops a worker as soon as it has the answer to shutdown: a record still there then would be a
    stale one for the next run to find (a CI run saw exactly that)."""
    import io

    from pytest_edgeort.board.wire import Op, encode_header_only, stream_reader
    from pytest_edgeort.board.worker import start

    workdir = tmp_path / "w"
    records = []  # the worker's records each time it writes a frame: the hello, then the shutdown answer

    def write(parts) -> None:
        records.append(sorted(p.name for p in (workdir / FOLDER).iterdir()))

    request = stream_reader(io.BytesIO(encode_header_only({"op": Op.SHUTDOWN, "id": 1})))
    assert start(str(workdir), False, request, write, run="r1") == 0
    assert len(records) == 2 and len(records[0]) == 1  # recorded while it served
    assert records[1] == []  # gone when it answered shutdown
