"""The machine-readable run report (``--edge-report PATH``), written atomically."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from .._text import atomic_write
from ..errors import ReportError

SCHEMA = "pytest-edgeort/report"
SCHEMA_VERSION = 1
INTERRUPTED = 2  # pytest.ExitCode.INTERRUPTED (Ctrl-C), without importing pytest here


def json_safe(value: Any) -> Any:
    """Plain JSON data: numpy scalars as numbers, tuples as lists, infinities/NaN as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return json_safe(value.item())
    return value


def build_report(
    records: List[Dict[str, Any]],
    devices: Mapping[str, Dict[str, Any]],
    seed: int,
    outcomes: Mapping[str, str],
    skips: Sequence[Tuple[str, int]],
    exitstatus: int,
) -> Dict[str, Any]:
    """The report document: every recorded check with the pytest outcome of its test."""
    results = [dict(r, outcome=outcomes.get(r.get("nodeid", ""), "unknown")) for r in records]
    return json_safe(
        {
            "schema": SCHEMA,
            "version": SCHEMA_VERSION,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "exitstatus": exitstatus,
            "interrupted": exitstatus == INTERRUPTED,
            "seed": seed,
            "devices": dict(devices),
            "results": results,
            "outcomes": dict(outcomes),
            "skipped": [{"reason": reason, "count": count} for reason, count in skips],
        }
    )


def write_report(path: Path, document: Dict[str, Any]) -> None:
    """Write via a temp file and rename, so a reader never sees half a report; ReportError (one
    line naming the path, no temp file left behind) when it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(document, indent=1, sort_keys=True) + "\n")
    except OSError as exc:
        raise ReportError(f"edgeort: cannot write the --edge-report {path}: {exc.strerror or exc}") from None
