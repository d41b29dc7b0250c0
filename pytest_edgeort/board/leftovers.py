"""Workers left behind by earlier runs: each worker records itself in the workdir, the next lock holder stops them.

A worker process hung in a QNN call does not notice that its pytest run was killed (SIGKILL, a lost CI
runner), so it would stay forever next to the runs that take the board after it. Each session worker writes
``<workdir>/workers/<pid>.json`` (pid, process group, start time, run) and removes it when it ends; the
process that takes the board lock stops every recorded worker of another run that is still alive (its whole
process group, so what it started goes too) before this run starts any worker. A record whose process is
gone or was replaced (another start time: a reused pid) is only removed.

This module runs on the board: python3 (3.8+) and the standard library. Process facts come from /proc
(Linux); where there is none, nothing is recorded or stopped.
"""

import json
import os
import signal

FOLDER = "workers"


def _start_time(pid):
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), or None when it is
    gone, a zombie, or there is no /proc."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in (b"Z", b"X") else int(fields[19])


def register(workdir, run):
    """Record this process as a worker of ``run``; return the record's path (None without /proc)."""
    pid = os.getpid()
    start = _start_time(pid)
    if start is None:
        return None
    folder = os.path.join(workdir, FOLDER)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, "%d.json" % pid)
    with open(path, "w") as f:
        json.dump({"pid": pid, "pgid": os.getpgid(0), "start": start, "run": run}, f)
    return path


def unregister(path):
    """Remove this process's record (it ends normally)."""
    if path is not None:
        try:
            os.unlink(path)
        except OSError:
            pass


def forget(workdir, pid):
    """Remove the record of worker ``pid``, which its host stopped (SIGKILL: it could not remove its own)."""
    unregister(os.path.join(workdir, FOLDER, "%d.json" % pid))


def stop_leftovers(workdir, run):
    """Stop every recorded worker of a run other than ``run`` that still lives; remove stale records.
    Returns what was stopped, one ``"pid N (process group G)"`` each."""
    folder = os.path.join(workdir, FOLDER)
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    stopped = []
    own_group = os.getpgid(0)
    for name in names:
        path = os.path.join(folder, name)
        try:
            with open(path) as f:
                record = json.load(f)
            pid, pgid, start = int(record["pid"]), int(record["pgid"]), record["start"]
        except (OSError, ValueError, KeyError, TypeError):
            unregister(path)  # unreadable: no process can be identified by it
            continue
        if record.get("run") == run:
            continue
        if pid > 1 and _start_time(pid) == start:
            try:
                if pgid > 1 and pgid != own_group:
                    os.killpg(pgid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
                stopped.append("pid %d (process group %d)" % (pid, pgid))
            except OSError:
                pass
        unregister(path)
    return stopped
