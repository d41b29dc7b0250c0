"""A labgrid place for one run: wait for a free matching place, acquire it, read its NetworkService, release it.

The coordinator is driven through labgrid's own client session (``labgrid.remote.client.ClientSession``
and its gRPC stub, as labgrid's ``contrib/sync-places.py`` does), on an event loop in a background
thread so the session's view of places and resources stays current while a run waits.

labgrid never expires an acquired place, so a run that is killed leaves its place acquired. Every
acquisition is therefore recorded on this host first (:class:`Claims`: pid, process start time, the
place's ``changed`` stamp); a place acquired under our labgrid identity (``host/user``) whose only
records name dead processes is a killed run's, and is released. A place acquired by a live run of
ours (another xdist worker, another job of this user) is busy like any other.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import fnmatch
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .._text import atomic_write, one_line
from ..errors import DeviceUnavailable

DEFAULT_PORT = 20408  # labgrid's coordinator port
POLL_S = 0.5
CLAIMS_DIR = Path("~/.cache/edgeort/labgrid")
EXTRA = "pip install 'pytest-edgeort[labgrid]'"
REFUSALS = ("FAILED_PRECONDITION", "PERMISSION_DENIED")  # gRPC codes of a place someone else got first


class PlaceRefused(Exception):
    """The coordinator refused to acquire a place (another client was faster)."""


@dataclass(frozen=True)
class NetworkService:
    """Where the place's board is reached over SSH."""

    address: str
    username: str
    port: int


@dataclass
class HeldPlace:
    """A place this run acquired, as recorded in the report."""

    coordinator: str
    place: str
    identity: str
    service: NetworkService
    acquired_at: float
    waited_s: float
    waited_for: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        return {
            "coordinator": self.coordinator,
            "place": self.place,
            "identity": self.identity,
            "network_service": f"{self.service.username}@{self.service.address}:{self.service.port}",
            "acquired_at": self.acquired_at,
            "waited_s": round(self.waited_s, 3),
            "waited_for": self.waited_for,
        }


def coordinator_address(configured: Optional[str]) -> Optional[str]:
    """``host:port`` from the inventory or ``LG_COORDINATOR`` (labgrid's default port when none is given)."""
    address = configured or os.environ.get("LG_COORDINATOR")
    if not address:
        return None
    return address if re.search(r":\d+\Z", address) else f"{address}:{DEFAULT_PORT}"


def _start_ticks(pid: int) -> Optional[str]:
    """The process's start time in clock ticks since boot (tells a reused pid apart), None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[19]


def _alive(record: Mapping[str, Any]) -> bool:
    pid = record.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = record.get("pid_start")
    return started is None or _start_ticks(pid) in (None, started)


class Claims:
    """This host's records of places its runs acquired on one coordinator, one file per place and process."""

    def __init__(self, coordinator: str, root: Path = CLAIMS_DIR) -> None:
        self.dir = root.expanduser() / re.sub(r"[^A-Za-z0-9.-]", "_", coordinator)

    def _path(self, place: str, pid: int) -> Path:
        return self.dir / f"{re.sub(r'[^A-Za-z0-9._-]', '_', place)}.{pid}.json"

    def write(self, place: str, **extra: Any) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        pid = os.getpid()
        record = {"place": place, "pid": pid, "pid_start": _start_ticks(pid), "since": time.time(), **extra}
        atomic_write(self._path(place, pid), json.dumps(record))

    def remove(self, place: str) -> None:
        try:
            self._path(place, os.getpid()).unlink()
        except FileNotFoundError:
            pass

    def of(self, place: str) -> List[Tuple[Path, Dict[str, Any]]]:
        """Every record of ``place`` (files that do not parse are skipped)."""
        found = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(record, dict) and record.get("place") == place:
                found.append((path, record))
        return found


