"""The worker's run of a session: onnxruntime's C++ session called directly, the same outputs as ``sess.run``."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from pytest_edgeort.board.sessioninfo import runner
from pytest_edgeort.model.info import model_info
from pytest_edgeort.model.inputs import generate_inputs


class PublicOnly:
    """An ``InferenceSession`` as a Python without ``_sess`` would have it: only its public ``run``."""

    def __init__(self, sess: ort.InferenceSession) -> None:
        self.run = sess.run


@pytest.mark.parametrize("model", ["identities.onnx", "det.onnx", "conv_matmul_qdq.onnx"])
def test_a_run_gives_what_sess_run_gives_bit_for_bit_by_either_path(model_dir, model):
    path = model_dir / model
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()][::-1]  # the order asked for, not the model's
    feed = generate_inputs(model_info(path), seed=5)
    expected = sess.run(names, feed)
    for run in (runner(sess, names), runner(PublicOnly(sess), names)):
        got = run(feed)
        assert [(a.dtype, a.shape, a.tobytes()) for a in got] == [(e.dtype, e.shape, e.tobytes()) for e in expected]


def test_a_feed_without_an_input_fails_naming_it(model_dir):
    """The Python ``run`` is not there to say which input is missing; onnxruntime itself says it."""
    path = model_dir / "conv_matmul_qdq.onnx"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    with pytest.raises(Exception, match=f"(?i)missing input: {name}"):
        runner(sess, [o.name for o in sess.get_outputs()])({})
