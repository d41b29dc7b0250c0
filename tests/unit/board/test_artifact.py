"""The board package ships as one zipapp: self-contained, deterministic, runnable by itself."""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import zipfile

import pytest

from pytest_edgeort.board import wire
from pytest_edgeort.devices import artifact

ALLOWED = {"numpy", "onnxruntime", "onnxruntime_qnn"}  # besides the standard library and the package itself


def imported_modules(source: str):
    """(module, level) of every import statement in ``source``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level


@pytest.mark.skipif(not hasattr(sys, "stdlib_module_names"), reason="needs python 3.10+")
def test_board_modules_import_only_stdlib_numpy_onnxruntime_and_each_other():
    sources = artifact.board_sources()
    assert {"worker.py", "wire.py", "archive.py"} <= set(sources)
    for name, source in sources.items():
        for module, level in imported_modules(source):
            top = module.split(".")[0]
            if level:  # relative: another board module, never above the package
                assert level == 1 and (not module or f"{top}.py" in sources), (name, module)
            else:
                assert top in sys.stdlib_module_names or top in ALLOWED, (name, module)
    archive_imports = {m for m, level in imported_modules(sources["archive.py"])}
    assert all(m.split(".")[0] in sys.stdlib_module_names for m in archive_imports)  # it runs before the package


def test_the_zipapp_is_byte_identical_across_builds_and_holds_every_board_module():
    first, second = artifact.build_archive(), artifact.build_archive()
    assert first == second == artifact.WORKER_BYTES
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert names == sorted(names) and names[0] == "__main__.py"
    assert {f"{artifact.PACKAGE}/{n}" for n in artifact.board_sources()} == set(names) - {"__main__.py"}
    assert artifact.WORKER_NAME == f"worker-{artifact.WORKER_SHA256[:16]}.pyz"


def test_the_zipapp_runs_by_itself_and_through_the_bootstrap(tmp_path):
    """``python3 worker.pyz`` (zipimport) and the bootstrap (from verified bytes in memory) both say hello."""
    artifact.install_local(str(tmp_path))
    path = tmp_path / artifact.WORKER_NAME
    for command in (
        [sys.executable, str(path), "--workdir", str(tmp_path), "--lock-only"],
        artifact.bootstrap_argv(sys.executable, str(tmp_path), ["--lock-only"]),
    ):
        done = subprocess.run(command, input=b"", capture_output=True, timeout=60)
        header = wire.read_header(wire.stream_reader(io.BytesIO(done.stdout)).read_exact)
        assert done.returncode == 0 and header["ok"] and header["protocol"] == wire.PROTOCOL_VERSION, done.stderr


def test_the_bootstrap_refuses_bytes_that_do_not_hash_right(tmp_path):
    artifact.install_local(str(tmp_path))
    (tmp_path / artifact.WORKER_NAME).write_bytes(artifact.WORKER_BYTES + b"\0")
    done = subprocess.run(
        artifact.bootstrap_argv(sys.executable, str(tmp_path)), input=b"", capture_output=True, timeout=60
    )
    assert done.returncode == 97 and b"does not hash to" in done.stderr and not done.stdout
