"""The device-kind table: each kind's inventory keys, board-lock policy, capabilities and device factory.

The inventory (:mod:`.inventory`) validates an entry against its kind's row; the run builds the device
through the row's ``factory`` (or a ``pytest_edgeort_make_device`` hook). A plugin adds a kind with one
:class:`DeviceKind` returned from ``pytest_edgeort_device_kinds`` (see :mod:`pytest_edgeort.hookspec`);
the built-in ``local``, ``ssh``, ``labgrid`` and ``qai-hub`` rows below are nothing more. Keys that are not fields of
:class:`~.inventory.DeviceConfig` land in its ``settings``, with the key's default when unset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple, Union

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TAG_NAME = re.compile(r"[a-z][a-z0-9_]+\Z")  # labgrid's tag names
DEFAULT_CACHE_MAX_MB = 4096  # the board's model cache: least recently used models go above this
DEFAULT_OUTPUT_MAX_MB = 1024  # the most a reply may bring for one model output (more: its static shape's size)


@dataclass(frozen=True)
class Capabilities:
    """What a device kind can do, as checks and reports need to know it."""

    disable_cpu_fallback: bool  # a session can run with CPU fallback disabled (the strict no-fallback check)
    placement: Optional[str]  # granularity of placement evidence: "node" (ORT's graph assignment), "layer", None
    profiling: bool  # a per-op profile can be fetched from the device
    ep_context_cache: bool  # compiled EP-context models can be cached on the device
    jobs: bool = False  # runs are hosted jobs: submitted for every item once collection is done, collected by each

    def to_dict(self) -> Dict[str, Any]:
        return {
            "disable_cpu_fallback": self.disable_cpu_fallback,
            "placement": self.placement,
            "profiling": self.profiling,
            "ep_context_cache": self.ep_context_cache,
            "jobs": self.jobs,
        }


@dataclass(frozen=True)
class Key:
    """One inventory key: accepted TOML types, the expectation in words, an extra check, a default."""

    types: Tuple[type, ...]
    expected: str
    check: Optional[Callable[[Any], bool]] = None
    default: Any = None  # for keys kept in ``DeviceConfig.settings`` (fields have their own defaults)
    shown: Optional[Callable[[Any], str]] = None  # how a refused value is named (never a secret)

    def accepts(self, value: Any) -> bool:
        ok = isinstance(value, self.types) and not (bool not in self.types and isinstance(value, bool))
        if ok and str in self.types and isinstance(value, str):
            ok = bool(value.strip())
        return ok and (self.check is None or self.check(value))

    def describe(self, value: Any) -> str:
        return self.shown(value) if self.shown is not None and isinstance(value, dict) else repr(value)


def _env_shown(value: Mapping[str, Any]) -> str:
    return f"a table of {', '.join(f'{k} ({type(v).__name__})' for k, v in value.items())}"


# Every key a built-in kind uses, in the order messages list them.
KEYS: Dict[str, Key] = {
    "host": Key((str,), "a host name, address or ~/.ssh/config alias"),
    "user": Key((str,), "a user name"),
    "port": Key((int,), "an integer port 1-65535", lambda v: 0 < v < 65536),
    "identity_file": Key((str,), "a path to a private key"),
    "known_hosts": Key((str,), "a path to a known_hosts file"),
    "insecure_skip_host_key_check": Key((bool,), "true or false"),
    "python": Key((str,), "the path of the board's python3"),
    "workdir": Key((str,), "a directory path"),
    "connect_timeout": Key((int, float), "a number of seconds > 0", lambda v: v > 0),
    "command_timeout": Key((int, float), "a number of seconds > 0", lambda v: v > 0),
    "env": Key(
        (dict,),
        'a table of NAME = "string" environment variables',
        lambda v: all(isinstance(x, str) and _ENV_NAME.match(k) for k, x in v.items()),
        shown=_env_shown,  # env values may be secrets
    ),
    "providers": Key(
        (dict,), "a table of provider option tables", lambda v: all(isinstance(x, dict) for x in v.values())
    ),
    "cache_max_mb": Key(
        (int, float), "megabytes > 0 (the model cache's size cap)", lambda v: v > 0, default=DEFAULT_CACHE_MAX_MB
    ),
    "output_max_mb": Key(
        (int, float),
        "megabytes > 0 (the most a reply may bring for one model output)",
        lambda v: v > 0,
        default=DEFAULT_OUTPUT_MAX_MB,
    ),
    "simulator_workers": Key(
        (int,),
        "an integer >= 1 (worker processes one batch of a simulated session may use; 1: no simulator lanes)",
        lambda v: v >= 1,
    ),
    "lock": Key((bool,), "true or false"),
    "lock_timeout": Key((int, float), "a number of seconds >= 0", lambda v: v >= 0),
    "lock_file": Key((str,), "a path on the device (default <workdir>/board.lock)"),
    "coordinator": Key((str,), 'a labgrid coordinator "host:port" (default: LG_COORDINATOR)'),
    "place": Key((str,), "a labgrid place name or glob"),
    "tags": Key(
        (dict,),
        'a table of labgrid place tags (name = "value", lowercase names)',
        lambda v: all(isinstance(x, str) and _TAG_NAME.match(k) for k, x in v.items()),
    ),
    "device": Key((str,), 'an AI Hub device name, e.g. "Samsung Galaxy S24 (Family)"'),
    "attributes": Key(
        (list,),
        'a list of AI Hub device attributes, e.g. ["chipset:qualcomm-snapdragon-8gen3"]',
        lambda v: bool(v) and all(isinstance(x, str) and ":" in x for x in v),
    ),
    "os": Key((str,), 'an OS version or interval, e.g. "14" or "[14,)"'),
    "options": Key((str,), 'AI Hub job options added to every job, e.g. "--qairt_version 2.31"'),
    "job_timeout": Key((int, float), "a number of seconds > 0 (one job's wait)", lambda v: v > 0, default=1800.0),
    "budget_s": Key(
        (int, float), "a number of seconds > 0 (the run's time on the device)", lambda v: v > 0, default=3600.0
    ),
}

_WORKER_KEYS = (
    "python",
    "workdir",
    "connect_timeout",
    "command_timeout",
    "env",
    "providers",
    "cache_max_mb",
    "output_max_mb",
    "simulator_workers",
)
_LOCK_KEYS = ("lock", "lock_timeout", "lock_file")
_SSH_KEYS = ("host", "user", "port", "identity_file", "known_hosts", "insecure_skip_host_key_check")
_LAB_KEYS = ("coordinator", "place", "tags", "identity_file", "known_hosts", "insecure_skip_host_key_check")


def _place_or_tags(entry: Mapping[str, Any]) -> Optional[str]:
    return None if "place" in entry or "tags" in entry else 'kind = "labgrid" needs key "place" or "tags"'


def _hub_device(entry: Mapping[str, Any]) -> Optional[str]:
    if {"token", "api_token"} & set(entry):
        return (
            "the AI Hub token never goes in the inventory: remove it and run `qai-hub configure` "
            "(or point QAIHUB_CLIENT_INI at a client.ini)"
        )
    return None if "device" in entry or "attributes" in entry else 'kind = "qai-hub" needs key "device" or "attributes"'


#: The board zipapp worker (local or over SSH): strict fallback check, placement per graph node.
WORKER_CAPABILITIES = Capabilities(disable_cpu_fallback=True, placement="node", profiling=True, ep_context_cache=True)
#: A Qualcomm AI Hub hosted device: CPU fallback always on, placement per profiled layer, runs are jobs.
HOSTED_CAPABILITIES = Capabilities(
    disable_cpu_fallback=False, placement="layer", profiling=False, ep_context_cache=False, jobs=True
)


@dataclass(frozen=True)
class DeviceKind:
    """One row of the device-kind table.

    ``factory`` builds the device from ``(DeviceConfig, DeviceKind)``: a callable, or ``"module:attribute"``
    imported on first use (so the table loads nothing heavy). ``lock`` is whether runs take the board
    lock unless an entry says ``lock = false``/``true``. ``starts_ahead``: for a kind whose worker's start costs the
    pytest process no wait (a subprocess), what starts its default worker from the inventory entry alone,
    ``(DeviceConfig, run id) -> transport`` or ``"module:attribute"``, loading no numpy; the run calls it before
    collection (for the devices the same pytest command last ran edge items on) or when collection finds the device's
    first item, and the device, once built, adopts the worker (``adopt(transport)``). Not called under a board lock,
    which comes first."""

    name: str
    factory: Union[str, Callable[..., Any]]
    keys: Mapping[str, Key]
    required: Tuple[str, ...] = ()
    lock: bool = False
    capabilities: Capabilities = WORKER_CAPABILITIES
    check: Optional[Callable[[Mapping[str, Any]], Optional[str]]] = None  # the whole entry: a problem, or None
    starts_ahead: Union[str, Callable[..., Any], None] = None

    def uses_lock(self, lock: Optional[bool]) -> bool:
        """Whether a device of this kind takes the board lock, given its ``lock`` key (None: unset)."""
        return self.lock if lock is None else lock

    def defaults(self) -> Dict[str, Any]:
        """The defaults of this kind's keys kept in ``DeviceConfig.settings``."""
        return {key: spec.default for key, spec in self.keys.items() if spec.default is not None}


