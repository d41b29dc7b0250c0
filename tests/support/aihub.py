"""A loopback Qualcomm AI Hub for the tests: the protobuf-over-HTTP endpoints the real ``qai-hub`` client calls
to list devices, upload a model and a dataset, run an inference job and fetch its outputs and profile.

:class:`HubDouble` serves them on 127.0.0.1 (free port, a thread per request) and really runs every job on this
machine, one after another, each in its own process (``tests/support/aihub_runner.py``: the CPU EP, or the QNN
HTP simulator with CPU fallback). Every device it lists carries :data:`TEST_DOUBLE_ATTRIBUTE`. Faults
(:meth:`HubDouble.fail`, :meth:`~HubDouble.fail_jobs`, :meth:`~HubDouble.hold_jobs`,
:meth:`~HubDouble.expire_datasets`) reach the client as the service's own answers would.
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union
from urllib.parse import parse_qs, urlsplit

import qai_hub
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from packaging.version import Version
from qai_hub import public_api_pb2 as pb

from pytest_edgeort._text import did_you_mean, one_line

TEST_DOUBLE_ATTRIBUTE = "test-double:pytest-edgeort"
HUB_VERSION = "pytest-edgeort test double"
DATASET_LIFETIME_S = 30 * 24 * 3600  # AI Hub keeps a dataset 30 days
JOB_TIMEOUT_S = 600  # a job's process running longer ends the job FAILED
REPO_ROOT = Path(__file__).resolve().parents[2]
PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class DoubleDevice:
    """A device the double lists (it adds :data:`TEST_DOUBLE_ATTRIBUTE` to the attributes)."""

    name: str
    os: str
    attributes: Tuple[str, ...]
    soc_description: str = ""


_ANDROID_ONNX = ("os:android", "framework:onnx", "framework:qnn", "format:phone")
DEFAULT_DEVICES = (
    DoubleDevice(
        "Samsung Galaxy S24 (Family)",
        "14",
        ("chipset:qualcomm-snapdragon-8gen3", "hexagon:v75", *_ANDROID_ONNX, "vendor:samsung"),
        "Snapdragon® 8 Gen 3 Mobile",
    ),
    DoubleDevice(
        "Snapdragon 8 Elite QRD",
        "15",
        ("chipset:qualcomm-snapdragon-8-elite", "hexagon:v79", *_ANDROID_ONNX, "vendor:qualcomm"),
        "Snapdragon® 8 Elite Mobile",
    ),
)


@dataclass
class JobRecord:
    """One inference job as the double keeps it (``state``: a JobState name without its prefix, e.g. "DONE")."""

    job_id: str
    device: str
    options: str
    model_sha256: str
    dataset_id: str
    profile: bool
    state: str = "CREATED"
    failure_reason: str = ""
    output_dataset_id: str = ""
    forced_failure: str = field(default="", repr=False)  # set at creation: the job ends FAILED with it


@dataclass
class _Stored:
    """An uploaded (or job-made) model or dataset: its protobuf record and its file."""

    record: Any  # pb.Model or pb.Dataset
    path: Path
    complete: bool = False


@dataclass(frozen=True)
class _Request:
    ids: Dict[str, str]
    query: Dict[str, List[str]]
    headers: Any
    body: bytes

    def param(self, name: str, default: str = "") -> str:
        return self.query.get(name, [default])[0]


class _Reply(Exception):
    """An answer other than 200 (``status``, plain ``text``), raised by a handler."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


#: a handler's answer: a protobuf message (200), or (status, body bytes, extra headers) for a transfer URL
_Answer = Union[Message, Tuple[int, bytes, Dict[str, str]]]


@dataclass(frozen=True)
class _Route:
    name: str  # what fail() and count() call it
    method: str
    pattern: str  # regular expression of the path after the prefix
    handler: Callable[[HubDouble, _Request], _Answer]
    api: bool = True  # under /api/v1/ with a token; False: a transfer URL (pre-signed, as S3's are)


def _stamp(offset_s: float = 0.0) -> Timestamp:
    stamp = Timestamp()
    stamp.FromSeconds(int(time.time() + offset_s))
    return stamp


