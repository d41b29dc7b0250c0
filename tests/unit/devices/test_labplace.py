"""The labgrid side of a labgrid device without a lab: place matching, the coordinator address, claims of runs."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

from pytest_edgeort.devices.labplace import Claims, _alive, coordinator_address, matching


def place(name: str, aliases=(), **tags: str) -> SimpleNamespace:
    return SimpleNamespace(name=name, aliases=set(aliases), tags=tags)


def test_places_match_by_name_or_alias_glob_and_by_tags():
    places = {p.name: p for p in (place("rb3-2", soc="a"), place("rb3-1", soc="b"), place("x", ["rb3-x"], soc="a"))}
    assert [p.name for p in matching(places, "rb3-*", {})] == ["rb3-1", "rb3-2", "x"]
    assert [p.name for p in matching(places, "rb3-*", {"soc": "a"})] == ["rb3-2", "x"]
    assert [p.name for p in matching(places, None, {"soc": "b"})] == ["rb3-1"]
    assert matching(places, "RB3-*", {}) == []  # labgrid names are case-sensitive


def test_the_coordinator_comes_from_the_inventory_or_lg_coordinator_with_labgrids_default_port(monkeypatch):
    monkeypatch.delenv("LG_COORDINATOR", raising=False)
    assert coordinator_address(None) is None
    assert coordinator_address("lab.example") == "lab.example:20408"
    assert coordinator_address("lab.example:1234") == "lab.example:1234"
    monkeypatch.setenv("LG_COORDINATOR", "env-lab")
    assert coordinator_address(None) == "env-lab:20408"


def test_a_claim_names_a_live_process_until_it_ends(tmp_path):
    claims = Claims("127.0.0.1:20408", tmp_path)
    claims.write("rb3-1", changed=1.5)
    [(path, record)] = claims.of("rb3-1")
    assert record["pid"] == os.getpid() and record["changed"] == 1.5 and _alive(record)
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert not _alive({"pid": int(ended.stdout)})
    assert not _alive({**record, "pid_start": "1"})  # the same pid, another process (pid reuse)
    claims.remove("rb3-1")
    assert claims.of("rb3-1") == []
