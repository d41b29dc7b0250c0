"""The fixtures tests use: device/provider parameters, sessions, inputs, compare, no-fallback check."""

from __future__ import annotations

import itertools
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Mapping, NamedTuple, Optional

import pytest

from ._text import atomic_write
from .config.providers import resolve_provider
from .errors import EdgeError, InputError, MissingPackage, ModelError
from .items.target import TargetParam
from .junit import record_provenance
from .markers import ModelMarker, model_marker, providers_marker, tolerance_marker
from .outcomes import fail, open_session, outcome_of
from .run import CACHE_DIR, EdgeRun, edge_run

if TYPE_CHECKING:  # what the fixtures run (numpy, onnx, the checks) is imported inside the fixtures that need it
    import numpy as np

    from .compare.engine import Comparison
    from .devices.session import EdgeSession
    from .model.info import ModelInfo


class BoundTarget(NamedTuple):
    """What ``_edge_target`` gives the other fixtures: the test instance's device and provider, and a request of
    the test (its item, its other fixtures). The fixtures of every marker test take this instead of ``request``:
    pytest 9 builds a fixture definition, with an ``inspect.signature``, each time a fixture's ``request`` is
    resolved (three times per fixture that takes it)."""

    device: str
    provider: str
    request: pytest.FixtureRequest
    run: EdgeRun  # the run-wide state (what ``edge_run_state`` gives: one fixture less to resolve per fixture)

    @property
    def item(self) -> pytest.Item:
        return self.request.node


@pytest.fixture(name="_edge_target")
def _edge_target_fixture(request: pytest.FixtureRequest) -> BoundTarget:
    """The (device, provider) parameter from pytest_generate_tests; a parameter carrying an error (a
    provider typo in ``edge_providers``) fails this test instance with it."""
    target: Optional[TargetParam] = getattr(request, "param", None)
    if target is None:
        raise pytest.UsageError("edge fixtures need the test to be collected by pytest-edgeort")
    if target.error is not None:
        fail(target.error)
    return BoundTarget(target.device, target.provider, request, edge_run(request.config))


@pytest.fixture
def edge_device(_edge_target: BoundTarget) -> str:
    """Name of the device this test instance runs on (``local``, ``board1``, ...)."""
    return _edge_target[0]


@pytest.fixture
def edge_provider(_edge_target: BoundTarget) -> str:
    """Provider alias this test instance checks (``qnn-htp``, ``cpu``, ...)."""
    return _edge_target[1]


@pytest.fixture(scope="session")
def edge_run_state(request: pytest.FixtureRequest) -> EdgeRun:
    """The run-wide state (session cache, devices, recorded results)."""
    return edge_run(request.config)


@pytest.fixture
def edge_model_marker(request: pytest.FixtureRequest, edge_run_state: EdgeRun) -> ModelMarker:
    """The test's ``edge_model`` marker, resolved (paths relative to the test file; a suite's model prepared)."""
    return required_marker(request.node, edge_run_state)


def required_marker(node: pytest.Item, run: EdgeRun) -> ModelMarker:
    """:func:`resolved_marker`; a test without the marker fails with what to add."""
    marker = resolved_marker(node, run)
    if marker is None:
        fail(f'{node.nodeid}: this fixture needs @pytest.mark.edge_model("model.onnx")')
    return marker


_MARKER_KEY = pytest.StashKey[Optional[ModelMarker]]()