class LabSession:
    """One client session with a labgrid coordinator, its event loop in a daemon thread."""

    def __init__(self, device: str, address: str, timeout: float) -> None:
        try:
            from labgrid.remote.client import ClientSession
            from labgrid.remote.generated import labgrid_coordinator_pb2
        except ImportError as exc:
            raise DeviceUnavailable(
                f'device {device!r}: kind = "labgrid" needs the labgrid package ({exc}): {EXTRA}'
            ) from None
        self.pb = labgrid_coordinator_pb2
        self.device = device
        self.address = address
        self.timeout = timeout
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="edgeort-labgrid", daemon=True)
        self.thread.start()

        async def start() -> Any:
            session = ClientSession(address, self.loop)
            await session.start()
            return session

        try:
            self.session = self._run(start)
        except DeviceUnavailable:
            reason: Optional[str] = f"no answer within {timeout:g} s (connect_timeout)"
        except Exception as exc:  # labgrid's ServerError, gRPC errors
            reason = one_line(exc)
        else:
            reason = None
        if reason is not None:
            self.stop_loop()
            raise DeviceUnavailable(f"device {device!r}: cannot reach the labgrid coordinator at {address}: {reason}")
        self.identity = f"{self.session.gethostname()}/{self.session.getuser()}"

    def _run(self, make: Callable[[], Any]) -> Any:
        async def call() -> Any:
            return await make()

        future = asyncio.run_coroutine_threadsafe(call(), self.loop)
        try:
            return future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise DeviceUnavailable(
                f"device {self.device!r}: the labgrid coordinator at {self.address} did not answer within "
                f"{self.timeout:g} s (connect_timeout)"
            ) from None

    def request(self, rpc: str, **fields: Any) -> None:
        """One coordinator call (``AcquirePlace``, ``ReleasePlace``), then wait until the session saw its effect;
        PlaceRefused when the place went to someone else, DeviceUnavailable (one line) on any other failure."""
        message = getattr(self.pb, f"{rpc}Request")(**fields)
        try:
            self._run(lambda: getattr(self.session.stub, rpc)(message))
        except DeviceUnavailable:
            raise
        except Exception as exc:  # grpc.aio.AioRpcError, or the session's own errors
            code = exc.code().name if callable(getattr(exc, "code", None)) else None
            details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
            if code in REFUSALS:
                raise PlaceRefused(details) from None
            raise DeviceUnavailable(
                f"device {self.device!r}: {rpc} on the labgrid coordinator at {self.address} failed: "
                f"{one_line(details or type(exc).__name__)}"
            ) from None
        self.sync()

    def sync(self) -> None:
        """Wait until the session has every update the coordinator sent so far; DeviceUnavailable if it is gone."""
        if not self._run(self.session.sync_with_coordinator):
            raise DeviceUnavailable(
                f"device {self.device!r}: lost the connection to the labgrid coordinator at {self.address}"
            )

    @property
    def places(self) -> Dict[str, Any]:
        return dict(self.session.places)

    def network_service(self, place: Any) -> Optional[NetworkService]:
        """The NetworkService among the place's acquired resources (None if it has none)."""
        for exporter, group, cls, name in place.acquired_resources:
            if cls != "NetworkService":
                continue
            entry = self.session.resources.get(exporter, {}).get(group, {}).get(name)
            if entry is not None:
                params = entry.params
                return NetworkService(str(params["address"]), str(params["username"]), int(params.get("port", 22)))
        return None

    def stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()

    def close(self) -> None:
        try:
            self._run(self.session.stop)
            self._run(self.session.close)
        except Exception:  # the coordinator may be gone; the loop stops either way
            pass
        self.stop_loop()


def matching(places: Mapping[str, Any], pattern: Optional[str], tags: Mapping[str, str]) -> List[Any]:
    """The places whose name or an alias matches the glob ``pattern`` and whose tags include ``tags``."""
    found = []
    for name, place in sorted(places.items()):
        names = [name, *place.aliases]
        if pattern is not None and not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            continue
        if all(place.tags.get(k) == v for k, v in tags.items()):
            found.append(place)
    return found


def _since(stamp: Any) -> str:
    try:
        return datetime.datetime.fromtimestamp(float(stamp), datetime.timezone.utc).isoformat(timespec="seconds")
    except (TypeError, ValueError):
        return "?"


