"""Board-side worker: runs ONNX Runtime sessions for the host, one process per isolation group.

It runs the same way for the ``local`` device (a subprocess) and on SSH boards: the host ships the
modules of this package as one zipapp (:mod:`pytest_edgeort.devices.artifact`), started as
``python3 worker-<hash>.pyz --workdir DIR [--lock-only]``. It needs only python3 (3.8+), numpy and
onnxruntime (or onnxruntime-qnn) on the board; its modules import nothing else (not even the rest
of pytest_edgeort). The wire format is in :mod:`.wire`; requests are answered from
:data:`.serveloop.HANDLERS`, one function per request name.
"""

import collections
import contextlib
import hashlib
import os
import platform
import sys
import time

from .epcache import ContextCache, StaleEntry
from .leftovers import register, unregister
from .memcheck import MemoryStateCheck
from .onnxbytes import FLOAT, one_node_model
from .serveloop import serve
from .sessioninfo import (
    PROFILE_OPTIONS,
    QNN_EP,
    config_entry,
    ep_versions,
    io_meta,
    placement_of,
    qnn_package,
    read_soc,
    runner,
    session_config,
    session_facts,
    u8_isa,
)
from .simpin import SimulatorPin
from .store import DEFAULT_CACHE_MAX_BYTES, EnvironmentProblem, ModelStore, private_dir, remove_quietly
from .wire import (
    PROTOCOL_VERSION,
    Kind,
    RequestError,
    encode_header_only,
    one_line,
    stream_reader,
)

#: the model id of the EP-context cache entries of the worker's own graphs (probe, memory scrub)
OWN_GRAPH = "worker-graph-"
PIPE_BUFFER_BYTES = 64 * 1024  # Linux's default pipe capacity

#: An open session: the onnxruntime session, ``run(feeds) -> outputs`` (:func:`.sessioninfo.runner`), its EP and
#: options, whether it came through the EP-context cache, its output names (each run asks for them: no NodeArg
#: objects per run), whether it runs on the QNN HTP simulator.
Opened = collections.namedtuple("Opened", "sess run ep options ep_cache outputs simulated")


class LockOnly:
    """What a lock-only process holds: its workdir (it never imports numpy or onnxruntime)."""

    lock_only = True

    def __init__(self, workdir):
        self.workdir = workdir