def resolved_marker(node: pytest.Item, run: EdgeRun) -> Optional[ModelMarker]:
    """``edge_model`` of ``node`` (None when absent), once per test, and once per run for the tests of one folder
    that share the mark (a parametrized test's instances): with ``suite=``, the suite's model and float model as
    the suite runs them; a missing package skips, any other problem fails, in one line (naming each test)."""
    if _MARKER_KEY in node.stash:
        return node.stash[_MARKER_KEY]
    mark = node.get_closest_marker("edge_model")
    key = (id(mark), node.path.parent)
    known = run.markers.get(key)
    if known is not None and known[0] is mark:
        marker = known[1]
    else:
        with outcome_of(EdgeError, ValueError, run=run, skip=(MissingPackage,)):
            marker = model_marker(node, mark)
        if marker is not None and marker.suite is not None:  # (a marker test without one never loads the suites)
            from .config.suite import load_suite
            from .items.prepared import suite_model_files
            from .model.prepare import PrepareError

            with outcome_of(EdgeError, ValueError, PrepareError, run=run, skip=(MissingPackage,)):
                files = suite_model_files(load_suite(marker.suite), run.rootdir / CACHE_DIR)
                float_model = marker.float_model or files.float_model
                marker = replace(marker, model=files.model, name=files.name, float_model=float_model)
        run.markers[key] = (mark, marker)
    node.stash[_MARKER_KEY] = marker
    return marker


@pytest.fixture
def edge_session(_edge_target: BoundTarget) -> EdgeSession:
    """The marked model on the current device and provider (CPU fallback allowed, placement checked)."""
    edge_run_state = _edge_target.run
    item = _edge_target.item
    marker = required_marker(item, edge_run_state)
    options = {**marker.options, **providers_marker(item).options}
    session = _marker_session(edge_run_state, _edge_target.device, _edge_target.provider, marker, options)
    record_provenance(item, session.provenance())
    return session


def _marker_session(
    run: EdgeRun, device: str, provider: str, marker: ModelMarker, options: Mapping[str, Any]
) -> EdgeSession:
    """The marked model on ``provider``: with ``shapes=`` a shape-fixed copy of it (as ``[prepare]
    fix_shapes``); a dynamic input on QNN that the plugin must generate (no ``inputs=``) fails with how to fix
    it, before QNN's "took none of the nodes"."""
    model = _shaped_model(run, marker)
    qnn = resolve_provider(provider).ep_name == "QNNExecutionProvider"
    if qnn and marker.inputs is None and model not in run.static_models:
        from .model.info import model_info
        from .model.inputs import static_shape

        with outcome_of(InputError, ModelError):
            info = model_info(model)
            for tensor in info.inputs:
                static_shape(info, tensor)
        run.static_models.add(model)
    return open_session(run, device, model, provider, options, name=marker.source)


def _shaped_model(run: EdgeRun, marker: ModelMarker) -> Path:
    """``marker.model``, or with ``shapes=`` its shape-fixed copy ``.edgeort-cache/shaped/<hash>/<name>``
    (cached by content hash, the file keeps its name for messages)."""
    if not marker.shapes:
        return marker.model
    from .model.prepare import PrepareError, PrepareRecipe, prepare_model

    with outcome_of(ValueError, PrepareError):
        recipe = PrepareRecipe.from_mapping({"fix_shapes": dict(marker.shapes)}, f"edge_model({marker.model.name!r})")
        prepared = prepare_model(marker.model, recipe, marker.model.parent, run.rootdir / CACHE_DIR / "shaped")
    named = prepared.parent / prepared.stem / marker.model.name
    if not named.is_file():
        named.parent.mkdir(exist_ok=True)
        atomic_write(named, prepared.read_bytes())
    return named


@pytest.fixture
def edge_reference(_edge_target: BoundTarget) -> EdgeSession:
    """The reference: ``reference_model`` (or the model) on the reference provider (``cpu``)."""
    edge_run_state = _edge_target.run
    from .checks.conformance import reference_target

    marker = required_marker(_edge_target.item, edge_run_state)
    device, provider = reference_target(_edge_target.device, marker.reference)
    if marker.reference_model is not None:
        reference = open_session(edge_run_state, device, marker.reference_model, provider)
    else:
        reference = open_session(edge_run_state, device, marker.model, provider, name=marker.source)
    request = _edge_target.request
    if "edge_session" in request.fixturenames:  # its runs take the reference's run of the same feed along
        session = request.getfixturevalue("edge_session")
        session.follow(reference)
        request.addfinalizer(lambda: session.follow(None))
    return reference