class PlaceFinder:
    """Waits for, acquires and releases one place matching ``place``/``tags`` for this process."""

    def __init__(
        self,
        lab: LabSession,
        pattern: Optional[str],
        tags: Mapping[str, str],
        notify: Callable[[str], None],
        claims: Optional[Claims] = None,
    ) -> None:
        self.lab = lab
        self.pattern = pattern
        self.tags = dict(tags)
        self.notify = notify
        self.claims = claims or Claims(lab.address)
        self.held: Optional[HeldPlace] = None

    @property
    def wanted(self) -> str:
        parts = [f"place = {self.pattern!r}"] if self.pattern else []
        return " and ".join(parts + [f"tag {k}={v}" for k, v in self.tags.items()])

    def holder(self, place: Any) -> str:
        """Who keeps ``place`` from us, in words."""
        if place.acquired:
            ours = place.acquired == self.lab.identity
            live = [r for _, r in self.claims.of(place.name) if _alive(r)] if ours else []
            run = f" (pytest-edgeort pid {live[0]['pid']} on this host)" if live else ""
            return f"{place.name} is acquired by {place.acquired}{run}"
        return f"{place.name} is reserved for another labgrid reservation ({place.reservation})"

    def _recover(self, place: Any) -> bool:
        """Release ``place`` if a killed run of ours left it acquired (one line); True if released."""
        records = self.claims.of(place.name)
        if place.acquired != self.lab.identity:
            for path, record in records:  # a claim of ours that did not end with the place acquired
                if not _alive(record):
                    path.unlink(missing_ok=True)
            return False
        if not records or any(_alive(r) for _, r in records):
            return False  # acquired under our name by hand, or by a live run of ours
        ours = [r for _, r in records if r.get("changed") in (None, place.changed)]
        if not ours:
            return False
        self.lab.request("ReleasePlace", placename=place.name, fromuser=self.lab.identity)
        for path, _ in records:
            path.unlink(missing_ok=True)
        self.notify(
            f"edgeort: device {self.lab.device!r}: labgrid place {place.name} was left acquired by a killed "
            f"pytest-edgeort run (pid {ours[0]['pid']}, since {_since(ours[0].get('since'))}); released it"
        )
        return True

    def _try(self, place: Any) -> bool:
        """Acquire a free place; False when another client got it first."""
        claim = {"coordinator": self.lab.address, "identity": self.lab.identity}
        self.claims.write(place.name, **claim)
        try:  # any other failure leaves the claim, so a place acquired after all is recognised once we are gone
            self.lab.request("AcquirePlace", placename=place.name)
        except PlaceRefused:
            self.claims.remove(place.name)
            return False
        self.claims.write(place.name, **claim, changed=self.lab.places[place.name].changed)
        return True

    def acquire(self, timeout: float) -> HeldPlace:
        """A matching place, acquired: waits up to ``timeout`` s, naming who holds the places (one notice);
        DeviceUnavailable (one line) when no place matches, none got free, or the place has no NetworkService."""
        start = time.monotonic()
        waited_for: Optional[str] = None
        while True:
            candidates = matching(self.lab.places, self.pattern, self.tags)
            if not candidates:
                known = ", ".join(sorted(self.lab.places)) or "none"
                raise DeviceUnavailable(
                    f"device {self.lab.device!r}: no labgrid place on {self.lab.address} matches {self.wanted} "
                    f"(places: {known})"
                )
            for place in candidates:
                if place.acquired and self._recover(place):
                    place = self.lab.places[place.name]
                if place.acquired is None and place.reservation is None and self._try(place):
                    return self._held(self.lab.places[place.name], time.monotonic() - start, waited_for)
            busy = "; ".join(self.holder(self.lab.places.get(p.name, p)) for p in candidates)
            now = time.monotonic()
            if waited_for is None:
                self.notify(
                    f"edgeort: device {self.lab.device!r} is waiting for a labgrid place matching {self.wanted}: "
                    f"{busy}; waiting up to {timeout:g} s (lock_timeout)"
                )
            waited_for = busy
            if now - start >= timeout:
                raise DeviceUnavailable(
                    f"device {self.lab.device!r}: no labgrid place matching {self.wanted} on {self.lab.address} "
                    f"got free: {busy}; gave up after {now - start:.1f} s (lock_timeout = {timeout:g} in the inventory)"
                )
            time.sleep(min(POLL_S, max(0.0, timeout - (now - start))))
            self.lab.sync()

    def _held(self, place: Any, waited: float, waited_for: Optional[str]) -> HeldPlace:
        service = self.lab.network_service(place)
        if service is None:
            self.release(place.name)
            raise DeviceUnavailable(
                f"device {self.lab.device!r}: labgrid place {place.name} on {self.lab.address} has no "
                "NetworkService resource (add one to its exporter and a match to the place)"
            )
        self.held = HeldPlace(self.lab.address, place.name, self.lab.identity, service, time.time(), waited, waited_for)
        return self.held

    def release(self, name: Optional[str] = None) -> None:
        """Release the place this process holds (only if it is still acquired under our identity)."""
        name = name or (self.held.place if self.held else None)
        if name is None:
            return
        self.lab.request("ReleasePlace", placename=name, fromuser=self.lab.identity)
        self.claims.remove(name)
        self.held = None
