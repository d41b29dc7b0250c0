"""The fault table: each expected problem is one line naming the file/key/device, and the run goes on."""

from __future__ import annotations

import json

import pytest

from tests.support.runs import require_qnn

require_qnn()

QUICK_TEST = """
import pytest

@pytest.mark.edge_model(r"{model}")
@pytest.mark.edge_providers("cpu")
def test_quick(edge_session, edge_inputs):
    assert edge_session.run(edge_inputs)

def test_plain():
    pass
"""


@pytest.mark.parametrize(
    "key, value, expected",
    [
        (
            "python",
            "/opt/no such/python3",
            "device 'local': cannot start the worker with /opt/no such/python3: No such file or directory",
        ),
        (
            "workdir",
            "/proc/edgeort",
            "device 'local': worker on device 'local': cannot create the workdir /proc/edgeort: *",
        ),
    ],
    ids=["missing python", "unwritable workdir"],
)
def test_a_local_device_that_cannot_start_is_one_line_and_unavailable(pytester, model_dir, key, value, expected):
    pytester.makefile(".toml", **{"edge-devices": f'[devices.local]\n{key} = "{value}"\n'})
    pytester.makepyfile(QUICK_TEST.format(model=model_dir / "conv_matmul_qdq.onnx"))
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs", "--edge-report=report.json")
    assert result.ret == 0 and "INTERNALERROR" not in result.stdout.str()
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines([f"SKIPPED * {expected}"])
    assert json.loads((pytester.path / "report.json").read_text())["outcomes"]
    strict = pytester.runpytest("-p", "no:cacheprovider", "--edge-strict")
    strict.assert_outcomes(passed=1, errors=1)


def test_a_worker_that_dies_inside_a_test_body_is_one_line(pytester, model_dir):
    """edge_session.run on a dead worker: no traceback through plugin internals, no feed arrays dumped."""
    pytester.makepyfile(f'''
import os
import signal
import pytest

@pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}")
@pytest.mark.edge_providers("cpu")
def test_dies(edge_session, edge_inputs):
    os.kill(edge_session.device.clients["default"].pid, signal.SIGKILL)
    edge_session.run(edge_inputs)
''')
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "Traceback" not in text and "pytest_edgeort" not in text and "array(" not in text
    assert "During handling" not in text
    result.stdout.fnmatch_lines(
        [
            "*_ test_dies[[]local-cpu[]] _*",
            "conv_matmul_qdq.onnx on local/cpu: worker on device 'local' died during run: killed by SIGKILL",
            "*short test summary*",
        ]
    )


@pytest.mark.parametrize("where", ["a directory", "/proc"])
def test_an_unwritable_report_is_one_line_and_the_run_is_not_green(pytester, model_dir, where):
    target = pytester.path / "reports" if where == "a directory" else pytester.path / "x"
    if where == "a directory":
        target.mkdir()
        reason = "Is a directory"
    else:
        target = __import__("pathlib").Path("/proc/edgeort-report.json")
        reason = "*"
    pytester.makepyfile(QUICK_TEST.format(model=model_dir / "conv_matmul_qdq.onnx"))
    result = pytester.runpytest("-p", "no:cacheprovider", f"--edge-report={target}")
    assert result.ret == 1 and "Traceback" not in result.stdout.str() and "INTERNALERROR" not in result.stdout.str()
    result.stdout.fnmatch_lines([f"edgeort: cannot write the --edge-report {target}: {reason}", "*2 passed*"])
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")] if where == "a directory" else True


SIGTERM_TESTS = """
import pathlib
import time
import pytest

pytestmark = [pytest.mark.edge_model(r"{model}"), pytest.mark.edge_providers("qnn-htp")]

def test_a_finishes(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))

def test_b_is_cancelled(edge_session):
    pathlib.Path("holding").write_text("1")
    time.sleep(120)
"""


