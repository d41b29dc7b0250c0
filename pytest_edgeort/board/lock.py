"""The board lock on the board side: ``flock()`` a file for as long as this process lives."""

import errno
import fcntl
import json
import os
import time

from .wire import Kind, RequestError, one_line

_HELD_LOCKS = {}  # path -> open fd; flock() lives as long as this process


def take_lock(path, holder):
    """Try to flock() the board lock at ``path`` without waiting.

    The lock belongs to this process: the kernel drops it when the process exits or is killed, so
    a crashed or cancelled run never leaves the board locked. The holder's description is written
    into the file so that a waiting run can say who has the board.
    """
    path = os.path.expanduser(path)
    if path in _HELD_LOCKS:
        return {"acquired": True, "path": path}
    folder = os.path.dirname(path)
    try:
        if folder and not os.path.isdir(folder):
            os.makedirs(folder, exist_ok=True)  # another run may create it after the check
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            if exc.errno != errno.EACCES:
                raise
            fd = os.open(path, os.O_RDONLY)  # another user's lock file: flock works read-only too
    except OSError as exc:
        raise RequestError(Kind.LOCK, "cannot open the board lock %s: %s" % (path, one_line(exc))) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            raise RequestError(Kind.LOCK, "cannot lock %s: %s" % (path, one_line(exc))) from None
        try:
            with open(path, "rb") as f:
                current = f.read(4096).decode("utf-8", "replace")
        except OSError:
            current = ""
        return {"acquired": False, "path": path, "holder": current}
    _HELD_LOCKS[path] = fd
    record = dict(holder, pid=os.getpid(), since=time.time())  # holder: {"who", "run"} from the host
    record = json.dumps(record).encode("utf-8")
    try:
        os.ftruncate(fd, 0)
        os.write(fd, record)
    except OSError:
        pass  # read-only lock file: the lock holds, only the holder's name is not recorded
    return {"acquired": True, "path": path}
