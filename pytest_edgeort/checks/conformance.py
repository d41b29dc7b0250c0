"""Conformance: a provider's outputs against a reference's, under a parsed tolerance (no pytest here)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, List, Mapping, Optional, Sequence, Tuple

from ..compare.engine import Comparison, compare_outputs
from ..compare.tolerance import Tolerance, ToleranceSpec, default_tolerance
from ..config.suite import reference_provider
from .golden import stack_examples

if TYPE_CHECKING:
    import numpy as np

    from ..devices.session import EdgeSession

Outputs = Mapping[str, "np.ndarray"]
#: ``(device, model, provider, options=None)`` -> a session; the caller decides what a failure to open means
Opener = Callable[..., "EdgeSession"]


def reference_target(device: str, reference: str) -> Tuple[str, str]:
    """``(device, provider)`` of a reference: "host" is this machine's CPU, "cpu" the device's own CPU."""
    return ("local" if reference == "host" else device), reference_provider(reference)


def open_float_session(
    open_session: Opener, device: str, float_model: Optional[Path], spec: ToleranceSpec
) -> Optional[EdgeSession]:
    """The float model on the device's CPU when ``spec`` has a ``vs_float`` rule and there is one, else None."""
    if float_model is None or not spec.needs_float_baseline:
        return None
    return open_session(device, float_model, "cpu")


def output_tolerance(session: EdgeSession, spec: ToleranceSpec, name: str) -> Tolerance:
    """The rules output ``name`` of ``session``'s model is checked with: its precision default, ``spec`` on top."""
    model, provider = session.model, session.spec
    default = default_tolerance(
        model.precision(name, provider.float_as_fp16),
        provider.accelerator,
        model.depth(name),
        model.shape(name),
        model.scale(name) is not None,
    )
    return spec.for_output(name, default)


def compare(
    session: EdgeSession,
    actual: Outputs,
    expected: Outputs,
    spec: ToleranceSpec,
    where: str,
    baseline: Optional[Outputs] = None,
) -> Comparison:
    """``actual`` (outputs of ``session``) against ``expected``, each output under its precision default with
    ``spec`` on top; ``baseline``: the float model's outputs (``vs_float``).

    Raises a one-line ValueError (naming ``where``) when ``spec`` names an output the model lacks.
    """
    model = session.model
    spec.check_outputs([o.name for o in model.outputs], where)
    tolerances = {o.name: output_tolerance(session, spec, o.name) for o in model.outputs}
    scales = {o.name: model.scale(o.name) for o in model.outputs}
    return compare_outputs(actual, expected, tolerances, scales, baseline)


def compare_examples(
    session: EdgeSession,
    actual: Sequence[Outputs],
    expected: Outputs,
    feeds: Sequence[Mapping[str, Any]],
    spec: ToleranceSpec,
    where: str,
    float_session: Optional[EdgeSession] = None,
) -> Comparison:
    """Compare all examples at once, stacked on a new axis 0 (``expected`` is stacked already): SNR and
    cosine over the whole set (the basis of the measured tolerances); elementwise rules are unchanged."""
    outputs: List[Outputs] = list(actual)
    baseline = stack_examples(float_session.run_all(feeds)) if float_session is not None else None
    return compare(session, stack_examples(outputs), expected, spec, where, baseline)
