"""No repeated inference in one run: the same feeds on the same session come from its memo, bit for bit."""

from __future__ import annotations

from pytest_edgeort.config.providers import resolve_provider
from pytest_edgeort.devices.session import EdgeSession
from pytest_edgeort.model.info import model_info
from pytest_edgeort.model.inputs import generate_inputs


def test_the_same_feeds_again_reuse_the_outputs_and_other_feeds_run(device, model_dir):
    model = model_info(model_dir / "conv_matmul_qdq.onnx")
    session = EdgeSession(device, model, resolve_provider("cpu"), {}, cpu_fallback=True, on_create=lambda s: None)
    feeds = [generate_inputs(model, seed=n) for n in range(3)]
    runs = []
    original = session._live_backend().run_all
    session._live_backend().run_all = lambda batch: runs.append(len(batch)) or original(batch)  # count inferences
    first = session.run_all(feeds)
    first[0][next(iter(first[0]))][...] = 0  # a caller scribbling on its outputs does not reach the memo
    again = session.run_all([{k: v.copy() for k, v in feed.items()} for feed in feeds])  # equal, not identical
    assert runs == [3] and session.reused == 1
    fresh = [session.run(feed) for feed in feeds]  # run() always infers
    assert [[a.tobytes() for a in o.values()] for o in again] == [[a.tobytes() for a in o.values()] for o in fresh]
    changed = [dict(feed) for feed in feeds]
    name = next(iter(changed[2]))
    changed[2][name] = changed[2][name].copy()
    changed[2][name].reshape(-1)[0] += 1  # one element of the last example differs
    session.run_all(changed)
    assert runs == [3, 3] and session.reused == 1