def pick(*names: str, **own: Key) -> Dict[str, Key]:
    """A kind's keys: built-in ones by name plus its own (``pick("python", place=Key(...))``)."""
    return {**{name: KEYS[name] for name in names}, **own}


BUILTIN_KINDS: Dict[str, DeviceKind] = {
    kind.name: kind
    for kind in (
        # this machine: workers are subprocesses of the pytest process (started while pytest collects); no board
        # lock unless asked
        DeviceKind(
            "local",
            "pytest_edgeort.devices.local:LocalDevice",
            pick(*_WORKER_KEYS, *_LOCK_KEYS),
            starts_ahead="pytest_edgeort.devices.localworker:start_ahead",
        ),
        # a board reached over SSH, its workers started in its workdir, under the board lock
        DeviceKind(
            "ssh",
            "pytest_edgeort.devices.ssh:SSHDevice",
            pick(*_SSH_KEYS, *_WORKER_KEYS, *_LOCK_KEYS),
            required=("host",),
            lock=True,
        ),
        # a board from a labgrid lab: a matching place acquired for the run (the lab's lock, not ours), then
        # driven over SSH at the place's NetworkService
        DeviceKind(
            "labgrid",
            "pytest_edgeort.devices.labgrid:LabgridDevice",
            pick(*_LAB_KEYS, *_WORKER_KEYS, "lock_timeout"),
            check=_place_or_tags,
        ),
        # a Qualcomm AI Hub hosted device, through the qai-hub client (its token in the client's own config)
        DeviceKind(
            "qai-hub",
            "pytest_edgeort.devices.aihub:AIHubDevice",
            pick("device", "attributes", "os", "options", "job_timeout", "budget_s"),
            capabilities=HOSTED_CAPABILITIES,
            check=_hub_device,
        ),
    )
}


def kind_table(extra: Iterable[Iterable[DeviceKind]] = ()) -> Dict[str, DeviceKind]:
    """The built-in kinds plus those plugins add (the results of ``pytest_edgeort_device_kinds``);
    ValueError (one line) when two rows share a name, or a row's ``starts_ahead`` is no function."""
    table = dict(BUILTIN_KINDS)
    for kinds in extra:
        for kind in kinds:
            if kind.name in table:
                raise ValueError(f"device kind {kind.name!r} is defined twice (a plugin's pytest_edgeort_device_kinds)")
            ahead = kind.starts_ahead
            if ahead is not None and not (isinstance(ahead, str) and ":" in ahead or callable(ahead)):
                raise ValueError(
                    f"device kind {kind.name!r}: starts_ahead must be a function (DeviceConfig, run id) -> transport "
                    f'or "module:attribute", got {ahead!r}'
                )
            table[kind.name] = kind
    return table


def quoted(names: Iterable[str], last: str = ", ") -> str:
    """``"a", "b", "c"``, with ``last`` before the last name (``" or "``)."""
    items = [f'"{name}"' for name in names]
    return ", ".join(items[:-1]) + last + items[-1] if len(items) > 1 else "".join(items)
