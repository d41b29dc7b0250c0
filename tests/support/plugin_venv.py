"""A throwaway virtual environment with pytest plugins users already run, installed from PyPI, that sees every
package of the running one (a ``.pth`` file): runs of the plugin next to labgrid, pytest-rerunfailures,
pytest-randomly, pytest-html and pytest-cov, without installing anything into the project's own environment."""

from __future__ import annotations

import json
import os
import subprocess
import sysconfig
import venv
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import pytest

import pytest_edgeort

#: The plugins and the versions these tests were written against.
PLUGINS = (
    "labgrid==26.0.1",
    "pytest-rerunfailures==16.7",
    "pytest-randomly==5.1.0",
    "pytest-html==4.2.0",
    "pytest-cov==7.1.0",
)
ROOT = Path(pytest_edgeort.__file__).resolve().parents[1]  # the runs import the plugin this process runs


def make_plugin_venv(directory: Path, packages: Sequence[str] = PLUGINS) -> Path:
    """A venv in ``directory`` that sees this interpreter's packages, with ``packages`` pip-installed from
    PyPI; its python. Skips the calling test when pip cannot install them (no index reachable)."""
    venv.EnvBuilder(with_pip=True).create(directory)
    python = directory / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "edgeort-outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot install {', '.join(packages)} from the package index: {done.stderr.strip()[-300:]}")
    return python


def run_pytest(
    python: Path, cwd: Path, *args: str, plugins: Optional[Sequence[str]] = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``python -m pytest ARGS`` in ``cwd``, importing this checkout's plugin; ``plugins``: only these plugin
    modules (besides ours) are loaded, autoloading off; None: every installed plugin autoloads, as for a user."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTEST_ADDOPTS", None)
    load = []
    if plugins is not None:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        for module in ("pytest_edgeort.plugin", *plugins):
            load += ["-p", module]
    command = [str(python), "-P", "-m", "pytest", "-p", "no:cacheprovider", *load, *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def report_of(path: Path) -> Dict[str, Any]:
    """The ``--edge-report`` document at ``path``."""
    return json.loads(path.read_text())  # type: ignore[no-any-return]
