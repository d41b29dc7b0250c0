"""A worker's command-line flags and its name in messages, for every kind of worker device (no numpy: see
:mod:`.localworker`)."""

from __future__ import annotations

from typing import List, Optional

from ..config.inventory import DeviceConfig
from ..config.kinds import DEFAULT_CACHE_MAX_MB
from .boardlock import LOCK_GROUP


def worker_flags(config: DeviceConfig, group: str, run: Optional[str]) -> List[str]:
    """A worker's command-line flags: the run it serves, and lock-only or the model cache's size cap
    (``cache_max_mb``)."""
    flags = ["--run", str(run)]
    if group == LOCK_GROUP:
        return ["--lock-only", *flags]
    megabytes = config.settings.get("cache_max_mb", DEFAULT_CACHE_MAX_MB)
    return ["--cache-max-bytes", str(int(megabytes * 1024 * 1024)), *flags]


def worker_label(name: str, group: str) -> str:
    """The worker of ``group`` on device ``name``, in messages."""
    suffix = {"default": "", LOCK_GROUP: " (board lock)"}.get(group, f" (group {group})")
    return f"worker on device {name!r}{suffix}"
