"""The plugin's command-line options and ini keys, resolved once into :class:`EdgeOptions`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Tuple

import pytest

from ._text import did_you_mean
from .config.providers import resolve_provider

DEFAULT_SEED = 20240607
DEFAULT_PROVIDERS = ("qnn-htp",)
DIAGNOSE_MODES = ("off", "on", "always")
DIAGNOSE_BUDGET_S = 60.0


def add_options(parser: pytest.Parser) -> None:
    """Declare the ``--edge-*`` options and their ``edge_*`` ini keys."""
    group = parser.getgroup("edgeort", "on-device ONNX conformance (pytest-edgeort)")
    group.addoption(
        "--edge-device",
        action="append",
        dest="edge_device",
        metavar="NAME",
        help="run edge tests on this device (repeatable; default: local)",
    )
    group.addoption(
        "--edge-devices-file",
        dest="edge_devices_file",
        metavar="PATH",
        help="device inventory (default: edge-devices.toml in the rootdir)",
    )
    group.addoption(
        "--edge-provider",
        action="append",
        dest="edge_provider",
        metavar="NAME",
        help="keep only these providers of what markers/suites ask for (repeatable)",
    )
    group.addoption(
        "--edge-strict",
        action="store_true",
        dest="edge_strict",
        default=None,
        help="an unreachable device or a missing provider/package/golden FAILS instead of skipping",
    )
    group.addoption(
        "--edge-update-golden",
        action="store_const",
        const="all",
        dest="edge_update_golden",
        default=None,
        help="(re)write golden outputs instead of comparing against them (never from a failing conformance)",
    )
    group.addoption(  # its own option string: a bare --edge-update-golden never swallows the path after it
        "--edge-update-golden=new",
        action="store_const",
        const="new",
        dest="edge_update_golden",
        help="write only the golden outputs that are missing; compare against the others",
    )
    group.addoption(
        "--edge-report",
        dest="edge_report",
        metavar="PATH",
        help="write a JSON report of every comparison, placement and latency",
    )
    group.addoption(
        "--edge-html",
        dest="edge_html",
        metavar="PATH",
        help="write a self-contained HTML report (tables, error histograms, placement per op)",
    )
    group.addoption(
        "--edge-seed",
        dest="edge_seed",
        type=int,
        metavar="N",
        help=f"seed for generated inputs (default {DEFAULT_SEED})",
    )
    group.addoption(
        "--edge-diagnose",
        dest="edge_diagnose",
        metavar="off|on|always",
        help="layer-wise diagnosis of conformance checks: on (default) for failing ones, always, or off",
    )
    group.addoption(
        "--edge-op-matrix",
        action="store_true",
        dest="edge_op_matrix",
        default=None,
        help="collect the ONNX node-test corpus as an op-support matrix per device x provider",
    )
    group.addoption(
        "--edge-op-filter",
        dest="edge_op_filter",
        metavar="REGEX",
        help="op matrix: only the node tests whose name matches REGEX (re.search)",
    )
    group.addoption(
        "--edge-op-matrix-csv",
        dest="edge_op_matrix_csv",
        metavar="PATH",
        help="op matrix: write one CSV row per case x device x provider",
    )
    group.addoption(
        "--edge-no-ep-cache",
        action="store_true",
        dest="edge_no_ep_cache",
        default=None,
        help="do not use the EP-context (compiled graph) cache on the device",
    )
    parser.addini("edge_device", "devices to run edge tests on", type="linelist", default=[])
    parser.addini("edge_devices_file", "device inventory path (relative to the rootdir)", default="")
    parser.addini("edge_provider", "provider filter", type="linelist", default=[])
    parser.addini(
        "edge_default_providers",
        "providers for edge tests without edge_providers",
        type="linelist",
        default=list(DEFAULT_PROVIDERS),
    )
    parser.addini("edge_strict", "fail instead of skip on missing devices/providers", type="bool", default=False)
    parser.addini("edge_update_golden", "rewrite golden outputs: true (all) or new (only missing ones)", default="")
    parser.addini("edge_report", "JSON report path", default="")
    parser.addini("edge_html", "HTML report path", default="")
    parser.addini("edge_seed", "seed for generated inputs", default=str(DEFAULT_SEED))
    parser.addini("edge_diagnose", "layer-wise diagnosis: off, on (failing checks) or always", default="on")
    parser.addini("edge_diagnose_budget_s", "seconds one layer-wise diagnosis may take", default=str(DIAGNOSE_BUDGET_S))
    parser.addini("edge_op_matrix", "collect the ONNX node-test corpus as an op matrix", type="bool", default=False)
    parser.addini("edge_op_filter", "op matrix: node tests whose name matches this regex", default="")
    parser.addini("edge_op_matrix_csv", "op matrix CSV path", default="")
    parser.addini("edge_no_ep_cache", "do not use the EP-context cache on the device", type="bool", default=False)


@dataclass(frozen=True)
class EdgeOptions:
    """The plugin's command-line/ini options, resolved."""

    devices: Tuple[str, ...] = ("local",)
    devices_file: Optional[Path] = None
    providers: Tuple[str, ...] = ()  # filter; empty keeps everything
    default_providers: Tuple[str, ...] = DEFAULT_PROVIDERS
    strict: bool = False
    seed: int = DEFAULT_SEED
    update_golden: str = ""  # "" (compare), "all" or "new" (write only missing goldens)
    report: Optional[Path] = None
    html: Optional[Path] = None  # --edge-html PATH
    diagnose: str = "on"  # --edge-diagnose: off | on (failing conformance checks) | always
    diagnose_budget_s: float = DIAGNOSE_BUDGET_S  # ini edge_diagnose_budget_s
    op_matrix: bool = False  # --edge-op-matrix
    op_filter: str = ""  # --edge-op-filter REGEX (validated)
    op_matrix_csv: Optional[Path] = None  # --edge-op-matrix-csv PATH
    ep_cache: bool = True  # --edge-no-ep-cache: False

    @classmethod
    def from_config(cls, config: pytest.Config) -> EdgeOptions:
        """The options of this run: the command line wins over the ini file; UsageError (one line)
        for a named inventory file that does not exist, a seed that is no integer, a provider name that does
        not resolve."""

        def pick(name: str) -> Any:
            value = config.getoption(name)
            return value if value not in (None, []) else config.getini(name)

        named_file = pick("edge_devices_file")
        devices_file = Path(named_file or "edge-devices.toml")
        path = devices_file if devices_file.is_absolute() else Path(str(config.rootpath)) / devices_file
        if named_file and not path.exists():  # the default file may be absent; one that was named may not
            raise pytest.UsageError(f"--edge-devices-file {path}: no such file")
        try:
            seed = int(pick("edge_seed"))
        except ValueError:
            raise pytest.UsageError(f"edge_seed must be an integer, got {pick('edge_seed')!r}") from None
        diagnose = str(pick("edge_diagnose") or "on")
        if diagnose not in DIAGNOSE_MODES:
            raise pytest.UsageError(
                f"edge_diagnose must be one of {', '.join(DIAGNOSE_MODES)}, got {diagnose!r}"
                + did_you_mean(diagnose, DIAGNOSE_MODES)
            )
        given = config.getini("edge_diagnose_budget_s")
        try:
            budget = float(given)
        except ValueError:
            budget = -1.0
        if not budget > 0:
            raise pytest.UsageError(f"edge_diagnose_budget_s must be a number of seconds > 0, got {given!r}")
        report = pick("edge_report")
        html = pick("edge_html")
        op_filter = pick("edge_op_filter") or ""
        try:
            re.compile(op_filter)
        except re.error as exc:
            raise pytest.UsageError(f"--edge-op-filter {op_filter!r}: not a regular expression ({exc})") from None
        op_csv = pick("edge_op_matrix_csv")
        providers = tuple(pick("edge_provider") or ())
        default_providers = tuple(config.getini("edge_default_providers") or DEFAULT_PROVIDERS)
        for option, names in (("--edge-provider", providers), ("edge_default_providers", default_providers)):
            for name in names:  # a typo would filter every test out: a green run that ran nothing
                try:
                    resolve_provider(name)
                except ValueError as exc:
                    raise pytest.UsageError(f"{option}: {exc}") from None
        return cls(
            devices=tuple(dict.fromkeys(pick("edge_device") or ["local"])),  # each once: ids stay [<device>-...]
            devices_file=path,
            providers=providers,
            default_providers=default_providers,
            strict=bool(pick("edge_strict")),
            seed=seed,
            update_golden=_update_golden(pick("edge_update_golden")),
            report=Path(report) if report else None,
            html=Path(html) if html else None,
            diagnose=diagnose,
            diagnose_budget_s=budget,
            op_matrix=bool(pick("edge_op_matrix")),
            op_filter=op_filter,
            op_matrix_csv=Path(op_csv) if op_csv else None,
            ep_cache=not pick("edge_no_ep_cache"),
        )

    @property
    def full_records(self) -> bool:
        """Whether a passing comparison's record keeps every statistic: a report file (JSON or HTML) shows them;
        without one, the terminal summary and the JUnit properties read only :data:`~.compare.result.SUMMARY_FIELDS`."""
        return self.report is not None or self.html is not None

    def providers_for(self, requested: Optional[Tuple[str, ...]]) -> List[str]:
        """Providers a test/suite asks for (or the defaults), each once, minus those --edge-provider drops."""
        wanted = list(dict.fromkeys(requested or self.default_providers))
        for name in wanted:
            resolve_provider(name)  # unknown names fail early with a hint
        if self.providers:
            keep = set(self.providers)
            wanted = [p for p in wanted if p in keep or resolve_provider(p).ep_name in keep]
        return wanted


#: --edge-update-golden[=new] and the ini values -> the mode: "" (compare), "all" or "new"
_UPDATE_GOLDEN = {
    **dict.fromkeys(("", "false", "0", "no"), ""),
    **dict.fromkeys(("true", "1", "yes", "all"), "all"),
    "new": "new",
}


def _update_golden(value: Any) -> str:
    """--edge-update-golden[=new] or the ini value as "", "all" or "new"; UsageError (one line) otherwise."""
    text = str(value).strip().lower() if value not in (None, False) else ""
    if text not in _UPDATE_GOLDEN:
        raise pytest.UsageError(f"edge_update_golden must be true, false or new, got {value!r}")
    return _UPDATE_GOLDEN[text]
