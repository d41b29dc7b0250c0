"""The machine-readable run report (``--edge-report PATH``): the report document, written atomically."""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Tuple

from .._text import atomic_write
from ..errors import ReportError
from .schema import INTERRUPTED, SCHEMA, CheckRecord, ReportDocument

__all__ = ["SCHEMA", "build_report", "write_report"]


def build_report(
    records: Iterable[CheckRecord],
    devices: Mapping[str, Mapping[str, Any]],
    seed: int,
    outcomes: Mapping[str, str],
    skips: Sequence[Tuple[str, int]],
    exitstatus: int,
) -> ReportDocument:
    """The report document: every recorded check with the pytest outcome of its test."""
    return ReportDocument(
        records=[dataclasses.replace(r, outcome=outcomes.get(r.nodeid or "", "unknown")) for r in records],
        devices={name: dict(facts) for name, facts in devices.items()},
        outcomes=dict(outcomes),
        skipped=list(skips),
        seed=seed,
        exitstatus=exitstatus,
        interrupted=exitstatus == INTERRUPTED,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )


def write_report(path: Path, document: Mapping[str, Any]) -> None:
    """Write a document's JSON form (:meth:`ReportDocument.to_dict`) via a temp file and rename, so a reader
    never sees half a report; ReportError (one line naming the path, no temp file left behind) when it
    cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(document, indent=1, sort_keys=True) + "\n")
    except OSError as exc:
        raise ReportError(f"edgeort: cannot write the --edge-report {path}: {exc.strerror or exc}") from None
