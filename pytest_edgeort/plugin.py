"""pytest hooks: options, markers, parametrization, suite collection, xdist scheduling. Wiring only."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional

import pytest

from . import fixtures
from .errors import ComparisonError, DeviceUnavailable, EdgeError, InventoryError, ProviderError, ReportError
from .markers import MARKERS, providers_marker
from .config.suite import MANIFEST
from .results import TARGET, ResultRelay, item_target
from .run import DEFAULT_PROVIDERS, DEFAULT_SEED, RUN_KEY, EdgeOptions, EdgeRun, edge_run



def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("edgeort", "on-device ONNX conformance (pytest-edgeort)")
    group.addoption("--edge-device", action="append", dest="edge_device", metavar="NAME",
                    help="run edge tests on this device (repeatable; default: local)")
    group.addoption("--edge-devices-file", dest="edge_devices_file", metavar="PATH",
                    help="device inventory (default: edge-devices.toml in the rootdir)")
    group.addoption("--edge-provider", action="append", dest="edge_provider", metavar="NAME",
                    help="keep only these providers of what markers/suites ask for (repeatable)")
    group.addoption("--edge-strict", action="store_true", dest="edge_strict", default=None,
                    help="an unreachable device or a missing provider/package/golden FAILS instead of skipping")
    group.addoption("--edge-update-golden", action="store_true", dest="edge_update_golden", default=None,
                    help="(re)write golden outputs instead of comparing against them")
    group.addoption("--edge-report", dest="edge_report", metavar="PATH",
                    help="write a JSON report of every comparison, placement and latency")
    group.addoption("--edge-seed", dest="edge_seed", type=int, metavar="N",
                    help=f"seed for generated inputs (default {DEFAULT_SEED})")
    parser.addini("edge_device", "devices to run edge tests on", type="linelist", default=[])
    parser.addini("edge_devices_file", "device inventory path (relative to the rootdir)", default="")
    parser.addini("edge_provider", "provider filter", type="linelist", default=[])
    parser.addini("edge_default_providers", "providers for edge tests without edge_providers",
                  type="linelist", default=list(DEFAULT_PROVIDERS))
    parser.addini("edge_strict", "fail instead of skip on missing devices/providers", type="bool", default=False)
    parser.addini("edge_update_golden", "rewrite golden outputs", type="bool", default=False)
    parser.addini("edge_report", "JSON report path", default="")
    parser.addini("edge_seed", "seed for generated inputs", default=str(DEFAULT_SEED))


def _options(config: pytest.Config) -> EdgeOptions:
    def pick(name: str):
        value = config.getoption(name)
        return value if value not in (None, []) else config.getini(name)

    root = Path(str(config.rootpath))
    named_file = pick("edge_devices_file")
    devices_file = named_file or "edge-devices.toml"
    path = (root / devices_file) if not Path(devices_file).is_absolute() else Path(devices_file)
    if named_file and not path.exists():  # the default file may be absent; one that was named may not
        raise pytest.UsageError(f"--edge-devices-file {path}: no such file")
    report = pick("edge_report")
    try:
        seed = int(pick("edge_seed"))
    except ValueError:
        raise pytest.UsageError(f"edge_seed must be an integer, got {pick('edge_seed')!r}") from None
    return EdgeOptions(
        devices=tuple(pick("edge_device") or ["local"]),
        devices_file=path,
        providers=tuple(pick("edge_provider") or ()),
        default_providers=tuple(config.getini("edge_default_providers") or DEFAULT_PROVIDERS),
        strict=bool(pick("edge_strict")),
        seed=seed,
        update_golden=bool(pick("edge_update_golden")),
        report=Path(report) if report else None,
    )


def pytest_configure(config: pytest.Config) -> None:
    for text in MARKERS.values():
        config.addinivalue_line("markers", text)
    run = EdgeRun(_options(config), Path(str(config.rootpath)), notify=_notifier(config))
    if is_xdist_worker(config):
        run.run_id = config.workerinput["testrunuid"]  # the workers of one run share its board locks' run id
        run.xdist_dist = config.workerinput.get("edgeort_dist")
    config.stash[RUN_KEY] = run
    config.pluginmanager.register(ResultRelay(run), "edgeort-results")
    config.pluginmanager.register(fixtures, "edgeort-fixtures")


def pytest_unconfigure(config: pytest.Config) -> None:
    if RUN_KEY in config.stash:
        config.stash[RUN_KEY].close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if TARGET not in metafunc.fixturenames:
        return
    run = edge_run(metafunc.config)
    try:
        devices = run.device_names()
        providers = run.providers_for(providers_marker(metafunc.definition).providers or None)
    except (InventoryError, ProviderError) as exc:
        run.usage_errors.append(f"{metafunc.definition.nodeid}: {exc}" if isinstance(exc, ProviderError) else str(exc))
        devices, providers = (), ()
    targets = [(d, p) for d in devices for p in providers]
    metafunc.parametrize(TARGET, targets, ids=[f"{d}-{p}" for d, p in targets])


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    run = edge_run(config)
    if run.usage_errors:  # raised here, outside any collector, pytest prints one clean "ERROR:" line
        raise pytest.UsageError(run.usage_errors[0])
    if any(is_edge_item(item) for item in items):
        from .signals import interrupt_on_sigterm

        interrupt_on_sigterm()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: List[str]) -> None:
    """xdist controller (it collects nothing itself): SIGTERM like Ctrl-C once a worker reports edge items."""
    from .xdist import device_of

    if any(device_of(nodeid, edge_run(node.config).options.devices) for nodeid in ids):
        from .signals import interrupt_on_sigterm

        interrupt_on_sigterm()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: tell each worker the --dist mode (workers re-parse the command line only)."""
    node.workerinput["edgeort_dist"] = node.config.option.dist


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist controller: keep every item of a locked device on one worker (see :mod:`.scheduling`)."""
    locked = edge_run(config).locked_devices()
    from .xdist import TAKES_OVER, DeviceScheduling

    if not locked or config.option.dist not in TAKES_OVER:
        return None  # xdist's own scheduler (a split board then fails its items: the board lock self-check)

    return DeviceScheduling(config, log, locked)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """An expected problem raised in a test body (``edge_session.run`` on a dead worker, a lost
    board) is one line, as in fixtures: not a traceback through plugin internals."""
    try:
        return (yield)
    except EdgeError as exc:
        error = exc  # raised below, outside the handler: no "during handling of the above exception"
    from .outcomes import raise_outcome

    raise_outcome(edge_run(item.config), error)


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


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Optional[pytest.Collector]:
    if file_path.name == MANIFEST:
        from .suite_items import SuiteFile

        return SuiteFile.from_parent(parent, path=file_path)
    return None


def is_edge_item(item: pytest.Item) -> bool:
    return item_target(item) is not None


def is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _notifier(config: pytest.Config) -> Callable[[str], None]:
    """Print a notice now, even from inside a test (e.g. "waiting for the board lock")."""

    def notify(message: str) -> None:
        capman = config.pluginmanager.get_plugin("capturemanager")
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            if reporter is not None and not is_xdist_worker(config):
                reporter.write_line(message, yellow=True)
            else:  # an xdist worker's terminal output goes nowhere; its stderr reaches the console
                sys.stderr.write(f"[{config.workerinput['workerid']}] {message}\n" if is_xdist_worker(config)
                                 else message + "\n")

    return notify


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the JSON report (also after Ctrl-C: pytest still finishes the session)."""
    run = edge_run(session.config)
    if run.options.report is None or not (run.records or run.outcomes) or is_xdist_worker(session.config):
        return
    from .reporting.jsonreport import build_report, write_report
    from .reporting.summary import skip_counts

    try:
        write_report(run.options.report, build_report(run.records, run.device_facts, run.options.seed,
                                                      run.outcomes, skip_counts(run.skip_reasons), int(exitstatus)))
    except ReportError as exc:  # the rest of the terminal output stays; the run must not look green
        run.report_errors.append(str(exc))
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run = edge_run(config)
    if is_xdist_worker(config):
        return
    for line in run.report_errors:
        terminalreporter.write_line(line, red=True, bold=True)
    if run.records or run.skip_reasons:
        from .reporting.summary import build_rows, device_line, format_rows, lock_lines, skip_counts

        terminalreporter.section("edgeort summary")
        if not run.devices:  # the xdist controller: the workers' devices, as their reports described them
            for name, facts in sorted(run.device_facts.items()):
                terminalreporter.write_line(device_line(name, facts))
        for line in lock_lines(run.device_facts):
            terminalreporter.write_line(line, yellow=True)
        rows = build_rows(run.records, run.outcomes, Path(str(config.rootpath)))
        if rows:
            for line in format_rows(rows):
                terminalreporter.write_line(line)
        for reason, count in skip_counts(run.skip_reasons):
            terminalreporter.write_line(f"skipped {count}x: {reason}", yellow=True)
    updates = [r for r in run.records if r.get("golden_update")]
    if updates:
        terminalreporter.section("edgeort golden updates")
        for record in updates:
            terminalreporter.write_line(f"{record['golden']} ({record['device']}): " + "; ".join(record["golden_update"]))


def pytest_report_collectionfinish(config: pytest.Config, items: List[pytest.Item]) -> Optional[List[str]]:
    run = edge_run(config)
    if run.usage_errors or is_xdist_worker(config) or not any(is_edge_item(i) for i in items):
        return None  # an xdist worker would connect to every device here; the controller's summary lists them
    lines = [f"edgeort: devices {', '.join(run.options.devices)}; seed {run.options.seed}"
             + (f"; providers {', '.join(run.options.providers)}" if run.options.providers else "")
             + ("; strict" if run.options.strict else "")]
    for name in run.options.devices:
        lines.append(device_header(run, name))
    return lines


def device_header(run: EdgeRun, name: str) -> str:
    """'edgeort device local: Linux-...-x86_64, onnxruntime 1.31.1, QNN SDK 2.51.0 (EP 2.7.0), providers ...'."""
    from .reporting.summary import device_line

    try:
        return device_line(name, run.device(name).capabilities())
    except (DeviceUnavailable, InventoryError) as exc:
        return f"edgeort device {name}: unavailable: {exc}"
