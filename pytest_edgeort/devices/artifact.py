"""The worker as one file: a deterministic zipapp of ``pytest_edgeort/board``, and how it is started.

Both devices run the same artifact the same way: ``worker-<hash>.pyz`` in the device's workdir,
started through :data:`BOOTSTRAP`, which runs it only if its bytes hash to what this plugin built
(read once, so the file cannot change between the check and the run). The archive is built in
memory from the board sources: sorted entries, fixed timestamps and modes, no compression, so two
builds of the same sources are byte-identical and the hash names the code (the boards' cache key).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import io
import os
import zipfile
from pathlib import Path
from typing import Dict, List, Sequence

from .._text import atomic_write, file_sha256
from ..board.store import private_dir

BOARD_DIR = Path(__file__).resolve().parent.parent / "board"
PACKAGE = "edgeort_board"  # the board package's name inside the zipapp
MAIN = (
    f'"""Runs the edgeort board worker: python3 worker.pyz --workdir DIR [--lock-only]."""\nimport sys\n\n'
    f"from {PACKAGE}.worker import main\n\nsys.exit(main())\n"
)
_EPOCH = (1980, 1, 1, 0, 0, 0)


def board_sources() -> Dict[str, str]:
    """``{module file name: source}`` of the board package, read from its files (not from imported
    modules, which pytest's in-process runs may have dropped from sys.modules)."""
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(BOARD_DIR.glob("*.py"))}


def build_archive() -> bytes:
    """The zipapp's bytes: ``__main__.py`` and the board modules as package :data:`PACKAGE`."""
    entries = {"__main__.py": MAIN, **{f"{PACKAGE}/{name}": text for name, text in board_sources().items()}}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, whatever the host
            archive.writestr(info, entries[name].encode("utf-8"))
    return buffer.getvalue()


WORKER_BYTES = build_archive()
WORKER_SHA256 = hashlib.sha256(WORKER_BYTES).hexdigest()
WORKER_NAME = f"worker-{WORKER_SHA256[:16]}.pyz"

# python -c BOOTSTRAP MODE WORKER SHA256 ARGS...: with MODE "env", reads one JSON line of environment
# variables from stdin (the inventory's env over SSH: secrets stay out of the command line that `ps`
# shows) and re-executes itself with them as "run"; then runs the zipapp's bytes only if they hash to
# SHA256, from memory (board/archive.py imports its modules): a planted or stale file never runs.
BOOTSTRAP_CODE = (
    "import hashlib,io,json,os,sys,zipfile\n"
    "m,p,h=sys.argv[1:4]\n"
    "if m=='env':\n"
    " line=b''\n"
    " while not line.endswith(b'\\n'):\n"
    "  c=os.read(0,1)\n"
    "  if not c: sys.exit(0)\n"
    "  line+=c\n"
    " os.environ.update(json.loads(line.decode('utf-8')))\n"
    " a=open('/proc/self/cmdline','rb').read().split(b'\\0')[:-1]\n"
    " a[len(a)-len(sys.argv)+1]=b'run'\n"
    " os.execv(sys.executable,a)\n"
    "with open(p,'rb') as f: b=f.read()\n"
    "if hashlib.sha256(b).hexdigest()!=h:\n"
    " sys.stderr.write('edgeort: %s does not hash to %s; refusing to run it\\n'%(p,h)); sys.exit(97)\n"
    "z=zipfile.ZipFile(io.BytesIO(b))\n"
    f"g={{'__name__':'{PACKAGE}_archive'}}\n"
    f"exec(compile(z.read('{PACKAGE}/archive.py'),p+'/{PACKAGE}/archive.py','exec'),g)\n"
    "g['install'](z,p)\n"
    "sys.argv=[p]+sys.argv[4:]\n"
    "exec(compile(z.read('__main__.py'),p+'/__main__.py','exec'),{'__name__':'__main__','__file__':p})\n"
)


MIN_BOARD_PYTHON = (3, 8)


def version_guarded(code: str) -> str:
    """``code`` run only on a board python >= :data:`MIN_BOARD_PYTHON`; an older one (2.7 included:
    the guard compiles there, ``code`` would not) exits 95 with one line naming itself and its version."""
    return (
        "import sys\n"
        f"if sys.version_info[:2] < {MIN_BOARD_PYTHON!r}:\n"
        " sys.stderr.write('edgeort: %s is Python %d.%d.%d; the board worker needs Python "
        f'{MIN_BOARD_PYTHON[0]}.{MIN_BOARD_PYTHON[1]} or newer (set python = "..." for this device in '
        "the inventory)\\n' % ((sys.executable,) + tuple(sys.version_info[:3])))\n"
        " sys.exit(95)\n"
        f"exec(compile({code!r}, '<edgeort>', 'exec'))\n"
    )


def _definitions(module: str, *names: str) -> str:
    """The source of top-level definitions of a board module."""
    text = board_sources()[module]
    nodes = {n.name: n for n in ast.parse(text).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    return "".join(ast.get_source_segment(text, nodes[name]) + "\n\n" for name in names)


@functools.cache
def prepare_command() -> str:
    """``python -c PREPARE WORKDIR NAME SHA256``'s code: the workdir, private (the worker's own check), and whether
    the worker file in it is this plugin's (by hash), as one JSON line. Built on first use (SSH devices only):
    parsing the board modules for their definitions takes ~8 ms."""
    code = (
        _definitions("wire.py", "one_line")
        + _definitions("store.py", "EnvironmentProblem", "NotRegular", "private_dir", "file_sha256")
        + (
            "import hashlib, json, os, shlex, stat, sys\n"
            "wd, name, sha = sys.argv[1:4]\n"
            "wd = os.path.expanduser(wd)\n"
            "try:\n"
            "    private_dir(wd)\n"
            "except EnvironmentProblem as exc:\n"
            "    print(json.dumps({'error': str(exc)})); sys.exit(0)\n"
            "path = os.path.join(wd, name)\n"
            "try:\n"
            "    current = file_sha256(path) == sha\n"
            "except OSError:\n"
            "    current = False\n"
            "print(json.dumps({'workdir': wd, 'current': current}))\n"
        )
    )
    return version_guarded(code)


BOOTSTRAP = version_guarded(BOOTSTRAP_CODE)


def bootstrap_argv(python: str, workdir: str, args: Sequence[str] = (), mode: str = "run") -> List[str]:
    """The command line that starts the worker of ``workdir`` (``mode`` "env": environment on stdin)."""
    return [python, "-c", BOOTSTRAP, mode, f"{workdir}/{WORKER_NAME}", WORKER_SHA256, "--workdir", workdir, *args]


def install_local(workdir: str) -> None:
    """Put the worker into a workdir on this machine, unless it is there; EnvironmentProblem (the
    worker's own words) when the workdir is not private to this user."""
    private_dir(workdir)
    target = os.path.join(workdir, WORKER_NAME)
    try:
        if file_sha256(target) == WORKER_SHA256:
            return
    except OSError:  # missing, or not a regular file: (re)install it
        pass
    atomic_write(Path(target), WORKER_BYTES)
