"""The AI Hub test double driven by the real qai-hub client: devices, uploads, jobs that really run (CPU EP, QNN
HTP simulator with CPU fallback) and every fault, answered as the service would."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List

import numpy as np
import pytest

qai_hub = pytest.importorskip("qai_hub")

import onnxruntime as ort  # noqa: E402
from qai_hub.util import session as hub_session  # noqa: E402

from tests.support.aihub import TEST_DOUBLE_ATTRIBUTE, DoubleDevice, HubDouble  # noqa: E402
from tests.support.aihub_runner import JobFailure, parse_options  # noqa: E402
from tests.support.runs import wait_until  # noqa: E402

S24 = qai_hub.Device("Samsung Galaxy S24 (Family)")


def _inputs(shape, count: int = 2) -> Dict[str, List[np.ndarray]]:
    rng = np.random.default_rng(7)
    return {"x": [rng.random(shape, dtype=np.float32) for _ in range(count)]}


def _finished(job):
    wait_until(lambda: job.get_status().finished, f"AI Hub job {job.job_id}")
    return job.get_status()


def _submit(client, model, inputs, options: str = ""):
    return client.submit_inference_job(model, S24, inputs=inputs, options=options, retry=False, profile=True)


@pytest.fixture
def hub(tmp_path: Path):
    with HubDouble(tmp_path / "hub") as double:
        yield double


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory, model_dir: Path):
    """One double that ran the QDQ conv/matmul model on a 2-entry dataset: an npu job and a cpu job."""
    with HubDouble(tmp_path_factory.mktemp("hub")) as hub:
        client = hub.client()
        model = client.upload_model(str(model_dir / "conv_matmul_qdq.onnx"))
        dataset = client.upload_dataset(_inputs((1, 3, 16, 16)))
        npu = _submit(client, model, dataset, "--compute_unit npu --onnx_execution_providers qnn")
        cpu = _submit(client, model, dataset, "--compute_unit cpu")
        statuses = [_finished(npu), _finished(cpu)]
        yield SimpleNamespace(hub=hub, client=client, model=model, dataset=dataset, npu=npu, cpu=cpu, statuses=statuses)


def test_devices_are_filtered_like_the_service(hub: HubDouble):
    client = hub.client()
    everything = client.get_devices()
    assert [d.name for d in everything] == ["Samsung Galaxy S24 (Family)", "Snapdragon 8 Elite QRD"]
    assert all(TEST_DOUBLE_ATTRIBUTE in d.attributes for d in everything)
    assert [d.name for d in client.get_devices(name="Snapdragon 8 Elite QRD")] == ["Snapdragon 8 Elite QRD"]
    assert client.get_devices(name="Samsung Galaxy S24") == []  # the name matches exactly
    assert [d.name for d in client.get_devices(attributes=["hexagon:v75", "os:android"])] == [S24.name]
    assert client.get_devices(attributes=["hexagon:v75", "hexagon:v79"]) == []  # all attributes, not any
    assert [d.name for d in client.get_devices(os="[15,)", attributes="os:android")] == ["Snapdragon 8 Elite QRD"]


def test_the_constructors_devices_are_listed_as_test_doubles(tmp_path: Path):
    with HubDouble(tmp_path, devices=[DoubleDevice("QCS6490 board", "12", ("chipset:qualcomm-qcs6490",))]) as hub:
        (device,) = hub.client().get_devices()
    assert device.name == "QCS6490 board"
    assert device.attributes == ["chipset:qualcomm-qcs6490", TEST_DOUBLE_ATTRIBUTE]


def test_a_client_ini_points_the_default_client_at_the_double(
    hub: HubDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(hub.client_ini(tmp_path / "client.ini")))
    assert len(qai_hub.Client().get_devices()) == 2
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(hub.client_ini(tmp_path / "other.ini", token="revoked")))
    with pytest.raises(qai_hub.client.UserError, match="Failed to authenticate"):
        qai_hub.Client().get_devices()


def test_uploads_come_back_through_the_client(hub: HubDouble, model_dir: Path):
    client = hub.client()
    model = client.upload_model(str(model_dir / "conv_matmul_qdq.onnx"))
    assert client.get_model(model.model_id).name == "conv_matmul_qdq.onnx"
    entries = _inputs((1, 3, 16, 16))
    dataset = client.get_dataset(client.upload_dataset(entries).dataset_id)
    assert dataset.get_expiration_status() == "Not Expired"
    downloaded = dataset.download()
    assert list(downloaded) == ["x"] and len(downloaded["x"]) == 2
    assert all(np.array_equal(a, b) for a, b in zip(downloaded["x"], entries["x"]))


def test_jobs_return_one_output_entry_per_input_entry(ran):
    assert [s.code for s in ran.statuses] == ["SUCCESS", "SUCCESS"]
    uploaded = ran.hub.root / "models" / f"{ran.model.model_id}.onnx"
    expected = {o.name: o.shape for o in ort.InferenceSession(str(uploaded)).get_outputs()}
    for job in (ran.npu, ran.cpu):
        outputs = job.download_output_data()
        assert {name: [list(a.shape) for a in arrays] for name, arrays in outputs.items()} == {
            name: [shape, shape] for name, shape in expected.items()
        }


def test_a_cpu_job_equals_onnxruntime_cpu_here_bit_for_bit(ran, model_dir: Path):
    session = ort.InferenceSession(str(model_dir / "conv_matmul_qdq.onnx"), providers=["CPUExecutionProvider"])
    outputs = ran.cpu.download_output_data()
    for i, x in enumerate(ran.dataset.download()["x"]):
        (y,) = session.run(None, {"x": x})
        assert outputs["y"][i].tobytes() == y.tobytes()


def test_an_npu_job_profile_puts_the_quantized_model_on_the_npu(ran):
    profile = ran.npu.download_profile()
    units = {(layer["type"], layer["compute_unit"]) for layer in profile["execution_detail"]}
    assert {("Conv", "NPU"), ("MatMul", "NPU")} <= units
    assert ("Conv", "CPU") not in units and ("MatMul", "CPU") not in units
    summary = profile["execution_summary"]
    assert len(summary["all_inference_times"]) == 5
    assert summary["estimated_inference_time"] == sorted(summary["all_inference_times"])[2]
    assert {layer["compute_unit"] for layer in ran.cpu.download_profile()["execution_detail"]} == {"CPU"}


def test_the_double_records_each_job(ran):
    npu, cpu = ran.hub.jobs
    assert (npu.job_id, cpu.job_id) == (ran.npu.job_id, ran.cpu.job_id)
    assert (npu.device, npu.dataset_id, npu.state, npu.profile) == (S24.name, ran.dataset.dataset_id, "DONE", True)
    assert cpu.options == "--compute_unit cpu"
    assert npu.model_sha256 == cpu.model_sha256 and len(npu.model_sha256) == 64
    assert ran.npu.url == f"{ran.hub.url}jobs/{ran.npu.job_id}/"


def test_a_new_client_re_attaches_to_a_job_by_its_id(ran):
    again = ran.hub.client().get_job(ran.npu.job_id)
    assert again.get_status().success
    first, second = ran.npu.download_output_data(), again.download_output_data()
    assert len(first["y"]) == len(second["y"]) == 2
    assert all(np.array_equal(a, b) for a, b in zip(first["y"], second["y"]))
    assert ran.hub.count("jobs:create") == 2


def test_an_op_htp_cannot_take_is_a_cpu_layer(hub: HubDouble, model_dir: Path):
    client = hub.client()
    job = _submit(client, str(model_dir / "det.onnx"), _inputs((1, 4, 4)))
    assert _finished(job).success
    units = {layer["name"]: layer["compute_unit"] for layer in job.download_profile()["execution_detail"]}
    assert units["det_node"] == "CPU"
    assert units["scale"] == "NPU"


def test_a_wrong_token_is_the_clients_authentication_error(hub: HubDouble):
    with pytest.raises(qai_hub.client.UserError, match="Failed to authenticate"):
        hub.client(token="not-the-token").get_devices()
    hub.fail("devices", 401)
    with pytest.raises(qai_hub.client.UserError, match="Failed to authenticate"):
        hub.client().get_devices()
    assert [status for _, _, status in hub.requests] == [401, 401]


def test_426_is_the_clients_upgrade_message(hub: HubDouble, model_dir: Path):
    hub.fail("models", 426, body="qai-hub 0.56.0 is no longer supported: pip install --upgrade qai-hub")
    with pytest.raises(qai_hub.client.UserError, match="0.56.0 is no longer supported"):
        hub.client().upload_model(str(model_dir / "det.onnx"))


def test_429_on_job_creation_is_rate_limited_after_the_clients_own_retries(
    hub: HubDouble, model_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(hub_session, "MAX_WAIT", 0.01)  # the client's backoff between its 7 tries, shortened
    client = hub.client()
    model = client.upload_model(str(model_dir / "det.onnx"))
    dataset = client.upload_dataset(_inputs((1, 4, 4)))
    hub.fail("jobs:create", 429, times=1 + hub_session.MAX_RETRIES)
    with pytest.raises(qai_hub.client.RateLimitedError):
        _submit(client, model, dataset)
    assert hub.jobs == []
    assert hub.count("jobs:create") == 1 + hub_session.MAX_RETRIES


def test_fail_jobs_ends_new_jobs_failed_with_the_reason(hub: HubDouble, model_dir: Path):
    hub.fail_jobs("Failed to load the model on the device")
    status = _finished(_submit(hub.client(), str(model_dir / "det.onnx"), _inputs((1, 4, 4))))
    assert (status.code, status.message) == ("FAILED", "Failed to load the model on the device")


def test_an_expired_dataset_reports_expired_and_fails_its_job(hub: HubDouble, model_dir: Path):
    client = hub.client()
    dataset = client.upload_dataset(_inputs((1, 4, 4)))
    hub.expire_datasets()
    assert client.get_dataset(dataset.dataset_id).is_expired()
    assert client.get_dataset(dataset.dataset_id).get_expiration_status() == "Expired"
    with pytest.raises(qai_hub.client.UserError, match="is expired"):  # the client refuses a dataset it sees expired
        _submit(client, str(model_dir / "det.onnx"), client.get_dataset(dataset.dataset_id))
    status = _finished(_submit(client, str(model_dir / "det.onnx"), dataset))  # the object from before it expired
    assert status.failure and f"dataset {dataset.dataset_id} has expired" in status.message


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ("--compute_unit gpu", "the AI Hub test double has no GPU"),
        ("--compute_unit npu --max_profiler_iterations 3", "unknown option --max_profiler_iterations"),
    ],
)
def test_a_job_the_double_cannot_run_fails_with_its_reason(hub: HubDouble, model_dir: Path, options, reason):
    status = _finished(_submit(hub.client(), str(model_dir / "det.onnx"), _inputs((1, 4, 4)), options))
    assert status.failure and reason in status.message


def test_a_dataset_without_the_models_input_fails_the_job_naming_it(hub: HubDouble, model_dir: Path):
    inputs = {"image": _inputs((1, 4, 4))["x"]}
    status = _finished(_submit(hub.client(), str(model_dir / "det.onnx"), inputs))
    assert status.failure and "no entry for model input 'x' (it has image)" in status.message


def test_a_held_job_stays_running_until_released(hub: HubDouble, model_dir: Path):
    hub.hold_jobs()
    job = _submit(hub.client(), str(model_dir / "det.onnx"), _inputs((1, 4, 4)))
    wait_until(lambda: hub.jobs[0].state == "MEASURING_PERFORMANCE", "the job to start")
    assert hub.client().get_job(job.job_id).get_status().running
    hub.release_jobs()
    assert _finished(hub.client().get_job(job.job_id)).success
    assert hub.count("jobs:create") == 1


def test_fail_names_its_routes(hub: HubDouble):
    with pytest.raises(ValueError, match="did you mean 'jobs:create'"):
        hub.fail("jobs:creat", 500)


def test_the_options_a_job_accepts():
    assert parse_options("") == {"compute_unit": "npu", "qnn_options": {}}
    settings = parse_options("--compute_unit cpu --onnx_execution_providers qnn")
    assert settings["compute_unit"] == "cpu"
    assert parse_options("--qnn_options 'htp_performance_mode=burst;vtcm_mb=8'")["qnn_options"] == {
        "htp_performance_mode": "burst",
        "vtcm_mb": "8",
    }
    with pytest.raises(JobFailure, match="unknown compute unit 'tpu'"):
        parse_options("--compute_unit tpu")
