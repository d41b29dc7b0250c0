"""The memory-state check: does a model's output depend on what earlier graphs left in the EP's memory?

Some QNN HTP kernels leave output elements unwritten; they then hold whatever an earlier graph left
in QNN's memory, which QNN takes at each run and shares between all sessions of the process (and
copies over any output buffer bound by the caller, so sentinel-filled buffers cannot see it). A
scrub graph on the same EP fills that memory with pattern A, the model runs, the scrub fills it
with pattern B, the model runs again: outputs that differ bit for bit depend on memory state.
Measured on the HTP simulator (onnxruntime-qnn 2.7.0): the ConvTranspose node tests that leave 16
elements unwritten are flagged 10/10, in fresh processes and after 65 other models; 65 healthy
models, 0 flagged; about 6-12 ms per check with the 4 MiB scrub.
"""

from .onnxbytes import INT32, one_node_model
from .wire import Kind, RequestError

_FILL_A = 0xFFFFFFFF  # NaN as fp32/fp16, -1 as int32, 0xff bytes
_FILL_B = 0x4F4F4F4F  # finite, large and positive as fp32 and fp16; every byte differs from A
# int32 elements of the scrub, largest first (a smaller one where QNN cannot allocate the largest);
# an int32 Max keeps the bits exactly, where a float scrub is converted under soc_model (fp16)
_SCRUB_SIZES = (1 << 20, 1 << 18, 1 << 16)


class MemoryStateCheck:
    """Runs a model twice around two fills of the EP's memory and reports outputs that differ."""

    def __init__(self, open_session, ep):
        """``open_session(model_bytes)``: a session on the EP under test, CPU fallback disabled."""
        import numpy as np

        errors = []
        for n in _SCRUB_SIZES:
            try:
                self.session = open_session(one_node_model("Max", INT32, n))
            except RequestError as exc:  # QNN_COMMON_ERROR_MEM_ALLOC: too big for this vtcm_mb / SoC
                errors.append("%d elements: %s" % (n, exc))
                continue
            self.fills = [{"x": np.full(n, fill, dtype=np.uint32).view(np.int32)} for fill in (_FILL_A, _FILL_B)]
            return
        raise RequestError(
            Kind.MEMORY_CHECK,
            "cannot run the memory scrub graph on %s, so outputs that depend on "
            "memory left by earlier graphs cannot be ruled out (%s)" % (ep, "; ".join(errors)),
        )

    def run(self, sess, feeds):
        """``([(name, array of the first run)], {output name: elements that differ bit for bit})``."""
        import numpy as np

        names = [o.name for o in sess.get_outputs()]
        runs = []
        for fill in self.fills:
            self.session.run(None, fill)
            runs.append(sess.run(None, feeds))
        differs = {}
        for name, a, b in zip(names, *runs):
            a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
            if a.shape != b.shape or a.dtype != b.dtype:
                differs[name] = int(max(a.size, b.size))
            elif a.size and a.dtype.itemsize:
                rows = (a.size, a.dtype.itemsize)
                count = int(
                    np.count_nonzero(
                        (a.reshape(-1).view(np.uint8).reshape(rows) != b.reshape(-1).view(np.uint8).reshape(rows)).any(
                            axis=1
                        )
                    )
                )
                if count:
                    differs[name] = count
        return list(zip(names, runs[0])), differs