class Worker:
    """Holds the models and sessions of one worker process and answers requests."""

    lock_only = False

    def __init__(self, workdir, cache_max_bytes=DEFAULT_CACHE_MAX_BYTES):
        import numpy  # noqa: F401  (fail early and clearly when numpy is missing)
        import onnxruntime

        self.workdir = workdir
        self.ort = onnxruntime
        self.store = ModelStore(workdir, cache_max_bytes)
        self.profile_root = os.path.join(workdir, "profiles")
        self.sessions = {}  # sid -> Opened
        self.memory_checks = {}  # (ep, options) -> MemoryStateCheck
        self.contexts = ContextCache(workdir)
        simulator_host = platform.machine().lower() in ("x86_64", "amd64") and hasattr(os, "sched_setaffinity")
        self.sim_pin = SimulatorPin() if simulator_host else None
        self.store.cache_dirs.append(self.contexts.dir)
        self.plugin_eps = {}
        self.plugin_errors = {}
        self._register_plugin_eps()

    # -- capabilities

    def _register_plugin_eps(self):
        """Register onnxruntime-qnn 2.x as a plugin EP when this ORT supports plugin EPs."""
        ort = self.ort
        if not hasattr(ort, "register_execution_provider_library"):
            return
        try:
            import onnxruntime_qnn
        except ImportError:
            return
        try:
            # one fixed name: the plugin EP takes its name from it, and the name is part of an EP-context model
            ort.register_execution_provider_library(QNN_EP, onnxruntime_qnn.get_library_path())
            self.plugin_eps[QNN_EP] = onnxruntime_qnn.get_library_path()
        except Exception as exc:  # a broken install must be reported, not crash the worker
            self.plugin_errors[QNN_EP] = one_line(exc)

    def _qnn_info(self, ep_cache, probe):
        """QNN's package facts; ``probed``: the shipped backends of ``probe`` (None: all of them) that were
        tried, ``unusable``: those of them that cannot run a graph."""
        info = qnn_package(self.ort)
        if "backends" in info:
            info["probed"] = [b for b in ("htp", "gpu") if b in info["backends"] and (probe is None or b in probe)]
            unusable = self._probe_qnn_backends(info["probed"], ep_cache)
            if unusable:
                info["unusable"] = unusable
        return info

    def _probe_qnn_backends(self, backends, ep_cache):
        """``{backend: why}`` for the QNN ``backends`` whose library ships but cannot run a trivial
        float graph (no GPU on the x86 simulator, no DSP access on a misconfigured board)."""
        unusable = {}
        for backend in backends:
            try:
                self._own_graph_session(one_node_model("Add", FLOAT, 4), QNN_EP, {"backend_type": backend}, ep_cache)
            except RequestError as exc:
                unusable[backend] = (
                    "QNN's %s backend cannot create a session of a one-node float graph with "
                    "CPU fallback disabled: %s" % (backend, str(exc)[:200])
                )
        return unusable

    def capabilities(self, ep_cache=False, probe=None):
        """What this worker's python has; ``ep_cache``: the QNN backend probe may load its graph from the
        EP-context cache; ``probe``: the QNN backends to probe (None: every one that ships)."""
        import numpy

        ort = self.ort
        available = list(ort.get_available_providers())
        for name in self.plugin_eps:
            if name not in available:
                available.append(name)
        info = {
            "protocol": PROTOCOL_VERSION,
            "python": sys.version.split()[0],
            "python_executable": sys.executable,
            "numpy": numpy.__version__,
            "onnxruntime": ort.__version__,
            "providers": available,
            "plugin_eps": sorted(self.plugin_eps),
            "plugin_errors": self.plugin_errors,
            "platform": platform.platform(),
            "machine": platform.machine(),
            "hostname": platform.node(),
            "soc": read_soc(),
            "u8_isa": u8_isa(),
            "pid": os.getpid(),
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        }
        if "QNNExecutionProvider" in available:
            info["qnn"] = self._qnn_info(ep_cache, probe)
        return info

    # -- sessions

    def open_session(self, model, ep, options, cpu_fallback, extra_config=None):
        """An InferenceSession of ``model`` (path or bytes) on ``ep`` and nothing else; returns
        ``(session, api)`` where api is "cpu", "plugin" (onnxruntime-qnn 2.x) or "legacy".
        ``extra_config``: more session config entries (the EP-context cache's)."""
        ort = self.ort
        so = ort.SessionOptions()
        so.log_severity_level = 3
        config = dict(session_config(cpu_fallback), **(extra_config or {}))
        for key, value in config.items():
            so.add_session_config_entry(key, value)
        options = dict((k, str(v)) for k, v in options.items())
        api = "cpu"
        providers = None
        if ep == "CPUExecutionProvider":
            providers = ["CPUExecutionProvider"]
        elif ep in self.plugin_eps:
            devices = [d for d in ort.get_ep_devices() if d.ep_name == ep]
            if not devices:
                raise RequestError(Kind.MISSING_PROVIDER, "%s is registered but reports no device" % ep)
            so.add_provider_for_devices(devices, options)
            api = "plugin"
        else:
            if ep not in ort.get_available_providers():
                raise RequestError(
                    Kind.MISSING_PROVIDER, "provider %s is not available in onnxruntime %s" % (ep, ort.__version__)
                )
            providers = [(ep, options), "CPUExecutionProvider"]
            api = "legacy"
        try:  # enable_fallback=0: no silent CPU retry, so the EP's own error is what the host sees
            if providers is None:
                sess = ort.InferenceSession(model, sess_options=so, enable_fallback=0)
            else:
                sess = ort.InferenceSession(model, sess_options=so, providers=providers, enable_fallback=0)
        except Exception as exc:
            raise RequestError(Kind.CREATE, one_line(exc)) from None
        if hasattr(sess, "disable_fallback"):
            sess.disable_fallback()  # onnxruntime versions without the enable_fallback argument: run-time retries
        active = sess.get_providers()
        if ep not in active:
            raise RequestError(
                Kind.CREATE, "%s was requested but the session runs on %s only" % (ep, ", ".join(active))
            )
        return sess, api

    def create_session(
        self, sid, sha256, ep, options, cpu_fallback, bundle=None, files=(), ep_cache=False, profile=False
    ):
        """Open session ``sid`` of a cached, verified model; its providers, placement and I/O.

        With ``ep_cache`` (and an EP other than CPU) the compiled graph comes from the EP-context cache
        (a hit is proven by creating the session with compilation disabled) or is compiled and stored
        there; ``ep_context`` in the reply says which (``hit``, ``stored``, ``rebuilt`` + ``reason``,
        ``unsupported``: the EP wrote no context model). With ``profile`` (QNN) its runs write QNN's
        per-op profile (:data:`PROFILE_OPTIONS`) into ``profiles/<sid>``; such a session is always
        compiled (a profile is of the compiled graph, and its options are no cache entry's)."""
        options = dict((k, str(v)) for k, v in options.items())
        if profile:
            folder = os.path.join(self.profile_root, sid)
            private_dir(self.profile_root)
            private_dir(folder)
            options.update(PROFILE_OPTIONS, profiling_file_path=os.path.join(folder, "profile.csv"))
            options["framework_op_trace_dir"] = folder
            ep_cache = False
        path = self.store.verified_model(sha256, bundle, files)
        facts = session_facts(ep, options, cpu_fallback)
        if ep_cache and ep != "CPUExecutionProvider":
            sess, api, placement, context = self._cached_session(path, bundle or sha256, ep, options, cpu_fallback)
            facts = context.pop("facts", facts)
        else:
            sess, api = self.open_session(path, ep, options, cpu_fallback)
            placement, context = placement_of(sess), None
        simulated = self.sim_pin is not None and ep == QNN_EP and options.get("backend_type") == "htp"
        outputs = sess.get_outputs()
        names = [o.name for o in outputs]
        self.sessions[sid] = Opened(sess, runner(sess, names), ep, options, bool(ep_cache), names, simulated)
        if simulated:
            self.sim_pin.refresh()
        used = sess.get_session_options()
        return dict(
            facts,
            graph_optimization=str(used.graph_optimization_level).rsplit(".", 1)[-1],
            qdq_fusion=config_entry(used, "session.disable_quant_qdq") != "1",
            providers=sess.get_providers(),
            api=api,
            placement=placement,
            ep_context=context,
            simulated=simulated,
            inputs=[io_meta(i) for i in sess.get_inputs()],
            outputs=[io_meta(o) for o in outputs],
        )

    def _cached_session(self, path, model_id, ep, options, cpu_fallback):
        """``(session, api, placement, ep_context)`` through the EP-context cache: the entry's context
        model, created with compilation disabled; else compiled from ``path`` (a file, or the model's
        bytes) and stored."""
        fields = {
            "model": model_id,
            "onnxruntime": self.ort.__version__,
            "ep": ep,
            "ep_versions": ep_versions(ep),
            "options": options,
            "cpu_fallback": bool(cpu_fallback),
            "session_config": session_config(cpu_fallback),
        }
        key = self.contexts.key(fields)
        reason = None
        try:
            entry = self.contexts.lookup(fields)
        except StaleEntry as exc:
            entry, reason = None, str(exc)
        if entry is not None:
            try:
                no_compile = {"session.disable_model_compile": "1"}  # creation fails unless it is a hit
                sess, api = self.open_session(entry.path, ep, options, cpu_fallback, no_compile)
            except RequestError as exc:  # MODEL_REQUIRES_COMPILATION, a context the EP no longer loads
                reason = "its context model did not load with compilation disabled: %s" % exc
            else:
                return sess, api, entry.placement, {"state": "hit", "key": key, "facts": entry.facts}
        if reason is not None:
            self.contexts.drop(fields)
        temp = self.contexts.temp_path(key)
        config = {"ep.context_enable": "1", "ep.context_file_path": temp, "ep.context_embed_mode": "1"}
        try:
            sess, api = self.open_session(path, ep, options, cpu_fallback, config)
        except RequestError:
            remove_quietly(temp)
            raise
        placement = placement_of(sess)
        stored = self.contexts.store(fields, temp, placement, session_facts(ep, options, cpu_fallback))
        remove_quietly(temp)
        state = "unsupported" if not stored else "rebuilt" if reason else "stored"
        context = {"state": state, "key": key}
        if reason:
            context["reason"] = reason
        return sess, api, placement, context

    def memory_check(self, sid):
        """The :class:`MemoryStateCheck` for a session's EP and options (one per worker and both)."""
        opened = self.sessions[sid]
        ep, options, ep_cache = opened.ep, opened.options, opened.ep_cache
        key = (ep, tuple(sorted(options.items())))
        if key not in self.memory_checks:
            self.memory_checks[key] = MemoryStateCheck(
                lambda model: self._own_graph_session(model, ep, options, ep_cache), ep
            )
        return self.memory_checks[key]

    def _own_graph_session(self, model, ep, options, ep_cache):
        """A session of a graph the worker makes itself (``model``: bytes; the QNN backend probe, the memory
        scrub), CPU fallback disabled; with ``ep_cache`` from the EP-context cache as the sessions under
        test (on the HTP simulator compiling the 4 MiB scrub took ~140 ms of every run, the probe's one-node
        graph ~60 ms; loading either takes a few ms)."""
        if not ep_cache:
            return self.open_session(model, ep, options, cpu_fallback=False)[0]
        model_id = OWN_GRAPH + hashlib.sha256(model).hexdigest()
        return self._cached_session(model, model_id, ep, options, cpu_fallback=False)[0]

    def _pinned(self, opened, core=None):
        """The context a run of ``opened`` happens in: one core for the simulator (see :mod:`.simpin`), the host's
        ``core`` (an index into this process's cores) where it names one."""
        return self.sim_pin.on(core) if opened.simulated else contextlib.nullcontext()

    def _session(self, sid):
        try:
            return self.sessions[sid]
        except KeyError:
            raise RequestError(Kind.BAD_REQUEST, "no open session %r" % sid) from None

    def run(self, sid, feeds, memory_check, core=None):
        """One inference; with ``memory_check`` the same feed twice around two memory fills, and
        ``memory_differs`` says which outputs changed (see :class:`MemoryStateCheck`); ``core``: the core a
        simulated run takes (see :meth:`_pinned`)."""
        opened = self._session(sid)
        try:
            with self._pinned(opened, core):
                if memory_check:
                    outputs, differs = self.memory_check(sid).run(opened.sess, feeds)
                else:
                    outputs, differs = list(zip(opened.outputs, opened.run(feeds))), {}
        except RequestError:
            raise
        except Exception as exc:
            raise RequestError(Kind.RUN, one_line(exc)) from None
        return {"memory_differs": differs}, outputs

    def time_runs(self, sid, feeds, runs, warmup, max_s=None, min_runs=1):
        """Latencies in ms of up to ``runs`` inferences after up to ``warmup`` untimed ones, stopping
        once ``max_s`` seconds have gone by in all (warm-up included), but never before one warm-up
        and ``min_runs`` timed runs (pytest-benchmark's ``max_time`` / ``min_rounds``)."""
        opened = self._session(sid)
        run = opened.run
        budget_end = None if max_s is None else time.perf_counter() + float(max_s)

        def over_budget():
            return budget_end is not None and time.perf_counter() >= budget_end

        try:
            with self._pinned(opened):
                for n in range(int(warmup)):
                    if n and over_budget():
                        break
                    run(feeds)
                times = []
                for n in range(int(runs)):
                    if n >= int(min_runs) and over_budget():
                        break
                    start = time.perf_counter()
                    run(feeds)
                    times.append((time.perf_counter() - start) * 1000.0)
        except Exception as exc:
            raise RequestError(Kind.RUN, one_line(exc)) from None
        return {"times_ms": times}

    def close_session(self, sid):
        self.sessions.pop(sid, None)