def test_sigterm_is_handled_like_ctrl_c(pytester, model_dir, tmp_path):
    """CI cancellation: reports written (interrupted), workers stopped, nothing left running."""
    import os
    import signal
    import subprocess
    import sys
    import time

    workdir = tmp_path / "work"
    pytester.makefile(".toml", **{"edge-devices": f'[devices.local]\nworkdir = "{workdir}"\n'})
    pytester.makepyfile(SIGTERM_TESTS.format(model=model_dir / "conv_matmul_qdq.onnx"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--edge-report=r.json", "--junitxml=j.xml"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while not (pytester.path / "holding").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)
    output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 2, output  # pytest's "interrupted"
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["interrupted"] is True
    assert [r["check"] for r in report["results"]] == ["conformance"] and report["results"][0]["outcome"] == "passed"
    assert (pytester.path / "j.xml").read_text().count("<testcase") >= 1
    left = subprocess.run(["pgrep", "-f", str(workdir)], capture_output=True, text=True).stdout.split()
    assert not left, f"workers still running after SIGTERM: {left}"


def test_a_full_disk_during_upload_leaves_no_temp_file_and_stale_ones_are_cleaned(pytester, model_dir, tmp_path):
    import hashlib
    import sys

    workdir = tmp_path / "work"
    (workdir / "models").mkdir(mode=0o700, parents=True)
    workdir.chmod(0o700)
    stale = workdir / "models" / f"{'0' * 64}.onnx.999999999.tmp"  # from an upload whose process died
    stale.write_bytes(b"partial")
    small = tmp_path / "python-small-disk"
    small.write_text(f'#!/bin/sh\nulimit -f 8\nexec {sys.executable} "$@"\n')  # files up to 4 KiB (dash: 512 B)
    small.chmod(0o755)
    model = model_dir / "conv_matmul_qdq.onnx"
    pytester.makefile(".toml", **{"edge-devices": f'[devices.local]\nworkdir = "{workdir}"\npython = "{small}"\n'})
    pytester.makepyfile(QUICK_TEST.format(model=model))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    result.stdout.fnmatch_lines(
        [
            f"*conv_matmul_qdq.onnx on local/cpu: session creation failed: cannot store model "
            f"{sha[:12]} in {workdir / 'models'}: File too large"
        ]
    )
    assert sorted(p.name for p in (workdir / "models").iterdir()) == []


def test_a_lost_board_lock_fails_the_boards_remaining_tests(pytester, model_dir, tmp_path):
    """The lock holder killed mid-run: another run could take the board, so this one must not go on."""
    pytester.makefile(
        ".toml", **{"edge-devices": f'[devices.local]\nlock = true\nlock_file = "{tmp_path / "b.lock"}"\n'}
    )
    pytester.makepyfile(f'''
import os
import signal
import time
import pytest

pytestmark = [pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}"), pytest.mark.edge_providers("cpu")]

def test_a(edge_session, edge_inputs):
    edge_session.run(edge_inputs)

def test_b_lock_killed(edge_session, edge_inputs):
    holder = edge_session.device.clients["lock"]
    os.kill(holder.pid, signal.SIGKILL)
    while holder.usable():
        time.sleep(0.01)
    edge_session.run(edge_inputs)

def test_c(edge_session, edge_inputs):
    edge_session.run(edge_inputs)
''')
    result = pytester.runpytest("-p", "no:cacheprovider", "-rf")
    result.assert_outcomes(passed=1, failed=2)
    lost = [
        line
        for line in result.outlines
        if line.startswith("device 'local': board lock lost: the process that held it (pid ")
    ]
    assert len(lost) == 2  # the failure sections of test_b and test_c (CI=true also prints them in full below)


def test_every_failed_edge_test_has_a_report_record_with_phase_and_reason(pytester, model_dir):
    pytester.makepyfile(f'''
import os
import signal
import pytest

@pytest.mark.edge_model(r"{model_dir / "no_such_model.onnx"}")
@pytest.mark.edge_providers("cpu")
def test_setup_fails(edge_session):
    pass

@pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}")
@pytest.mark.edge_providers("cpu")
def test_worker_dies(edge_session, edge_inputs):
    os.kill(edge_session.device.clients["default"].pid, signal.SIGKILL)
    edge_session.run(edge_inputs)
''')
    result = pytester.runpytest("-p", "no:cacheprovider", "--edge-report=r.json")
    result.assert_outcomes(failed=1, errors=1)
    records = {r["nodeid"].split("::")[1]: r for r in json.loads((pytester.path / "r.json").read_text())["results"]}
    setup, body = records["test_setup_fails[local-cpu]"], records["test_worker_dies[local-cpu]"]
    assert (setup["phase"], setup["outcome"], setup["check"], setup["device"], setup["provider"]) == (
        "setup",
        "error",
        "test",
        "local",
        "cpu",
    )
    assert "no_such_model.onnx" in setup["error"] and "\n" not in setup["error"]
    assert (body["phase"], body["outcome"]) == ("call", "failed")
    assert (
        body["error"]
        == "conv_matmul_qdq.onnx on local/cpu: worker on device 'local' died during run: killed by SIGKILL"
    )


def external_data_model(folder):
    """The float conv/matmul test model with its weights in an external data file."""
    import onnx

    from tests.support.models import conv_matmul_float

    folder.mkdir(parents=True, exist_ok=True)
    source = conv_matmul_float(folder / "inline.onnx")
    model = onnx.load(str(source))
    path = folder / "external.onnx"
    onnx.save(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.data",
        size_threshold=0,
    )
    return path


def test_a_model_with_external_data_runs_and_its_data_is_cached_by_hash(pytester, tmp_path):
    model = external_data_model(tmp_path / "m")
    workdir = tmp_path / "work"
    pytester.makefile(".toml", **{"edge-devices": f'[devices.local]\nworkdir = "{workdir}"\n'})
    pytester.makepyfile(f'''
import pytest

@pytest.mark.edge_model(r"{model}")
@pytest.mark.edge_providers("qnn-htp", "cpu")
def test_matches_cpu(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))
''')
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)
    cached = sorted(p.name for p in (workdir / "models").rglob("*") if p.is_file())
    assert "weights.data" in cached and len(cached) == 2
    data = next((workdir / "models").rglob("weights.data"))
    data.write_bytes(data.read_bytes()[::-1])  # tampered weights must never run under the model's name
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)
    assert data.read_bytes() == (model.parent / "weights.data").read_bytes()


@pytest.mark.parametrize("problem", ["missing", "outside"])
def test_external_data_that_is_missing_or_outside_the_model_folder_is_one_line(pytester, tmp_path, problem):
    model = external_data_model(tmp_path / "m")
    if problem == "outside":  # onnx refuses to write such a model, so the location is edited in
        import onnx

        proto = onnx.load(str(model), load_external_data=False)
        for tensor in proto.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = "../weights.data"
        onnx.save(proto, str(model))
    if problem == "missing":
        (model.parent / "weights.data").unlink()
        expected = f"{model}: external data file 'weights.data' not found: {model.parent / 'weights.data'}"
    else:
        expected = f"{model}: external data location '../weights.data' is outside the model's folder {model.parent}"
    pytester.makepyfile(QUICK_TEST.format(model=model))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([expected])
