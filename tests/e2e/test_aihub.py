"""Devices of kind ``qai-hub``: the real ``qai-hub`` client against the loopback AI Hub test double
(tests/support/aihub.py), which really runs the uploaded model here (CPU EP, QNN HTP simulator). These tests
assert the adapter's behaviour (mapping, submit-then-collect, re-attach, every error line, the placement label),
not AI Hub's numerics."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.runs import MATCH_TEST, require_qnn, run

pytest.importorskip("qai_hub", reason="the qai-hub client (pip install 'pytest-edgeort[aihub]') drives AI Hub")
require_qnn()

from tests.support.aihub import HubDouble  # noqa: E402  (needs qai_hub's protobuf classes)

S24 = "Samsung Galaxy S24 (Family)"
INVENTORY = f'[devices.s24]\nkind = "qai-hub"\ndevice = "{S24}"\n'
SUITE = """model = "{model}"
providers = ["qnn-htp"]
reference = "cpu"
[inputs.generate]
count = 3
[checks]
no_cpu_fallback = true
latency_p50_ms = 10000.0
"""


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A running double; the client's config (QAIHUB_CLIENT_INI) points at it; the job ledger in tmp_path."""
    with HubDouble(tmp_path / "hub") as double:
        monkeypatch.setenv("QAIHUB_CLIENT_INI", str(double.client_ini(tmp_path / "client.ini")))
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        yield double


def suite_project(pytester: pytest.Pytester, model: Path, inventory: str = INVENTORY) -> None:
    folder = pytester.path / "suite"
    folder.mkdir()
    shutil.copyfile(model, folder / model.name)
    (folder / "edge_suite.toml").write_text(SUITE.format(model=model.name))
    pytester.makefile(".toml", **{"edge-devices": inventory})


def records(pytester: pytest.Pytester) -> dict:
    report = json.loads((pytester.path / "report.json").read_text())
    return {rec["nodeid"].split("::")[-1]: rec for rec in report["results"]}


def test_a_suite_runs_on_a_hosted_device_submitting_every_job_before_collecting_any(pytester, model_dir, hub):
    suite_project(pytester, model_dir / "conv_matmul_qdq.onnx")
    result = run(pytester, "--edge-device=s24", "--edge-report=report.json", "--edge-update-golden", "suite")
    result.assert_outcomes(passed=4)
    creates = [i for i, (method, path, _) in enumerate(hub.requests) if method == "POST" and "/jobs" in path]
    results = [i for i, (_, path, _) in enumerate(hub.requests) if path.rstrip("/").endswith("/result")]
    # one job per compute unit (NPU, and the CPU reference on the same phone), both before any result is read
    assert len(creates) == 2 and max(creates) < min(results)
    assert sorted(job.options.split()[1] for job in hub.jobs) == ["cpu", "npu"]
    by_check = records(pytester)
    conformance = by_check["conformance[s24-qnn-htp]"]
    assert conformance["hosted"]["test_double"] is True
    assert conformance["hosted"]["service"].startswith("AI Hub test double at http://127.0.0.1:")
    assert conformance["hosted"]["chipset"] == "qualcomm-snapdragon-8gen3"
    assert conformance["hosted"]["jobs"] and conformance["hosted"]["jobs"][0].startswith(hub.url)
    assert conformance["hosted"]["tools"]["QAIRT"].startswith("2.")  # what ran the job (here: the QNN SDK)
    assert conformance["hosted"]["client"].startswith("qai-hub 0.")
    assert conformance["reference_device"] == "s24"
    placement = by_check["no_cpu_fallback[s24-qnn-htp]"]
    assert placement["placement_verdict"] == "no CPU layer in the AI Hub profile"
    assert placement["cpu_fallback"] is True  # never reported as run with fallback disabled
    latency = by_check["latency[s24-qnn-htp]"]["latency"]
    assert latency["runs"] >= 1  # timed on the "device" by the job's profile, not on this host
    assert "AI Hub test double" in result.stdout.str()
    result.stdout.fnmatch_lines(["edgeort device s24: 2 job(s) submitted ahead, 0 re-attached*"])
    result.stdout.fnmatch_lines(["note: no_cpu_fallback on s24 means 'no CPU layer in the AI Hub profile': *"])


