"""pytest hooks: options, markers, parametrization, suite collection. Wiring only."""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import pytest

from . import fixtures
from .errors import DeviceUnavailable, InventoryError, ProviderError
from .markers import MARKERS, providers_marker
from .suite import MANIFEST
from .runstate import DEFAULT_PROVIDERS, DEFAULT_SEED, RUN_KEY, EdgeOptions, EdgeRun, edge_run

TARGET = "_edge_target"


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
    devices_file = pick("edge_devices_file") or "edge-devices.toml"
    report = pick("edge_report")
    try:
        seed = int(pick("edge_seed"))
    except ValueError:
        raise pytest.UsageError(f"edge_seed must be an integer, got {pick('edge_seed')!r}") from None
    return EdgeOptions(
        devices=tuple(pick("edge_device") or ["local"]),
        devices_file=(root / devices_file) if not Path(devices_file).is_absolute() else Path(devices_file),
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
    run = EdgeRun(_options(config), Path(str(config.rootpath)))
    config.stash[RUN_KEY] = run
    config.pluginmanager.register(OutcomeRecorder(run), "edgeort-outcomes")
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
    run.edge_nodeids.update(i.nodeid for i in items if is_edge_item(i))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Optional[pytest.Collector]:
    if file_path.name == MANIFEST:
        from .suite_items import SuiteFile

        return SuiteFile.from_parent(parent, path=file_path)
    return None


def is_edge_item(item: pytest.Item) -> bool:
    return TARGET in getattr(item, "fixturenames", ()) or type(item).__name__ == "SuiteItem"


class OutcomeRecorder:
    """Keeps each test's final outcome for the JSON report (a plugin object bound to the run)."""

    def __init__(self, run: EdgeRun) -> None:
        self.run = run

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.nodeid not in self.run.edge_nodeids:
            return
        outcome = "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome
        if report.when == "call" or report.outcome != "passed":
            self.run.outcomes[report.nodeid] = "error" if report.when != "call" and report.failed else outcome
        if report.skipped and not hasattr(report, "wasxfail") and isinstance(report.longrepr, tuple):
            self.run.skip_reasons.append(str(report.longrepr[2]).replace("Skipped: ", "", 1))


def pytest_sessionfinish(session: pytest.Session) -> None:
    run = edge_run(session.config)
    if run.options.report is None or not run.records:
        return
    from .jsonreport import build_report, write_report

    devices = {name: dev._caps or {} for name, dev in run.devices.items()}
    nodeids = {r.get("nodeid") for r in run.records}
    outcomes = {k: v for k, v in run.outcomes.items() if k in nodeids}
    write_report(run.options.report, build_report(run.records, devices, run.options.seed, outcomes))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run = edge_run(config)
    if run.records or run.skip_reasons:
        from .summary import build_rows, format_rows, skip_counts

        terminalreporter.section("edgeort summary")
        rows = build_rows(run.records, run.outcomes)
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
    if run.usage_errors or not any(is_edge_item(i) for i in items):
        return None
    lines = [f"edgeort: devices {', '.join(run.options.devices)}; seed {run.options.seed}"
             + (f"; providers {', '.join(run.options.providers)}" if run.options.providers else "")
             + ("; strict" if run.options.strict else "")]
    for name in run.options.devices:
        lines.append(device_header(run, name))
    return lines


def device_header(run: EdgeRun, name: str) -> str:
    """'edgeort device local: Linux-...-x86_64, onnxruntime 1.31.1, QNN SDK 2.51.0 (EP 2.7.0), providers ...'."""
    try:
        caps = run.device(name).capabilities()
        providers = run.device(name).provider_aliases()
    except (DeviceUnavailable, InventoryError) as exc:
        return f"edgeort device {name}: unavailable: {exc}"
    qnn = caps.get("qnn") or {}
    qnn_text = f", QNN SDK {qnn.get('sdk_version')} (EP {qnn.get('ep_package_version')})" if qnn else ""
    soc = f" [{caps['soc']}]" if caps.get("soc") else ""
    return (f"edgeort device {name}: {caps.get('platform')}{soc}, python {caps.get('python')}, "
            f"onnxruntime {caps.get('onnxruntime')}{qnn_text}; providers: {', '.join(providers)}")
