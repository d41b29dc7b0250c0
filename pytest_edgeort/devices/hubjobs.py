"""Qualcomm AI Hub jobs through the real ``qai-hub`` client: submit, re-attach, wait, collect, and every failure
as one line naming the device and the job's URL.

A job is known by a key over what decides its result (model, hosted device, options, inputs). Its id goes
into a ledger file the moment it is submitted; once collected, it is marked with the run that collected it.
A run that was interrupted re-attaches to the jobs it paid for instead of submitting them again; the
pytest-xdist workers of one run share their jobs; a later run submits afresh. The client is called
with ``retry=False``; rate limits (HTTP 429) and service errors (5xx) are retried here with a bounded
exponential backoff, within the device's per-run ``budget_s``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence

from .._text import atomic_write, one_line
from ..errors import DeviceFault, DeviceUnavailable, WorkerError

if TYPE_CHECKING:
    import numpy as np

NO_TOKEN = "no AI Hub token: run `qai-hub configure` or set QAIHUB_CLIENT_INI"
TEST_DOUBLE_ATTRIBUTE = "test-double:"  # a device attribute a stand-in service marks its devices with
BACKOFF_FIRST_S, BACKOFF_MAX_S = 1.0, 60.0
POLL_FIRST_S, POLL_MAX_S = 0.2, 10.0  # AI Hub's own client polls every 10 s; short jobs are seen sooner


def ledger_path(device: str) -> Path:
    """Where the ids of a device's submitted, not yet collected jobs are kept (the user's cache folder)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pytest-edgeort" / "qai-hub" / f"{device}.json"