def test_an_interrupted_run_reattaches_to_its_jobs_instead_of_paying_again(pytester, model_dir, hub):
    suite_project(pytester, model_dir / "conv_matmul_qdq.onnx", INVENTORY + "job_timeout = 1\n")
    hub.hold_jobs()
    first = run(pytester, "--edge-device=s24", "suite")
    first.assert_outcomes(failed=4)
    first.stdout.fnmatch_lines(["*device 's24' (qai-hub): job http*is still * after 1 s*next run re-attaches to it*"])
    created = hub.count("jobs:create")
    hub.release_jobs()
    again = run(pytester, "--edge-device=s24", "--edge-update-golden", "suite")
    again.assert_outcomes(passed=4)
    again.stdout.fnmatch_lines(["edgeort device s24: 0 job(s) submitted ahead, 2 re-attached*"])
    assert hub.count("jobs:create") == created == 2


def test_a_job_whose_inputs_expired_is_not_reattached_and_the_expiry_is_one_line(pytester, model_dir, hub):
    suite_project(pytester, model_dir / "conv_matmul_qdq.onnx", INVENTORY + "job_timeout = 1\n")
    hub.hold_jobs()
    run(pytester, "--edge-device=s24", "-k", "conformance", "suite").assert_outcomes(failed=1)
    hub.expire_datasets()  # 30 days later: the held job never finished, its dataset is gone
    again = run(pytester, "--edge-device=s24", "-k", "conformance", "suite")
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines(["*device 's24' (qai-hub): submitting an inference job of conv_matmul*is expired*"])


def test_without_a_token_the_device_skips_in_one_line_and_fails_under_strict(
    pytester, model_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "nowhere.ini"))
    suite_project(pytester, model_dir / "conv_matmul_qdq.onnx")
    result = run(pytester, "--edge-device=s24", "suite")
    result.assert_outcomes(skipped=4)
    result.stdout.fnmatch_lines(["SKIPPED*no AI Hub token: run `qai-hub configure` or set QAIHUB_CLIENT_INI*"])
    strict = run(pytester, "--edge-device=s24", "--edge-strict", "suite")
    strict.assert_outcomes(failed=4)


@pytest.mark.parametrize(
    ("fault", "line"),
    [
        ("token", "*AI Hub refused the token (HTTP 401): check the api_token of the qai-hub client.ini*"),
        ("426", "*AI Hub no longer accepts qai-hub * (HTTP 426): pip install --upgrade qai-hub*"),
        ("job", "*AI Hub job http*/jobs/* failed: the board ran out of memory*"),
        ("device", "*device 's24' (qai-hub): AI Hub has no device named 'Samsung Galaxy S42 (Family)' (did you*S24*"),
        ("gpu", "*on s24/qnn-gpu: run failed: AI Hub job http*/jobs/* failed: the AI Hub test double has no GPU*"),
    ],
)
def test_every_hub_failure_is_one_line_naming_the_device_or_the_job(pytester, model_dir, hub, tmp_path, fault, line):
    suite_project(pytester, model_dir / "conv_matmul_qdq.onnx", INVENTORY.replace("S24", "S42"))
    if fault != "device":
        (pytester.path / "edge-devices.toml").write_text(INVENTORY)
    if fault == "token":
        hub.client_ini(tmp_path / "client.ini", token="expired-token")
    elif fault == "426":
        hub.fail("devices", 426, times=100)
    elif fault == "gpu":  # qnn-gpu is --compute_unit gpu: the double has none, and says so as the service would
        toml = pytester.path / "suite" / "edge_suite.toml"
        toml.write_text(toml.read_text().replace('"qnn-htp"', '"qnn-gpu"'))
    elif fault == "job":
        hub.fail_jobs("the board ran out of memory")
    result = run(pytester, "--edge-device=s24", "suite")
    result.stdout.fnmatch_lines([line])
    assert "Traceback" not in result.stdout.str() and "┌" not in result.stdout.str()


def test_rate_limits_are_retried_with_backoff_within_the_budget(pytester, model_dir, hub, monkeypatch):
    import qai_hub.util.session

    monkeypatch.setattr(qai_hub.util.session, "MAX_WAIT", 0)  # the client's own 7 quick tries, without their waits
    suite_project(pytester, model_dir / "conv_matmul_qdq.onnx")
    hub.fail("jobs:create", 429, times=16)  # the client gives up after 7 tries: our backoff retries after 1, 2 s
    result = run(pytester, "--edge-device=s24", "-k", "conformance", "suite")
    result.assert_outcomes(passed=1)
    statuses = [status for method, path, status in hub.requests if method == "POST" and "/jobs" in path]
    assert statuses[:16] == [429] * 16 and set(statuses[16:]) == {200}


