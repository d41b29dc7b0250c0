"""One core for the QNN HTP simulator while it runs a graph: its helper threads and the calling thread together.

On x86-64, libQnnHtp.so simulates the HTP with the calling thread doing the work and eleven helper threads
(``thr_hvx_0``-``7``, ``thr_hmx_0``, ``thr_hlx_0``/``1``) that wait for it by calling ``sched_yield`` in a
loop, on every core they can reach: the simulator's system time. Measured on onnxruntime 1.32.0 +
onnxruntime-qnn 2.7.0 (QNN 2.51), rapidocr_cls: 42,000 ``sched_yield`` calls in four inferences; with the
helpers and the calling thread on one core, 365 ms of CPU per inference instead of 450-580 ms (the calling
thread's own ~320 ms unchanged), outputs bit-identical. Each simulated run is pinned to the core the calling
thread is on when it starts (the scheduler's choice, so parallel workers and other processes spread as
before), or to the core the host names for it: worker processes that share one batch (simulator lanes, see
``pytest_edgeort.devices.lanes``) each take a core of their own, where two simulators on one core would each run
at half speed. The calling thread gets every core back afterwards (CPU EP sessions keep all of them).
"""

import os

_HELPER_PREFIX = "thr_h"  # thr_hvx_*, thr_hmx_*, thr_hlx_*


def _current_cpu():
    """The core this thread last ran on (field 39 of /proc/thread-self/stat), or None."""
    try:
        with open("/proc/thread-self/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[36])
    except (OSError, ValueError, IndexError):
        return None


def helper_threads():
    """Thread ids of the simulator's helper threads in this process (they appear with its first session)."""
    tids = []
    try:
        names = os.listdir("/proc/self/task")
    except OSError:
        return tids
    for tid in names:
        try:
            with open("/proc/self/task/%s/comm" % tid) as f:
                if f.read().startswith(_HELPER_PREFIX):
                    tids.append(int(tid))
        except (OSError, ValueError):
            continue  # ended meanwhile
    return tids


class SimulatorPin:
    """``with pin:`` runs a simulated graph with the calling thread and the helpers on one core."""

    def __init__(self):
        self.all = os.sched_getaffinity(0)
        self.helpers = []
        self.helpers_on = None  # the core the helpers were last pinned to (they stay there between runs)
        self.core = None  # the next run's core, an index into the allowed cores (None: the one it starts on)

    def refresh(self):
        """Find the helper threads again (after a session was created: the first one starts them)."""
        self.helpers = helper_threads()
        self.helpers_on = None

    def on(self, index):
        """This pin, for a run on core ``index`` of the allowed cores (modulo their number; None: the core the
        calling thread is on when the run starts)."""
        self.core = index
        return self

    def __enter__(self):
        cpu = _current_cpu() if self.core is None else sorted(self.all)[int(self.core) % len(self.all)]
        if cpu is None or cpu not in self.all or len(self.all) < 2:
            return self
        for tid in [0] if cpu == self.helpers_on else [0, *self.helpers]:
            try:
                os.sched_setaffinity(tid, {cpu})
            except OSError:
                pass  # a helper ended meanwhile
        self.helpers_on = cpu
        return self

    def __exit__(self, *exc):
        os.sched_setaffinity(0, self.all)
        return False