def job_key(*parts: str) -> str:
    """The ledger key of a job: a sha256 over what decides its result."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@dataclass
class Ledger:
    """``{job key: {"job": id, ...}}`` on disk: read again before every look-up and change, rewritten atomically,
    so the pytest-xdist workers of a run (and runs one after another) see each other's jobs."""

    path: Path

    @property
    def entries(self) -> Dict[str, Dict[str, str]]:
        try:
            entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return entries if isinstance(entries, dict) else {}

    def put(self, key: str, entry: Dict[str, str], run: str) -> None:
        """Add ``entry``; entries another run collected go (they will not be used again)."""
        kept = {k: e for k, e in self.entries.items() if e.get("collected_by") in (None, run)}
        self._save({**kept, key: entry})

    def collected(self, key: str, run: str) -> None:
        entries = self.entries
        if key in entries:
            entries[key]["collected_by"] = run
            self._save(entries)

    def drop(self, key: str) -> None:
        entries = self.entries
        if entries.pop(key, None) is not None:
            self._save(entries)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """The ledger to this process alone while it looks up and submits (POSIX ``flock``; elsewhere unlocked)."""
        try:
            import fcntl
        except ImportError:  # Windows: workers may then submit the same job twice
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _save(self, entries: Dict[str, Dict[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(entries, indent=1, sort_keys=True))


def client_config() -> Any:
    """The qai-hub client's own configuration (QAIHUB_CLIENT_INI, else ~/.qai_hub/client.ini), or
    DeviceUnavailable naming what is missing (the token never lives in our inventory)."""
    try:
        from qai_hub import api_utils
    except ImportError:
        raise DeviceUnavailable("the qai-hub client is not installed: pip install 'pytest-edgeort[aihub]'") from None
    path = api_utils.get_config_path()
    if not os.path.isfile(path):
        raise DeviceUnavailable(f"{NO_TOKEN} ({path} does not exist)")
    try:
        return api_utils.load_api_config_from_file(path)
    except Exception as exc:
        raise DeviceUnavailable(f"{NO_TOKEN} ({path}: {hub_error(exc)})") from None


def hub_error(exc: BaseException) -> str:
    """The client's error in one line: its boxed, multi-line texts flattened, and the status it stands for."""
    text = one_line("".join(ch for ch in str(exc) if ch not in "│┌┐└┘─|"), 300)
    name = type(exc).__name__
    if name == "RateLimitedError":
        return f"rate-limited by AI Hub (HTTP 429): {text}"
    if "Failed to authenticate" in text or "API token is missing" in text:
        return "AI Hub refused the token (HTTP 401): check the api_token of the qai-hub client.ini"
    if "no longer supported" in text or "upgrade qai-hub" in text.lower():
        from qai_hub import __version__

        return f"AI Hub no longer accepts qai-hub {__version__} (HTTP 426): pip install --upgrade qai-hub"
    return text


def _retryable(exc: BaseException) -> bool:
    """Rate limits and the service's own errors (5xx) pass; everything else is the answer."""
    return type(exc).__name__ in ("RateLimitedError", "InternalError")


@dataclass
class Budget:
    """The seconds a run may spend on one hosted device: retrying, then waiting for jobs."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    @property
    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.started)


def with_backoff(call: Callable[[], Any], what: str, budget: Budget, where: str) -> Any:
    """``call()``, retried on rate limits and service errors after 1, 2, 4 ... 60 s while the budget lasts;
    DeviceFault (one line: ``where``, ``what``, the last error) when it is spent, at once for other errors."""
    delay = BACKOFF_FIRST_S
    while True:
        try:
            return call()
        except Exception as exc:
            if not _retryable(exc) or budget.left < delay:
                spent = f" (retried until the run's budget_s = {budget.seconds:g} was spent)" if _retryable(exc) else ""
                raise DeviceFault(f"{where}: {what} failed: {hub_error(exc)}{spent}") from None
        time.sleep(delay)
        delay = min(2 * delay, BACKOFF_MAX_S)


@dataclass
class HubJob:
    """A submitted inference job: its id and URL, and what it brought back once it finished."""

    key: str
    job: Any  # qai_hub.InferenceJob
    outputs: Optional[List[Dict[str, np.ndarray]]] = None
    profile: Optional[Dict[str, Any]] = None
    tools: Dict[str, str] = field(default_factory=dict)  # the profile's tool versions (QAIRT, onnxruntime, ...)

    @property
    def url(self) -> str:
        return str(self.job.url)


class HubJobs:
    """The jobs of one hosted device in one run: submitted once per key, waited for by whoever needs them."""

    def __init__(self, client: Any, where: str, budget: Budget, job_timeout: float, ledger: Ledger, run: str) -> None:
        self.client = client
        self.run = run  # this run's id (shared by its xdist workers)
        self.where = where
        self.budget = budget
        self.job_timeout = job_timeout
        self.ledger = ledger
        self.jobs: Dict[str, HubJob] = {}
        self.models: Dict[str, Any] = {}  # model sha256 -> the uploaded qai_hub.Model
        self.datasets: Dict[str, Any] = {}  # feeds digest -> the uploaded qai_hub.Dataset
        self.reattached = 0
        self.submitted = 0

    def _call(self, call: Callable[[], Any], what: str) -> Any:
        return with_backoff(call, what, self.budget, self.where)

    def model(self, sha256: str, path: Path) -> Any:
        if sha256 not in self.models:
            self.models[sha256] = self._call(lambda: self.client.upload_model(str(path)), f"uploading {path.name}")
        return self.models[sha256]

    def dataset(self, digest: str, feeds: Sequence[Mapping[str, np.ndarray]], label: str) -> Any:
        """One dataset per set of feeds (a model's examples go up once per run)."""
        if digest not in self.datasets:
            entries = {name: [feed[name] for feed in feeds] for name in feeds[0]}
            self.datasets[digest] = self._call(lambda: self.client.upload_dataset(entries), f"uploading {label}")
        return self.datasets[digest]

    def submit(
        self,
        key: str,
        device: Any,
        model: Callable[[], Any],
        dataset: Callable[[], Any],
        options: str,
        name: str,
    ) -> HubJob:
        """The job of ``key``: this run's, a ledger entry's (an earlier run submitted it and stopped before
        collecting; re-attached unless it failed), else a new one (``model()``/``dataset()`` upload on demand)."""
        if key in self.jobs:
            return self.jobs[key]
        with self.ledger.held():  # another xdist worker of this run may be submitting the same job right now
            entry = self.ledger.entries.get(key)
            if entry is not None and entry.get("collected_by") in (None, self.run):
                job = self._reattach(entry["job"])
                if job is not None:
                    self.reattached += 1
                    self.jobs[key] = HubJob(key, job)
                    return self.jobs[key]
                self.ledger.drop(key)
            uploaded, inputs = model(), dataset()
            job = self._call(
                lambda: self.client.submit_inference_job(
                    uploaded, device, inputs=inputs, name=name, options=options, retry=False, profile=True
                ),
                f"submitting an inference job of {name}",
            )
            self.submitted += 1
            self.ledger.put(key, {"job": job.job_id, "url": str(job.url), "name": name}, self.run)
        self.jobs[key] = HubJob(key, job)
        return self.jobs[key]

    def _reattach(self, job_id: str) -> Optional[Any]:
        """The job ``job_id`` of an earlier run, or None when it cannot be used (gone, failed, its inputs expired)."""
        try:
            job = self.client.get_job(job_id)
            status = job.get_status()
        except Exception as exc:
            if _retryable(exc):
                raise DeviceFault(f"{self.where}: re-attaching to job {job_id} failed: {hub_error(exc)}") from None
            return None
        if status.failure:
            return None
        inputs = getattr(job, "inputs", None)
        if inputs is not None and not status.finished:
            dataset = self._call(lambda: self.client.get_dataset(inputs.dataset_id), f"reading job {job_id}'s inputs")
            if dataset.is_expired():  # it cannot finish: its inputs are gone
                return None
        return job

    def collect(self, hub_job: HubJob) -> HubJob:
        """Wait for ``hub_job`` (polling from 0.2 s up to every 10 s, up to ``job_timeout`` and the run's
        budget), then fetch its outputs and profile; DeviceFault / WorkerError naming the job's URL."""
        if hub_job.profile is not None:
            return hub_job
        job, url = hub_job.job, hub_job.url
        limit = min(self.job_timeout, max(self.budget.left, 0.0))
        deadline, delay = time.monotonic() + limit, POLL_FIRST_S
        while True:
            status = self._call(job.get_status, f"polling job {url}")
            if status.finished:
                break
            if time.monotonic() + delay > deadline:
                raise DeviceFault(
                    f"{self.where}: job {url} is still {status.code} after {limit:.0f} s (job_timeout / budget_s): "
                    "it keeps running on AI Hub; the next run re-attaches to it"
                )
            time.sleep(delay)
            delay = min(2 * delay, POLL_MAX_S)
        if status.failure:
            self.ledger.drop(hub_job.key)
            raise WorkerError("run", f"AI Hub job {url} failed: {one_line(status.message or status.code, 300)}")
        data = self._call(job.download_output_data, f"downloading the outputs of job {url}")
        hub_job.profile = self._call(job.download_profile, f"downloading the profile of job {url}") or {}
        hub_job.tools = self._call(lambda: tool_versions(self.client, job.job_id), f"reading the tools of job {url}")
        hub_job.outputs = _per_example(data or {})
        self.ledger.collected(hub_job.key, self.run)
        return hub_job


def tool_versions(client: Any, job_id: str) -> Dict[str, str]:
    """``{tool: version}`` of a finished job's profile (QAIRT's among them): the client's profile dict leaves them
    out, so they are read from the job's result as its REST API returns it."""
    from qai_hub import public_rest_api

    detail = public_rest_api.get_job_results(client.config, job_id).inference_job_result.detail
    return {tool.name: tool.version for tool in detail.tool_versions}


def _per_example(data: Mapping[str, Sequence[np.ndarray]]) -> List[Dict[str, np.ndarray]]:
    """``{name: [array per example]}`` (a dataset) as ``[{name: array} per example]``."""
    count = min((len(arrays) for arrays in data.values()), default=0)
    return [{name: arrays[index] for name, arrays in data.items()} for index in range(count)]