def start(workdir, lock_only, reader, write, cache_max_bytes=DEFAULT_CACHE_MAX_BYTES, run=None):
    """Say hello (or why this worker cannot run here), then :func:`serve`; returns the exit status. A
    session worker of ``run`` is recorded in the workdir while it lives (:mod:`.leftovers`)."""
    try:
        private_dir(workdir)
        worker = LockOnly(workdir) if lock_only else Worker(workdir, cache_max_bytes)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or one_line(exc)
        problem = "%s cannot import %s (%s); the board needs python3 + numpy + onnxruntime" % (
            sys.executable,
            missing,
            one_line(exc),
        )
    except EnvironmentProblem as exc:
        problem = str(exc)
    else:
        problem = None
    if problem is not None:
        write([encode_header_only({"ok": False, "kind": Kind.ENVIRONMENT, "error": problem})])
        return 3
    record = register(workdir, run) if run and not lock_only else None
    try:
        write([encode_header_only({"ok": True, "hello": True, "protocol": PROTOCOL_VERSION, "pid": os.getpid()})])
        # the record goes before shutdown is answered: the host stops the process as soon as it has the answer
        return serve(reader, write, worker, before_exit=lambda: unregister(record))
    finally:
        unregister(record)


def main(argv=None):
    """Entry point: ``python3 worker.pyz --workdir DIR [--lock-only] [--cache-max-bytes N] [--run ID]``;
    protocol on stdin / original stdout.

    ``--lock-only`` starts a process that only holds the board lock (no onnxruntime import, so no
    model or EP crash can ever release the lock early). ``--cache-max-bytes``: the model cache's size
    cap (least recently used entries go first; default 4 GiB). ``--run``: the host run this worker serves
    (its workers are told apart from those earlier runs left behind)."""
    argv = sys.argv[1:] if argv is None else argv
    # numpy's OpenBLAS starts a thread per core that spins ~0.1 s of CPU at import, beside the pytest process and
    # the simulator on the board's cores; the worker does no BLAS work (onnxruntime has its own kernels)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    workdir = argv[argv.index("--workdir") + 1] if "--workdir" in argv else os.path.join(os.getcwd(), ".edgeort")
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # from now on, whatever anything prints to stdout lands on stderr
    sys.stdout = sys.stderr
    # a buffer of the pipe's size: a small request comes in with one read (stdin's own buffer is 4 KiB)
    proto_in = os.fdopen(0, "rb", buffering=PIPE_BUFFER_BYTES, closefd=False)

    def write(parts):
        for part in parts:
            view = memoryview(part)
            while view:  # a raw write may take less than it is given
                view = view[proto_out.write(view) :]

    cache_max = (
        int(argv[argv.index("--cache-max-bytes") + 1]) if "--cache-max-bytes" in argv else DEFAULT_CACHE_MAX_BYTES
    )
    run = argv[argv.index("--run") + 1] if "--run" in argv else None
    return start(workdir, "--lock-only" in argv, stream_reader(proto_in), write, cache_max, run)
