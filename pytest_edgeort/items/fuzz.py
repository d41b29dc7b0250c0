"""The suite's fuzz check as pytest runs it: Hypothesis-generated inputs against the reference; a failing
input, shrunk, is saved where the failure message says."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from ..outcomes import outcome_of
from ..run import CACHE_DIR
from .conformance import conclude
from .context import SuiteCheck, SuiteContext

if TYPE_CHECKING:
    import numpy as np


def run_suite(item: SuiteContext) -> None:
    """``fuzz_examples`` generated inputs, each compared with the reference under the suite's tolerance."""
    from ..checks.fuzz import fuzz

    run, suite, node = item.run, item.suite, item.check_node
    models = item.models()
    session = item.device_session(models)
    reference = item.reference_session(models)
    float_session = item.float_session(models)
    with outcome_of(ValueError):
        result = fuzz(
            session,
            reference,
            float_session,
            suite.tolerance,
            item.where,
            suite.fuzz_examples,
            run.options.seed,
            models.ranges,
        )
    if result.comparison is None:
        node.record(session, passed=True, fuzz_examples=result.examples)
        return
    path = _save_failing(item, result.feed)
    conclude(
        node,
        session,
        result.comparison,
        "fuzz",
        f"{session.label}: a generated input is outside tolerance (shrunk); reproduce with numpy.load({str(path)!r})",
        passed=result.comparison.passed,
        fuzz_examples=result.examples,
        fuzz_input=str(path),
    )


def _save_failing(item: SuiteContext, feed: Mapping[str, np.ndarray]) -> Path:
    """``.edgeort-cache/fuzz/<suite folder>-<device>-<provider>.npz`` in the rootdir."""
    import numpy as np

    rootdir, folder = item.run.rootdir, item.suite.folder
    suite = folder.relative_to(rootdir) if folder.is_relative_to(rootdir) else folder
    cache = rootdir / CACHE_DIR / "fuzz"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{'_'.join(suite.parts).strip('_/')}-{item.check_node.device}-{item.check_node.provider}.npz"
    np.savez(path, **feed)
    return path


CHECK = SuiteCheck(
    "fuzz",
    run_suite,
    wanted=lambda suite: suite.fuzz_examples > 0,
    not_hosted="Hypothesis runs and shrinks one example at a time, a job each (minutes apiece there); fuzz on a "
    "board or local",
)