def test_a_layer_on_cpu_fails_the_profile_placement_check_and_strict_asks_for_the_strict_kind(pytester, model_dir, hub):
    from tests.support.models import det_model

    suite_project(pytester, det_model(pytester.path / "det.onnx"))
    result = run(pytester, "--edge-device=s24", "-k", "no_cpu_fallback", "suite")
    result.stdout.fnmatch_lines(["*layers ran on the CPU in the AI Hub profile (CPU fallback cannot be disabled*"])
    strict = run(pytester, "--edge-device=s24", "--edge-strict", "-k", "no_cpu_fallback", "suite")
    strict.stdout.fnmatch_lines(["*device 's24' (kind qai-hub) cannot run * with CPU fallback disabled*--edge-strict*"])


def test_the_token_never_goes_in_the_inventory(pytester, model_dir):
    suite_project(pytester, model_dir / "conv_matmul_qdq.onnx", INVENTORY + 'api_token = "secret123"\n')
    result = run(pytester, "--edge-device=s24", "suite")
    result.stdout.fnmatch_lines(["*[[]devices.s24[]]: the AI Hub token never goes in the inventory*"])
    assert "secret123" not in result.stdout.str()


@pytest.mark.parametrize("workers", ["0", "2"], ids=["one process", "two xdist workers"])
def test_an_example_suite_on_a_hosted_device_matches_the_goldens_made_on_the_simulator(tmp_path, hub, workers):
    """The digits_cnn example suite as a user runs it against a hosted phone: two jobs (NPU and the CPU reference),
    also when two xdist workers share its items; its goldens (made with the QNN HTP simulator here) hold, and fuzz
    says why it does not run there."""
    from tests.support.aihub import REPO_ROOT

    inventory = tmp_path / "edge-devices.toml"
    inventory.write_text(INVENTORY)
    args = ["-p", "no:cacheprovider", "-rs", "-n", workers, "--edge-device=s24", f"--edge-devices-file={inventory}"]
    done = subprocess.run(
        # not its latency gate: the double times jobs on this shared machine, not on a phone
        [sys.executable, "-m", "pytest", *args, "-k", "not latency", "example_suites/digits_cnn"],
        cwd=REPO_ROOT,
        env=dict(os.environ, CI="true"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "3 passed, 1 skipped" in done.stdout
    assert "fuzz does not run on device 's24' (kind qai-hub, runs are hosted jobs)" in done.stdout
    assert hub.count("jobs:create") == 2


def test_a_broken_latency_gate_is_re_measured_by_a_job_of_its_own(pytester, model_dir, hub):
    suite_project(pytester, model_dir / "conv_matmul_qdq.onnx")
    toml = pytester.path / "suite" / "edge_suite.toml"
    toml.write_text(toml.read_text().replace("latency_p50_ms = 10000.0", "latency_p50_ms = 0.000001"))
    result = run(pytester, "--edge-device=s24", "-k", "latency", "suite")
    result.stdout.fnmatch_lines(["*latency p50 * > latency_p50_ms 1e-06 (confirmed by a re-measurement)*"])
    # the suite's NPU job, the CPU reference's (its speed-up), and the re-measurement's own job
    assert hub.count("jobs:create") == 3


def test_a_model_the_npu_takes_none_of_fails_once_the_profile_says_so(pytester, hub):
    """Placement on a hosted device is known only from a job's profile: a graph that runs wholly on the CPU
    there fails the NPU test once it is known, rather than passing a CPU-vs-CPU comparison."""
    from tests.support.models import det_model

    model = det_model(pytester.path / "det_only.onnx", neighbours=False)
    pytester.makefile(".toml", **{"edge-devices": INVENTORY})
    pytester.makepyfile(MATCH_TEST.format(model=model))
    result = run(pytester, "--edge-device=s24")
    result.stdout.fnmatch_lines(["*det_only.onnx on s24/qnn-htp: QNNExecutionProvider took none of the 1 nodes*"])
    result.assert_outcomes(failed=1)
