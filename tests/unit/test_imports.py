"""The package's import structure: the plugin's import stays light, and no two modules import each other."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set

import pytest

import pytest_edgeort

HEAVY = ("numpy", "onnx", "onnxruntime", "fabric", "paramiko")
PACKAGE = Path(pytest_edgeort.__file__).parent


def test_importing_the_plugin_loads_no_heavy_module():
    code = (
        f"import json, sys, pytest_edgeort.plugin; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


#: What a pytest run without edge tests loads of the plugin: its wiring and the run state, none of the modules
#: that collect suites, run checks, compare or report (they cost every run of the environment ~11 ms more), read the
#: inventory or make records (their dataclasses ~7 ms more).
WIRING = {
    "pytest_edgeort",
    "pytest_edgeort._text",
    "pytest_edgeort.config",
    "pytest_edgeort.config.kinds",
    "pytest_edgeort.config.providers",
    "pytest_edgeort.devices",
    "pytest_edgeort.devices.boardlock",
    "pytest_edgeort.errors",
    "pytest_edgeort.fixtures",
    "pytest_edgeort.hookspec",
    "pytest_edgeort.items",
    "pytest_edgeort.items.target",
    "pytest_edgeort.junit",
    "pytest_edgeort.markers",
    "pytest_edgeort.options",
    "pytest_edgeort.outcomes",
    "pytest_edgeort.output",
    "pytest_edgeort.plugin",
    "pytest_edgeort.relay",
    "pytest_edgeort.results",
    "pytest_edgeort.run",
    "pytest_edgeort.signals",
    "pytest_edgeort.starthint",  # (a run reads which devices to start before collecting)
    "pytest_edgeort.xdist",
}


@pytest.fixture(scope="module")
def unrelated_run(tmp_path_factory) -> Dict[str, List[str]]:
    """What a pytest run of one plain test loaded at its end: heavy third-party modules, the plugin's modules."""
    folder = tmp_path_factory.mktemp("unrelated")
    (folder / "test_plain.py").write_text("def test_plain():\n    pass\n")
    (folder / "conftest.py").write_text(
        "import json, sys\n"
        "def pytest_unconfigure(config):\n"
        f"    heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "    ours = sorted(m for m in sys.modules if m.split('.')[0] == 'pytest_edgeort')\n"
        "    print('LOADED', json.dumps({'heavy': heavy, 'ours': ours}))\n"
    )
    command = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", str(folder)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=folder).stdout
    return json.loads(out.split("LOADED", 1)[1].splitlines()[0])


def test_a_run_without_edge_tests_loads_no_heavy_module(unrelated_run):
    """The plugin is installed for every pytest run of the environment: one without edge tests must not pay
    for numpy and onnx (0.5 s at session end before: the unused-golden scan imported the checks)."""
    assert unrelated_run["heavy"] == []


def test_a_run_without_edge_tests_loads_only_the_plugins_wiring(unrelated_run):
    """Nor for the plugin's own checks, comparison and reports: imported where an edge run first needs them."""
    extra = sorted(set(unrelated_run["ours"]) - WIRING)
    assert not extra, f"a run without edge tests imported {len(extra)} more of the plugin's modules: {extra}"


def test_a_passing_marker_test_loads_no_onnx(tmp_path):
    """What a passing ``edge_compare`` of a QDQ model imports on the host: onnx costs ~0.4 s a run (ml_dtypes),
    more than the plugin's whole overhead (benchmarks/overhead.py); only diagnosis and layouts need it."""
    from tests.support.models import conv_matmul_qdq

    model = conv_matmul_qdq(tmp_path)
    modules = "pytest_edgeort.fixtures, pytest_edgeort.devices.local, pytest_edgeort.items.conformance"
    code = (
        f"import json, sys, {modules}; from pytest_edgeort.model.info import model_info; "
        f"model_info({str(model)!r}).output_quant; "
        "print(json.dumps([m for m in ('onnx', 'ml_dtypes') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def _module_names() -> Dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _runtime_nodes(node: ast.AST):
    """Every node below ``node`` except those under ``if TYPE_CHECKING:`` (type-only imports)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            continue
        yield child
        yield from _runtime_nodes(child)


def _imports(name: str, path: Path, modules: Dict[str, Path]) -> Set[str]:
    """Package modules ``name`` imports anywhere (lazy imports included, TYPE_CHECKING blocks not)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: Set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            for target in [base] + [f"{base}.{alias.name}" for alias in node.names]:
                if target in modules and target != name:
                    found.add(target)
    return found


def test_no_import_cycle_in_the_package():
    modules = _module_names()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    cycles: List[List[str]] = []

    def visit(node: str, path: List[str]) -> None:
        for target in graph[node]:
            if target in path:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in done:
                done.add(target)
                visit(target, path + [target])

    done: Set[str] = set()
    for start in graph:
        visit(start, [start])
    assert not cycles, " | ".join(" -> ".join(cycle) for cycle in cycles[:5])
