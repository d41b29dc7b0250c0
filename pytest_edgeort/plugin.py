"""pytest hooks: build the run state, register the plugin objects of this process's role, delegate.

Every pytest run of the environment loads this module: it imports only what any run needs (options, markers,
the run state, the fixtures); what collects suites or the op matrix is imported when a run has them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

import pytest

from . import fixtures, hookspec
from .config import MANIFEST
from .config.kinds import DeviceKind, kind_table
from .devices import make_device
from .errors import ComparisonError, EdgeError, InventoryError
from .items.target import TARGET, filtered_out, item_target, mark_marker_test, marker_targets
from .markers import MARKERS, parse_tolerance_markers
from .options import EdgeOptions, add_options
from .outcomes import outcome_of
from .relay import ResultRelay
from .run import CACHE_DIR, RUN_KEY, EdgeRun, MakeDevice, edge_run, import_ahead
from .signals import interrupt_on_sigterm
from .xdist import role_of

if TYPE_CHECKING:
    from .config.inventory import DeviceConfig


_STARTS_WORKERS = pytest.StashKey[bool]()  # whether this process starts workers ahead (see _starts_workers)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspec)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    for text in MARKERS.values():
        config.addinivalue_line("markers", text)
    role = role_of(config)
    options = EdgeOptions.from_config(config)
    run = EdgeRun(options, Path(str(config.rootpath)), role.notify, role.run_id, role.dist, *_device_kinds(config))
    config.stash[RUN_KEY] = run
    config.pluginmanager.register(ResultRelay(run), "edgeort-results")
    role.register(config, run)
    config.pluginmanager.register(fixtures, "edgeort-fixtures")
    config.stash[_STARTS_WORKERS] = role.collects and not config.option.collectonly
    if _starts_workers(config):  # the devices this command last ran edge items on start now (:mod:`.starthint`)
        from .starthint import command_key, last_devices

        for name in last_devices(run.rootdir / CACHE_DIR, command_key(config)):
            run.registry.start_ahead(name)


def _device_kinds(config: pytest.Config) -> Tuple[Dict[str, DeviceKind], MakeDevice, Callable[[], bool]]:
    """The run's device-kind table (built-in rows plus plugins' ones), its device factory (the
    ``pytest_edgeort_make_device`` hook) and whether a plugin or conftest implements that hook (then the rows'
    ``starts_ahead`` start nothing: the device it builds may start its workers its own way); UsageError (one line)
    when two rows share a name."""
    try:
        kinds = kind_table(config.hook.pytest_edgeort_device_kinds())
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None

    def make(device_config: DeviceConfig, kind: DeviceKind) -> Any:
        return config.hook.pytest_edgeort_make_device(device_config=device_config, kind=kind)

    def builds_own() -> bool:  # (asked when it matters: a conftest below the rootdir loads during collection)
        return len(config.hook.pytest_edgeort_make_device.get_hookimpls()) > 1

    return kinds, make, builds_own


@pytest.hookimpl(trylast=True)
def pytest_edgeort_make_device(device_config: DeviceConfig, kind: DeviceKind) -> Any:
    """The default: the kind's factory from the device-kind table."""
    return make_device(device_config, kind)


@pytest.hookimpl(trylast=True)  # after the reports are written; pytest's terminal summary comes after this
def pytest_sessionfinish(session: pytest.Session) -> None:
    edge_run(session.config).stop_workers_ahead()


def pytest_unconfigure(config: pytest.Config) -> None:
    if RUN_KEY in config.stash:
        config.stash[RUN_KEY].close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Marker tests run once per selected device and provider (``[<device>-<provider>]``)."""
    if TARGET not in metafunc.fixturenames:
        return
    run = edge_run(metafunc.config)
    try:
        devices = run.device_names()
    except InventoryError as exc:
        run.usage_errors.append(str(exc))
        devices = ()
    targets = marker_targets(run, metafunc.definition, devices)
    if devices and not targets:  # said as such, not as pytest's "got empty parameter set for (_edge_target)"
        skip = pytest.mark.skip(reason=filtered_out(run, metafunc.definition))
        metafunc.parametrize(TARGET, [pytest.param(None, marks=skip, id="NOTSET")], indirect=True)
        return
    metafunc.parametrize(TARGET, targets, ids=[f"{t.device}-{t.provider}" for t in targets], indirect=True)


def _starts_workers(config: pytest.Config) -> bool:
    """Whether this process starts workers ahead: it runs the tests it collects (not ``--collect-only``, not the
    xdist controller)."""
    return config.stash.get(_STARTS_WORKERS, False)


def pytest_itemcollected(item: pytest.Item) -> None:
    """An edge item's device starts connecting now where its kind can (a local worker loads while pytest collects)."""
    mark_marker_test(item)
    target = item_target(item)
    if target is not None and _starts_workers(item.config):
        edge_run(item.config).registry.start_ahead(target.device)


@pytest.hookimpl(trylast=True)  # after -k/-m/--deselect: ``items`` is what runs
def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    run = edge_run(config)
    if run.usage_errors:  # raised here, outside any collector, pytest prints one clean "ERROR:" line
        raise pytest.UsageError(run.usage_errors[0])
    edge_items = [item for item in items if item_target(item) is not None]
    targets = [item_target(item) for item in edge_items]
    run.plan_probes(targets)  # (a device started ahead for none stops)
    if _starts_workers(config):
        from .starthint import command_key, remember

        remember(run.rootdir / CACHE_DIR, command_key(config), [target.device for target in targets])
    if edge_items:
        parse_tolerance_markers(edge_items)
        interrupt_on_sigterm()
        import_ahead()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Hosted devices (AI Hub) get every selected suite item's jobs now: submit all, then each item collects."""
    run = edge_run(session.config)
    edge_items = any(item_target(item) is not None for item in session.items)
    if edge_items and role_of(session.config).submits_ahead and run.registry.hosted():
        from .items.suite import submit_ahead

        submit_ahead(run, session.items)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """With ``--edge-op-matrix`` the session also collects the ONNX node-test corpus."""
    report = yield
    if isinstance(collector, pytest.Session) and report.passed and edge_run(collector.config).options.op_matrix:
        from .items.opmatrix import add_corpus

        add_corpus(collector, report)
    return report


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Optional[pytest.Collector]:
    if file_path.name == MANIFEST:
        from .items.suite import SuiteFile

        return SuiteFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """An expected problem raised in a test body (``edge_session.run`` on a dead worker, a lost
    board) is one line, as in fixtures: not a traceback through plugin internals."""
    with outcome_of(EdgeError, run=edge_run(item.config)):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """An ``edge_compare`` failure shows the test's line and the comparison, not the test's
    arguments (the feed arrays) as pytest's long tracebacks would."""
    report = yield
    excinfo = call.excinfo
    if excinfo is not None and isinstance(excinfo.value, ComparisonError):
        excinfo.traceback = excinfo.traceback.cut(path=item.path)  # from the test's own frame on
        report.longrepr = excinfo.getrepr(style="short", funcargs=False)
    return report
