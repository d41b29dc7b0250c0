"""A check as pytest runs it: the item it reports on, its device and provider, and how it records a result
(the check record and the item's JUnit properties), shared by marker fixtures and suite items."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import pytest

from ..junit import record_provenance
from ..reporting.schema import CheckRecord
from ..run import EdgeRun

if TYPE_CHECKING:
    from ..devices.session import EdgeSession


@dataclass(frozen=True)
class CheckNode:
    """``check`` of ``item`` on ``device``/``provider``; ``fields`` go into every record over the session's
    facts (a suite names its folder as the model and its file as ``suite``: prepared models are named by hash)."""

    run: EdgeRun
    item: pytest.Item
    check: str
    device: str
    provider: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def record(self, session: EdgeSession, **fields: Any) -> CheckRecord:
        """Record what the check found on ``session`` (and the session's facts as JUnit properties)."""
        record = CheckRecord.from_session(self.item.nodeid, self.check, session.provenance(), **self.fields, **fields)
        self.run.record(record)
        record_provenance(self.item, record)
        return record

    def record_failure(self, **fields: Any) -> CheckRecord:
        """Record a check that failed without a session: what it knows, and why (``error``)."""
        facts = {"device": self.device, "provider": self.provider, **fields, **self.fields}
        record = CheckRecord(nodeid=self.item.nodeid, check=self.check, passed=False, **facts)
        self.run.record(record)
        return record