@pytest.fixture
def edge_inputs(edge_run_state: EdgeRun, edge_model_marker: ModelMarker) -> Dict[str, np.ndarray]:
    """Inputs from the marker's ``.npz`` or generated from the model's metadata (seeded)."""
    from .model.info import model_info
    from .model.inputs import generate_inputs, load_npz

    marker = edge_model_marker
    with outcome_of(InputError, ModelError):
        info = model_info(marker.model)
        if marker.inputs is not None:
            return first_example(info, load_npz(marker.inputs), str(marker.inputs), marker.shapes)
        return generate_inputs(info, edge_run_state.options.seed, 0, marker.input_ranges, marker.shapes)


def first_example(info: ModelInfo, arrays: Mapping[str, np.ndarray], source: str, shapes: Any) -> Dict[str, np.ndarray]:
    """One feed from an .npz: arrays of the exact input shape, or the first of N stacked on axis 0."""
    from .model.inputs import check_feed

    tensors = {t.name: t for t in info.inputs}
    feed = {}
    for name, array in arrays.items():
        tensor = tensors.get(name)
        stacked = tensor is not None and tensor.is_static and array.ndim == len(tensor.shape) + 1
        feed[name] = array[0] if stacked else array
    return check_feed(info, feed, source, shapes)


@pytest.fixture
def edge_compare(_edge_target: BoundTarget) -> Callable[..., Comparison]:
    """``edge_compare(actual, expected, baseline=None, *, label=None, **tolerance)``: fail with a per-output report
    when outside tolerance; ``label`` names this comparison (a data set's sample) in the failure and the records."""
    from .checks.conformance import baseline_source, open_float_session
    from .checks.conformance import compare as compare_outputs
    from .compare.tolerance import parse_tolerance
    from .items.conformance import conclude
    from .items.node import CheckNode
    from .model.inputs import named_arrays
    from .model.yardstick import YARDSTICK_DIR

    request, edge_run_state = _edge_target.request, _edge_target.run
    marker = resolved_marker(request.node, edge_run_state)
    edge_device, edge_provider = _edge_target.device, _edge_target.provider
    calls = itertools.count(1)
    opener, cache = partial(open_session, edge_run_state), edge_run_state.rootdir / CACHE_DIR / YARDSTICK_DIR

    def compare(
        actual: Mapping[str, np.ndarray],
        expected: Mapping[str, np.ndarray],
        baseline: Optional[Mapping[str, np.ndarray]] = None,
        *,
        label: Any = None,
        **tolerance: Any,
    ) -> Comparison:
        __tracebackhide__ = True  # a failure shows the test's line, not this function
        where = f"edge_compare in {request.node.nodeid}"
        number = next(calls)  # in a loop over a data set: which of the test's comparisons failed
        session = _session_for_compare(request, edge_run_state, edge_device, edge_provider, marker)
        with outcome_of(ValueError):
            names = [tensor.name for tensor in session.model.outputs]
            actual = named_arrays(actual, where, "actual", names)
            expected = named_arrays(expected, where, "expected", names)
            baseline = None if baseline is None else named_arrays(baseline, where, "baseline", names)
            spec = tolerance_marker(request.node)
            if tolerance:
                spec = spec.over(parse_tolerance(tolerance, where, keywords=("baseline", "label")))
            source = "the baseline given to edge_compare" if baseline is not None else None
            inputs = session.inputs_of(actual)  # the feed that made ``actual`` (a data set run first: each its own)
            if baseline is None and inputs is not None:
                model = session.model.path
                float_session = open_float_session(opener, edge_device, marker.float_model, spec, model, cache)
                baseline = float_session.run(inputs) if float_session is not None else None
                source = baseline_source(float_session)
            result = compare_outputs(session, actual, expected, spec, where, baseline, source)
        reference = _reference_name(request, session)
        node = CheckNode(edge_run_state, request.node, "conformance", edge_device, edge_provider)
        diagnose = _diagnose(request, edge_run_state, session, spec, inputs) if inputs is not None else None
        name = None if label is None else str(label)
        which = [name] if name is not None else []
        which += [f"comparison {number} of this test"] if number > 1 else []  # a loop's sample, without a label
        title = f"{session.label} vs {reference}" + (f" ({', '.join(which)})" if which else "")
        device = _reference_device(request)
        fields = {"reference": reference, "reference_device": device, "label": name}
        return conclude(node, session, result, title, diagnose=diagnose, **fields)

    return compare


