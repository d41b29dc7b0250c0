"""Conformance: a provider's outputs against a reference's, under a parsed tolerance (no pytest here)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, List, Mapping, Optional, Sequence, Tuple

from ..compare.engine import Comparison, Yardstick, compare_outputs
from ..compare.tolerance import SHALLOW_DEPTH, Tolerance, ToleranceSpec, default_tolerance
from ..config.suite import reference_provider
from ..model.info import ModelInfo, model_info
from ..model.yardstick import YARDSTICK_DIR, yardstick_model
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
    open_session: Opener,
    device: str,
    float_model: Optional[Path],
    spec: ToleranceSpec,
    model: Optional[Path] = None,
    cache: Optional[Path] = None,
) -> Optional[EdgeSession]:
    """A float session on the device's CPU, or None: the float model when ``spec`` has a ``vs_float`` rule;
    for a QDQ ``model`` whose deep outputs keep the default SNR floor, the yardstick of what quantization
    costs: ``float_model`` when given, else ``model`` without its activation rounding (cached in ``cache``)."""
    info = model_info(model) if model is not None else None
    yardstick = info is not None and any(_takes_yardstick(info, name, spec) for name in info.output_quant)
    if float_model is not None and (spec.needs_float_baseline or yardstick):
        return open_session(device, float_model, "cpu")
    if yardstick and info is not None and cache is not None:
        return open_session(device, yardstick_model(info.path, info.sha256, cache), "cpu")
    return None


def baseline_source(float_session: Optional[EdgeSession]) -> Optional[str]:
    """What a float session's outputs are, for the failure text (None: no session)."""
    if float_session is None:
        return None
    path = float_session.model.path
    if path.parent.name == YARDSTICK_DIR:
        return "the QDQ model without activation rounding"
    return f"float_model {path.name}"


def _takes_yardstick(model: ModelInfo, name: str, spec: ToleranceSpec) -> bool:
    """A deep quantized output whose SNR floor is the default: the yardstick may lower it."""
    depth = model.depth(name)
    user = {**spec.rules, **spec.outputs.get(name, {})}
    return name in model.output_quant and (depth is None or depth > SHALLOW_DEPTH) and "min_snr_db" not in user


def output_tolerance(session: EdgeSession, spec: ToleranceSpec, name: str) -> Tolerance:
    """The rules output ``name`` of ``session``'s model is checked with: its precision default, ``spec`` on top."""
    model, provider = session.model, session.spec
    default = default_tolerance(
        model.precision(name, provider.float_as_fp16),
        provider.accelerator,
        model.depth(name),
        model.shape(name),
        model.scale(name) is not None,
        model.computed_by(name),
    )
    return spec.for_output(name, default)


def compare(
    session: EdgeSession,
    actual: Outputs,
    expected: Outputs,
    spec: ToleranceSpec,
    where: str,
    baseline: Optional[Outputs] = None,
    source: Optional[str] = None,
) -> Comparison:
    """``actual`` (outputs of ``session``) against ``expected``, each output under its precision default with
    ``spec`` on top; ``baseline``: the float model's outputs (``vs_float``), also the yardstick (named by
    ``source``, see :func:`baseline_source`) of every deep quantized output that keeps the default SNR floor.

    Raises a one-line ValueError (naming ``where``) when ``spec`` names an output the model lacks.
    """
    model = session.model
    spec.check_outputs([o.name for o in model.outputs], where)
    tolerances = {o.name: output_tolerance(session, spec, o.name) for o in model.outputs}
    scales = {o.name: model.scale(o.name) for o in model.outputs}
    yardsticks = {}
    if baseline is not None and source is not None:
        yardsticks = {
            name: Yardstick(baseline[name], source)
            for name in model.output_quant
            if name in baseline and _takes_yardstick(model, name, spec)
        }
    return compare_outputs(actual, expected, tolerances, scales, baseline, model.output_layout, yardsticks)


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
    return compare(session, stack_examples(outputs), expected, spec, where, baseline, baseline_source(float_session))
