"""Which devices a pytest command starts before collection: those its last run had edge items on.

A local worker takes ~150 ms to load numpy and onnxruntime. Started when collection finds the first edge item, it
overlaps only what pytest does after that; started at ``pytest_configure`` it overlaps the whole collection. The
devices the same command (its directory and arguments) last ran edge items on are kept in
``<rootdir>/.edgeort-cache/ahead.json`` (the latest :data:`KEEP` commands), and the run starts those whose kind can
start ahead before collecting. A wrong guess (the tests changed) costs a worker started and stopped when collection
ends, and the file then says so for the next run. A run without edge items writes nothing unless the file named its
command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Sequence

import pytest

from ._text import atomic_write

FILE = "ahead.json"
KEEP = 64  # commands remembered, the latest ones


def command_key(config: pytest.Config) -> str:
    """The pytest command, as the file keys it: its directory and its arguments."""
    params = config.invocation_params
    return json.dumps([str(params.dir), list(params.args)])


def _read(path: Path) -> Dict[str, List[str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, list) and all(isinstance(d, str) for d in v)}


def last_devices(cache_dir: Path, key: str) -> List[str]:
    """The devices command ``key`` last ran edge items on (none when unknown, or the file is unreadable)."""
    return _read(cache_dir / FILE).get(key, [])


def remember(cache_dir: Path, key: str, devices: Sequence[str]) -> None:
    """Note the devices command ``key`` runs edge items on (written only when that changes; a cache directory that
    cannot be written is left as it is: the next run starts its workers at the first edge item, as without it)."""
    path = cache_dir / FILE
    data, wanted = _read(path), sorted(set(devices))
    if data.get(key, []) == wanted:
        return
    data.pop(key, None)
    if wanted:
        data[key] = wanted  # the newest last
    kept = dict(list(data.items())[-KEEP:])
    try:
        if not cache_dir.is_dir():
            cache_dir.mkdir(parents=True)
            (cache_dir / ".gitignore").write_text("# the pytest-edgeort plugin's cache\n*\n", encoding="utf-8")
        atomic_write(path, json.dumps(kept, indent=1))
    except OSError:
        pass