def _diagnose(
    request: pytest.FixtureRequest, run: EdgeRun, session: EdgeSession, spec: Any, inputs: Mapping[str, np.ndarray]
) -> Callable[[], Any]:
    """The layer-wise diagnosis of ``session`` on ``inputs`` (those of the compared outputs) against the test's
    ``edge_reference`` (else the model on the device's CPU), for :func:`~.items.conformance.conclude` to run when
    ``--edge-diagnose`` says."""

    def diagnose() -> Any:
        from .checks.diagnose import PREFIX_DIR  # on a failure only: it imports onnx (~0.4 s)

        reference = request.getfixturevalue("edge_reference") if "edge_reference" in request.fixturenames else None
        cache, budget = run.rootdir / CACHE_DIR / PREFIX_DIR, run.options.diagnose_budget_s
        return session.diagnose(inputs, reference, spec, budget, cache=cache)

    return diagnose


def _reference_device(request: pytest.FixtureRequest) -> Optional[str]:
    """The device the test's ``edge_reference`` ran on (None: the test's own arrays)."""
    if "edge_reference" not in request.fixturenames:
        return None
    return request.getfixturevalue("edge_reference").device.name


def _reference_name(request: pytest.FixtureRequest, session: EdgeSession) -> str:
    """What ``expected`` came from, for the failure title: the test's ``edge_reference`` (its provider,
    and its model and device where they differ from the session's), else the test's own arrays."""
    if "edge_reference" not in request.fixturenames:
        return "expected outputs"
    reference = request.getfixturevalue("edge_reference")
    name = f"{reference.spec.alias} reference"
    if str(reference.name) != str(session.name):
        name += f" {reference.display_name}"
    if reference.device.name != session.device.name:
        name += f" on {reference.device.name}"
    return name


def _session_for_compare(request, run, device, provider, marker) -> EdgeSession:
    """The session ``edge_compare`` judges: the test's ``edge_session`` where it has one (the same key), else the
    marked model's session as ``edge_session`` would open it."""
    if marker is None:
        fail(f"{request.node.nodeid}: edge_compare needs @pytest.mark.edge_model(...) to know output scales")
    if "edge_session" in request.fixturenames:
        return request.getfixturevalue("edge_session")
    return _marker_session(run, device, provider, marker, {**marker.options, **providers_marker(request.node).options})


@pytest.fixture
def edge_assert_no_fallback(
    request: pytest.FixtureRequest,
    edge_run_state: EdgeRun,
    edge_device: str,
    edge_provider: str,
    edge_model_marker: ModelMarker,
) -> Callable[[], float]:
    """``edge_assert_no_fallback()``: the model must be created with CPU fallback disabled."""
    from .items.no_fallback import assert_no_fallback
    from .items.node import CheckNode

    def check() -> float:
        options = {**edge_model_marker.options, **providers_marker(request.node).options}
        node = CheckNode(edge_run_state, request.node, "no_cpu_fallback", edge_device, edge_provider)
        return assert_no_fallback(node, edge_model_marker.model, options, edge_model_marker.source)

    return check


@pytest.fixture
def edge_open(edge_run_state: EdgeRun, edge_device: str, request: pytest.FixtureRequest) -> Callable[..., EdgeSession]:
    """Factory: ``edge_open(model, provider="cpu", options=None, cpu_fallback=True, device=None)``."""
    base = Path(str(request.node.fspath)).parent

    def open_(
        model: Any,
        provider: str = "cpu",
        options: Optional[Mapping[str, Any]] = None,
        cpu_fallback: bool = True,
        device: Optional[str] = None,
    ) -> EdgeSession:
        path = Path(model)
        if not path.is_absolute():
            path = base / path
        return open_session(edge_run_state, device or edge_device, path, provider, options, cpu_fallback)

    return open_
