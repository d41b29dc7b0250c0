"""Fuzz: Hypothesis inputs within the input ranges must conform; a failure is shrunk (no pytest here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional

from ..compare.engine import Comparison
from ..compare.tolerance import ToleranceSpec
from .conformance import baseline_source, compare

if TYPE_CHECKING:
    import numpy as np

    from ..devices.session import EdgeSession


@dataclass(frozen=True)
class FuzzResult:
    """How many inputs were tried; on failure the shrunk failing feed and its comparison."""

    examples: int
    feed: Optional[Dict[str, np.ndarray]] = None
    comparison: Optional[Comparison] = None

    @property
    def passed(self) -> bool:
        return self.comparison is None


def fuzz(
    session: EdgeSession,
    reference: EdgeSession,
    float_session: Optional[EdgeSession],
    spec: ToleranceSpec,
    where: str,
    examples: int,
    seed: int,
    ranges: Optional[Mapping[str, Any]] = None,
) -> FuzzResult:
    """Run ``examples`` seeded Hypothesis feeds on ``session`` and ``reference`` and compare each.

    Raises a one-line ValueError (naming ``where``) before any input runs when ``spec`` does not fit the model.
    """
    from hypothesis import HealthCheck, Verbosity, given, settings
    from hypothesis import seed as seeded

    from ..model.strategies import inputs_for

    spec.check_outputs([o.name for o in session.model.outputs], where)
    failure: Dict[str, Any] = {}

    @seeded(seed)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        verbosity=Verbosity.quiet,
        suppress_health_check=list(HealthCheck),
    )
    @given(feed=inputs_for(session.model, ranges=ranges or None))
    def conforms(feed: Dict[str, np.ndarray]) -> None:
        actual, expected = session.run(feed), reference.run(feed)
        baseline = float_session.run(feed) if float_session is not None else None
        result = compare(session, actual, expected, spec, where, baseline, baseline_source(float_session))
        if not result.passed:
            failure.update(feed=feed, comparison=result)  # Hypothesis replays the shrunk one last
            raise AssertionError("outside tolerance")

    try:
        conforms()
    except AssertionError:
        pass
    return FuzzResult(examples, failure.get("feed"), failure.get("comparison"))
