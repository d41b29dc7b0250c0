"""The worker's request loop and its handlers: one function per request name (:class:`.wire.Op`), in
:data:`HANDLERS`.

handler(worker, request header, request arrays) -> (reply header, reply arrays); the fields each reads are
exactly those the host's ``WorkerClient`` method of the same name sends."""

import os
import shutil
import sys

from .leftovers import stop_leftovers
from .lock import take_lock
from .wire import Kind, Op, ProtocolError, RequestError, encode_header_only, frame_parts, one_line, read_frame


def _capabilities(worker, req, arrays):
    return worker.capabilities(req.get("ep_cache", False), req.get("probe")), ()


def _has_model(worker, req, arrays):
    return {"present": worker.store.has_model(req["sha256"])}, ()


def _put_model(worker, req, arrays):
    worker.store.put_model(req["sha256"], arrays[0][1].tobytes())
    return {}, ()


def _has_file(worker, req, arrays):
    return {"present": worker.store.has_file(req["bundle"], req["location"])}, ()


def _put_file(worker, req, arrays):
    worker.store.put_file(req["bundle"], req["location"], req["sha256"], arrays[0][1].tobytes())
    return {}, ()


def _create_session(worker, req, arrays):
    return worker.create_session(
        req["sid"],
        req["sha256"],
        req["ep"],
        req["options"],
        req["cpu_fallback"],
        req.get("bundle"),
        req.get("files", ()),
        req.get("ep_cache", False),
        req.get("profile", False),
    ), ()


def _run(worker, req, arrays):
    return worker.run(req["sid"], dict(arrays), req["memory_check"], req.get("core"))


def _time(worker, req, arrays):
    return worker.time_runs(
        req["sid"], dict(arrays), req["runs"], req["warmup"], req.get("max_s"), req.get("min_runs", 1)
    ), ()


def _close_session(worker, req, arrays):
    worker.close_session(req["sid"])
    return {}, ()


def _profile(worker, req, arrays):
    """Close the profiled session and hand over the files its profile wrote, ``[(file name, uint8 array)]``,
    removing them from the device."""
    import numpy

    sid = req["sid"]
    worker.close_session(sid)
    folder = os.path.join(worker.profile_root, os.path.basename(sid))
    if not os.path.isdir(folder):
        raise RequestError(Kind.BAD_REQUEST, "session %r wrote no profile" % sid)
    files = []
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as stream:
            files.append((name, numpy.frombuffer(stream.read(), dtype=numpy.uint8)))
    shutil.rmtree(folder, ignore_errors=True)
    return {"files": [name for name, _ in files]}, files


def _echo(worker, req, arrays):
    return {}, arrays


def _lock(worker, req, arrays):
    """Take the board lock; once held, stop the workers earlier runs left in this workdir
    (:mod:`.leftovers`) before this run starts any."""
    reply = take_lock(req["path"], req["holder"])
    if reply["acquired"]:
        reply["stopped"] = stop_leftovers(worker.workdir, req["holder"].get("run"))
    return reply, ()


HANDLERS = {
    Op.CAPABILITIES: _capabilities,
    Op.HAS_MODEL: _has_model,
    Op.PUT_MODEL: _put_model,
    Op.HAS_FILE: _has_file,
    Op.PUT_FILE: _put_file,
    Op.CREATE_SESSION: _create_session,
    Op.RUN: _run,
    Op.TIME: _time,
    Op.CLOSE_SESSION: _close_session,
    Op.PROFILE: _profile,
    Op.ECHO: _echo,
}
LOCK_ONLY_HANDLERS = {Op.LOCK: _lock}  # all a lock-only worker answers (it never imports numpy/onnxruntime)


def serve(reader, write, worker, before_exit=lambda: None):
    """Answer requests until ``shutdown`` or EOF (``worker`` is a :class:`LockOnly` in a lock-only process).
    ``before_exit`` runs before ``shutdown`` is answered: the host may stop the process once it has the answer.

    A request that does not decode ends the process (exit status 2): after a broken frame the
    stream position is unknown, so no later reply could be trusted."""
    handlers = LOCK_ONLY_HANDLERS if worker.lock_only else dict(HANDLERS, **LOCK_ONLY_HANDLERS)
    while True:
        try:
            req, arrays = read_frame(reader)
        except EOFError:
            return 0
        except ProtocolError as exc:
            sys.stderr.write("edgeort worker: invalid request frame (%s); exiting\n" % one_line(exc))
            return 2
        op = req.get("op")
        if op == Op.SHUTDOWN:
            before_exit()
            write([encode_header_only({"ok": True, "id": req.get("id")})])
            return 0
        try:
            if op not in handlers:
                lock_only = worker.lock_only and op in HANDLERS
                raise RequestError(
                    Kind.BAD_REQUEST, ("op %r sent to a lock-only worker" if lock_only else "unknown op %r") % op
                )
            reply, out_arrays = handlers[op](worker, req, arrays)
            reply["ok"] = True
        except RequestError as exc:
            reply, out_arrays = {"ok": False, "kind": exc.kind, "error": one_line(exc)}, ()
        except Exception as exc:
            import traceback  # (only here: its imports are ~2.5 ms of every worker's start)

            sys.stderr.write(traceback.format_exc())
            reply, out_arrays = {"ok": False, "kind": Kind.INTERNAL, "error": one_line(exc)}, ()
        reply["id"] = req.get("id")
        write(frame_parts(reply, out_arrays))