def _new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice("0123456789abcdefghijklmnopqrstuvwxyz") for _ in range(8))


def _os_matches(device_os: str, wanted: str) -> bool:
    """The client's OS filter: empty, one exact version, or a right-open interval "[a,b)" (either side empty)."""
    if not wanted:
        return True
    if not wanted.startswith("["):
        return device_os == wanted
    low, _, high = wanted[1:-1].partition(",")
    version = Version(device_os)
    return (not low or Version(low) <= version) and (not high or version < Version(high))


def _multipart_file(content_type: str, body: bytes, name: str) -> bytes:
    """The content of form field ``name`` in a multipart/form-data body."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if not found:
        raise _Reply(400, f"not a multipart upload: {content_type}")
    for part in body.split(b"--" + found.group(1).encode())[1:-1]:
        head, _, data = part.partition(b"\r\n\r\n")
        if f'name="{name}"'.encode() in head:
            return data[:-2] if data.endswith(b"\r\n") else data
    raise _Reply(400, f"the upload has no {name!r} field")


class HubDouble:
    """A loopback AI Hub: :attr:`url` and :attr:`token` for the real client, its state and fault injection.

    ``root`` holds what is uploaded and each job's folder; ``devices`` replaces :data:`DEFAULT_DEVICES`.
    """

    def __init__(self, root: Path, token: str = "double-token", devices: Optional[Sequence[DoubleDevice]] = None):
        self.root = Path(root)
        self.token = token
        self.devices = tuple(
            DoubleDevice(d.name, d.os, tuple(dict.fromkeys((*d.attributes, TEST_DOUBLE_ATTRIBUTE))), d.soc_description)
            for d in (DEFAULT_DEVICES if devices is None else devices)
        )
        self.url = ""
        self.jobs: List[JobRecord] = []
        self.requests: List[Tuple[str, str, int]] = []
        self._models: Dict[str, _Stored] = {}
        self._datasets: Dict[str, _Stored] = {}
        self._job_pbs: Dict[str, pb.InferenceJob] = {}
        self._profiles: Dict[str, pb.ProfileDetail] = {}
        self._faults: Dict[str, List[Tuple[int, str]]] = {}
        self._fail_reason = ""
        self._expired = False
        self._lock = threading.RLock()
        self._released = threading.Event()
        self._released.set()
        self._queue: queue.Queue = queue.Queue()
        self._process: Optional[subprocess.Popen] = None
        self._stopping = False
        self._server: Optional[ThreadingHTTPServer] = None
        self._threads: List[threading.Thread] = []

    # -- lifecycle

    def start(self) -> HubDouble:
        for folder in ("models", "datasets", "jobs"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        handler = type("_BoundHandler", (_RequestHandler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = "http://127.0.0.1:%d/" % self._server.server_address[1]
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="hub-double-http", daemon=True),
            threading.Thread(target=self._work, name="hub-double-jobs", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and end the running job's process (jobs still queued stay as they are)."""
        self._stopping = True
        self._queue.put(None)
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=30)

    def __enter__(self) -> HubDouble:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- for the tests

    def client_ini(self, path: Path, token: Optional[str] = None) -> Path:
        """Write a qai-hub client.ini ([api] api_url, web_url, api_token, verbose = false) pointing at the double."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f"[api]\napi_token = {self.token if token is None else token}\n"
            f"api_url = {self.url}\nweb_url = {self.url}\nverbose = false\n"
        )
        return path

    def client(self, token: Optional[str] = None) -> qai_hub.Client:
        """A real qai-hub client pointed at the double (``token``: another token than the double's)."""
        config = qai_hub.ClientConfig(
            api_token=self.token if token is None else token, api_url=self.url, web_url=self.url, verbose=False
        )
        return qai_hub.Client(config=config)

    def fail(self, route: str, status: int, times: int = 1, body: str = "") -> None:
        """The next ``times`` requests to ``route`` (a name in :data:`ROUTES`) answer HTTP ``status`` with ``body``."""
        names = sorted({r.name for r in ROUTES})
        if route not in names:
            raise ValueError(f"no route {route!r} in the AI Hub test double{did_you_mean(route, names)}")
        with self._lock:
            self._faults.setdefault(route, []).extend([(status, body)] * times)

    def fail_jobs(self, reason: str) -> None:
        """Jobs created from now on end FAILED with ``reason``."""
        self._fail_reason = reason

    def hold_jobs(self) -> None:
        """Jobs stay queued (the first one in its running state) until :meth:`release_jobs`."""
        self._released.clear()

    def release_jobs(self) -> None:
        self._released.set()

    def expire_datasets(self) -> None:
        """Every dataset reports itself expired; a job created on one ends FAILED saying so."""
        self._expired = True

    def count(self, route: str) -> int:
        """How many requests ``route`` got."""
        return sum(1 for method, path, _ in list(self.requests) if _route_of(method, path)[0].name == route)

    def job(self, job_id: str) -> JobRecord:
        return next(job for job in self.jobs if job.job_id == job_id)

    # -- serving

    def answer(self, method: str, target: str, headers: Any, body: bytes) -> Tuple[int, bytes, Dict[str, str]]:
        """(status, body, headers) of one request; recorded in :attr:`requests`."""
        path = urlsplit(target).path
        route, ids = _route_of(method, path)
        with self._lock:
            pending = self._faults.get(route.name)
            fault = pending.pop(0) if pending else None
        if fault is not None:
            status, reply = fault[0], (fault[1].encode(), {"Content-Type": "text/plain"})
        elif route.api and headers.get("Authorization") != f"token {self.token}":
            status, reply = 401, (b'{"detail": "Invalid token."}', {"Content-Type": "application/json"})
        else:
            try:
                answer = route.handler(self, _Request(ids, parse_qs(urlsplit(target).query), headers, body))
            except _Reply as exc:
                answer = (exc.status, exc.text.encode(), {"Content-Type": "text/plain"})
            if isinstance(answer, Message):
                status, reply = 200, (answer.SerializeToString(), {"Content-Type": PROTOBUF})
            else:
                status, reply = answer[0], (answer[1], answer[2])
        with self._lock:
            self.requests.append((method, path, status))
        return status, reply[0], reply[1]

    def _stored(self, table: Dict[str, _Stored], key: str, what: str) -> _Stored:
        with self._lock:
            if key not in table:
                raise _Reply(404, f"{what} {key} does not exist")
            return table[key]

    def _dataset_pb(self, stored: _Stored) -> pb.Dataset:
        record = pb.Dataset()
        record.CopyFrom(stored.record)
        if not record.permanent:
            lifetime = -24 * 3600 if self._expired else DATASET_LIFETIME_S
            record.expiration_time.FromSeconds(record.creation_time.seconds + lifetime)
        return record

    def _add_dataset(self, name: str, path: Path, permanent: bool = False) -> _Stored:
        dataset_id = _new_id("d")
        record = pb.Dataset(dataset_id=dataset_id, name=name, creation_time=_stamp(), permanent=permanent)
        stored = _Stored(record, path / f"{dataset_id}.h5" if path.is_dir() else path)
        with self._lock:
            self._datasets[dataset_id] = stored
        return stored

    # -- handlers: devices

    def _devices(self, request: _Request) -> pb.DeviceList:
        attributes = set(request.query.get("attributes", []))
        found = [
            device
            for device in self.devices
            if request.param("name") in ("", device.name)
            and _os_matches(device.os, request.param("os"))
            and attributes <= set(device.attributes)
        ]
        if request.param("select") == "True" and found:  # one device: the newest OS among the matches
            found = [max(found, key=lambda device: Version(device.os))]
        listed = [
            pb.Device(name=d.name, os=d.os, attributes=d.attributes, soc_description=d.soc_description) for d in found
        ]
        return pb.DeviceList(devices=listed, total_query_count=len(listed))

    def _device_of(self, wanted: pb.Device) -> DoubleDevice:
        for device in self.devices:
            if wanted.name in ("", device.name) and _os_matches(device.os, wanted.os):
                if set(wanted.attributes) <= set(device.attributes):
                    return device
        raise _Reply(400, f"device {wanted.name!r} is not available")

    # -- handlers: models

    def _create_model(self, request: _Request) -> pb.CreateUpdateResponse:
        record = pb.Model.FromString(request.body)
        if record.model_type != pb.MODEL_TYPE_ONNX or record.is_directory:
            raise _Reply(400, "the AI Hub test double takes single-file ONNX models only")
        record.model_id = _new_id("m")
        record.creation_time.CopyFrom(_stamp())
        with self._lock:
            self._models[record.model_id] = _Stored(record, self.root / "models" / f"{record.model_id}.onnx")
        return pb.CreateUpdateResponse(id=record.model_id, creation_time=record.creation_time)

    def _model_upload_url(self, request: _Request) -> pb.FileUploadResponse:
        self._stored(self._models, request.ids["id"], "model")
        size = max(int(request.param("file_size", "1")), 1)
        urls = [f"{self.url}files/models/{request.ids['id']}"]
        upload = pb.FileMultipartUploadURL(urls=urls, upload_id=_new_id("u"), max_part_size=size)
        return pb.FileUploadResponse(multipart_url=upload)

    def _put_model(self, request: _Request) -> _Answer:
        stored = self._stored(self._models, request.ids["id"], "model")
        stored.path.write_bytes(request.body)
        return 200, b"", {"ETag": '"%s"' % hashlib.md5(request.body).hexdigest()}

    def _complete_model(self, request: _Request) -> pb.CreateUpdateResponse:
        stored = self._stored(self._models, request.ids["id"], "model")
        if not pb.FileMultipartUploadComplete.FromString(request.body).etags or not stored.path.exists():
            raise _Reply(400, f"model {request.ids['id']} has no uploaded part")
        stored.complete = stored.record.file_upload_complete = True
        return pb.CreateUpdateResponse(id=stored.record.model_id)

    def _get_model(self, request: _Request) -> pb.Model:
        return self._stored(self._models, request.ids["id"], "model").record

    # -- handlers: datasets

    def _create_dataset(self, request: _Request) -> pb.CreateUpdateResponse:
        asked = pb.Dataset.FromString(request.body)
        stored = self._add_dataset(asked.name, self.root / "datasets", asked.permanent)
        record = self._dataset_pb(stored)
        return pb.CreateUpdateResponse(
            id=record.dataset_id, creation_time=record.creation_time, expiration_time=record.expiration_time
        )

    def _dataset_upload_url(self, request: _Request) -> pb.FileUploadResponse:
        self._stored(self._datasets, request.ids["id"], "dataset")
        url = pb.FileUploadURL(url=f"{self.url}files/datasets/{request.ids['id']}", file_field_name="file")
        return pb.FileUploadResponse(url=url)

    def _post_dataset(self, request: _Request) -> _Answer:
        stored = self._stored(self._datasets, request.ids["id"], "dataset")
        stored.path.write_bytes(_multipart_file(request.headers.get("Content-Type", ""), request.body, "file"))
        return 204, b"", {}

    def _update_dataset(self, request: _Request) -> pb.CreateUpdateResponse:
        stored = self._stored(self._datasets, request.ids["id"], "dataset")
        if pb.Dataset.FromString(request.body).file_upload_complete:
            if not stored.path.exists():
                raise _Reply(400, f"dataset {request.ids['id']} has no uploaded file")
            stored.complete = stored.record.file_upload_complete = True
        return pb.CreateUpdateResponse(id=request.ids["id"])

    def _get_dataset(self, request: _Request) -> pb.Dataset:
        return self._dataset_pb(self._stored(self._datasets, request.ids["id"], "dataset"))

    def _dataset_download(self, request: _Request) -> pb.FileDownloadResponse:
        self._stored(self._datasets, request.ids["id"], "dataset")
        url = f"{self.url}files/datasets/{request.ids['id']}"
        return pb.FileDownloadResponse(url=pb.FileDownloadURL(url=url, filename=f"{request.ids['id']}.h5"))

    def _get_dataset_file(self, request: _Request) -> _Answer:
        stored = self._stored(self._datasets, request.ids["id"], "dataset")
        return 200, stored.path.read_bytes(), {"Content-Type": "application/octet-stream"}

    # -- handlers: jobs

    def _create_job(self, request: _Request) -> pb.CreateUpdateResponse:
        asked = pb.Job.FromString(request.body)
        if asked.WhichOneof("job") != "inference_job":
            raise _Reply(400, "the AI Hub test double runs inference jobs only")
        spec = asked.inference_job
        model = self._stored(self._models, spec.model.model_id, "model")
        if not model.complete:
            raise _Reply(400, f"model {spec.model.model_id} has not been uploaded completely")
        if not spec.dataset.dataset_id:
            raise _Reply(400, "the AI Hub test double needs inputs: submit the job with a dataset")
        dataset = self._stored(self._datasets, spec.dataset.dataset_id, "dataset")
        if not dataset.complete:
            raise _Reply(400, f"dataset {spec.dataset.dataset_id} has not been uploaded completely")
        device = self._device_of(spec.device)
        job = JobRecord(
            job_id=_new_id("j"),
            device=device.name,
            options=spec.options,
            model_sha256=hashlib.sha256(model.path.read_bytes()).hexdigest(),
            dataset_id=spec.dataset.dataset_id,
            profile=spec.is_profiling_on,
            forced_failure=self._fail_reason
            or (f"dataset {spec.dataset.dataset_id} has expired: upload the inputs again" if self._expired else ""),
        )
        stored = pb.InferenceJob()
        stored.CopyFrom(spec)
        stored.inference_job_id = job.job_id
        stored.creation_time.CopyFrom(_stamp())
        stored.model.CopyFrom(model.record)
        stored.dataset.CopyFrom(dataset.record)
        stored.device.CopyFrom(pb.Device(name=device.name, os=device.os, attributes=device.attributes))
        with self._lock:
            self.jobs.append(job)
            self._job_pbs[job.job_id] = stored
        self._queue.put(job)
        return pb.CreateUpdateResponse(id=job.job_id, creation_time=stored.creation_time)

    def _get_job(self, request: _Request) -> pb.Job:
        with self._lock:
            if request.ids["id"] not in self._job_pbs:
                raise _Reply(404, f"job {request.ids['id']} does not exist")
            job = self.job(request.ids["id"])
            record = pb.InferenceJob()
            record.CopyFrom(self._job_pbs[job.job_id])
        record.job_state = pb.JobState.Value("JOB_STATE_" + job.state)
        if job.failure_reason:
            record.failure_reason = job.failure_reason
        return pb.Job(inference_job=record, hub_version=HUB_VERSION)

    def _job_result(self, request: _Request) -> pb.JobResult:
        self._get_job(request)
        job = self.job(request.ids["id"])
        if job.state != "DONE":
            raise _Reply(404, f"job {job.job_id} has no result ({job.state})")
        result = pb.InferenceJobResult(inference_job_id=job.job_id, output_dataset_id=job.output_dataset_id)
        if job.profile:
            result.detail.CopyFrom(self._profiles[job.job_id])
        return pb.JobResult(inference_job_result=result)

    # -- running jobs

    def _set(self, job: JobRecord, state: str, reason: str = "") -> None:
        with self._lock:
            job.state, job.failure_reason = state, reason

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None or self._stopping:
                return
            self._set(job, "MEASURING_PERFORMANCE" if job.profile else "RUNNING_INFERENCE")
            while not self._released.wait(0.1):
                if self._stopping:
                    return
            if job.forced_failure:
                self._set(job, "FAILED", job.forced_failure)
                continue
            try:
                self._run(job)
            except OSError as exc:  # the job's folder or files: the job fails, the queue goes on
                self._set(job, "FAILED", f"the AI Hub test double could not run the job: {one_line(exc)}")

    def _run(self, job: JobRecord) -> None:
        folder = self.root / "jobs" / job.job_id
        folder.mkdir()
        shutil.copyfile(self._models[self._job_pbs[job.job_id].model.model_id].path, folder / "model.onnx")
        shutil.copyfile(self._datasets[job.dataset_id].path, folder / "inputs.h5")
        (folder / "options.txt").write_text(job.options)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
        with open(folder / "runner.log", "wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tests.support.aihub_runner", str(folder)],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                code = self._process.wait(JOB_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                code = self._process.wait()
        if self._stopping:
            return
        if (folder / "failure.txt").exists():
            self._set(job, "FAILED", (folder / "failure.txt").read_text())
        elif code != 0 or not (folder / "outputs.h5").exists():
            tail = (folder / "runner.log").read_text(errors="replace").strip().splitlines()[-1:]
            self._set(job, "FAILED", f"the job's process ended with code {code}: {one_line(' '.join(tail), 300)}")
        else:
            outputs = self._add_dataset(f"{job.job_id}-outputs", folder / "outputs.h5")
            outputs.complete = outputs.record.file_upload_complete = True
            profile = json_format.Parse((folder / "profile.json").read_text(), pb.ProfileDetail())
            with self._lock:
                self._profiles[job.job_id] = profile
                job.output_dataset_id = outputs.record.dataset_id
            self._set(job, "DONE")


#: every path the double answers: (route name, method, path pattern after /api/v1/ or /, handler)
ROUTES = (
    _Route("devices", "GET", r"devices/", HubDouble._devices),
    _Route("models", "POST", r"models/", HubDouble._create_model),
    _Route("models", "GET", r"models/(?P<id>\w+)/multipart_upload/", HubDouble._model_upload_url),
    _Route("models", "POST", r"models/(?P<id>\w+)/multipart_upload/", HubDouble._complete_model),
    _Route("models", "GET", r"models/(?P<id>\w+)/", HubDouble._get_model),
    _Route("datasets", "POST", r"datasets/", HubDouble._create_dataset),
    _Route("datasets", "GET", r"datasets/(?P<id>\w+)/upload_url/", HubDouble._dataset_upload_url),
    _Route("datasets", "PATCH", r"datasets/(?P<id>\w+)/", HubDouble._update_dataset),
    _Route("datasets", "GET", r"datasets/(?P<id>\w+)/download_data/", HubDouble._dataset_download),
    _Route("datasets", "GET", r"datasets/(?P<id>\w+)/", HubDouble._get_dataset),
    _Route("jobs:create", "POST", r"jobs/", HubDouble._create_job),
    _Route("jobs:result", "GET", r"jobs/(?P<id>\w+)/result/", HubDouble._job_result),
    _Route("jobs:get", "GET", r"jobs/(?P<id>\w+)/", HubDouble._get_job),
    _Route("files", "PUT", r"files/models/(?P<id>\w+)", HubDouble._put_model, api=False),
    _Route("files", "POST", r"files/datasets/(?P<id>\w+)", HubDouble._post_dataset, api=False),
    _Route("files", "GET", r"files/datasets/(?P<id>\w+)", HubDouble._get_dataset_file, api=False),
)


def _missing(hub: HubDouble, request: _Request) -> _Answer:
    raise _Reply(404, "the AI Hub test double does not implement this endpoint")


def _route_of(method: str, path: str) -> Tuple[_Route, Dict[str, str]]:
    """The route of a request and the ids in its path (a 404 route when none matches)."""
    for route in ROUTES:
        prefix = "/api/v1/" if route.api else "/"
        found = re.fullmatch(prefix + route.pattern, path)
        if found and route.method == method:
            return route, found.groupdict()
    return _Route("unknown", method, "", _missing, api=False), {}


class _RequestHandler(BaseHTTPRequestHandler):
    hub: HubDouble  # set on the class bound to one double

    def _serve(self) -> None:
        status, body, headers = self.hub.answer(self.command, self.path, self.headers, self._body())
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
                if size == 0:
                    return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def log_message(self, format: str, *args: object) -> None:  # the double's log is HubDouble.requests
        pass
