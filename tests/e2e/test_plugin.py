"""The plugin as a user meets it: pytester runs against the real QNN HTP simulator and the CPU EP."""

from __future__ import annotations

import json

import pytest

from tests.support.runs import MATCH_TEST, QUICK_TEST, require_qnn, run

require_qnn()


def test_u8_qdq_model_matches_cpu_with_default_tolerance(pytester, model_dir):
    pytester.makepyfile(MATCH_TEST.format(model=model_dir / "conv_matmul_qdq.onnx"))
    result = run(pytester, "-v")
    result.stdout.fnmatch_lines(["*test_matches_cpu[[]local-qnn-htp[]] PASSED*"])
    result.assert_outcomes(passed=1)


def test_real_error_fails_with_table_and_worst_element(pytester, model_dir):
    pytester.makepyfile(f'''
import pytest

@pytest.mark.edge_model(
    r"{model_dir / "conv_matmul_qdq.onnx"}",
    reference_model=r"{model_dir / "conv_matmul_qdq_wrong.onnx"}",
)
@pytest.mark.edge_providers("qnn-htp")
def test_matches_cpu(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))
''')
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*conv_matmul_qdq.onnx on local/qnn-htp vs cpu reference conv_matmul_qdq_wrong.onnx: 1 of 1 "
            "outputs failed*",
            "*output*shape*verdict*max|err|*max LSB*SNR dB*",
            "E   y *1x10*FAIL*",
            "*SNR * dB * < min_snr_db 10*",
            "*error pattern: *",
            "*worst elements:*",
            "*index*actual*expected*|err|*err LSB*",
            "*(0, *",
            "*histogram in LSB*",
            "*smallest tolerance that would pass: lsb=*",
        ]
    )


def test_op_without_npu_kernel_fails_no_fallback_naming_it(pytester, model_dir):
    pytester.makepyfile(f'''
import pytest

@pytest.mark.edge_model(r"{model_dir / "det.onnx"}")
@pytest.mark.edge_providers("qnn-htp")
def test_runs_fully_on_npu(edge_assert_no_fallback):
    edge_assert_no_fallback()

@pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}")
@pytest.mark.edge_providers("qnn-htp")
def test_qdq_runs_fully_on_npu(edge_assert_no_fallback):
    assert edge_assert_no_fallback() == 1.0
''')
    result = run(pytester)
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*det.onnx on local/qnn-htp does not run fully on QNNExecutionProvider: "
            "1 of 3 nodes would run on CPU: Det x1 (det_node)*",
        ]
    )


def test_accelerator_session_with_everything_on_cpu_fails(pytester, model_dir):
    pytester.makepyfile(f'''
import pytest

@pytest.mark.edge_model(r"{model_dir / "det_only.onnx"}")
@pytest.mark.edge_providers("qnn-htp")
def test_matches_cpu(edge_session):
    pass
''')
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*det_only.onnx on local/qnn-htp: QNNExecutionProvider took none of the 1 nodes, everything runs on CPU, "
            "so there is no qnn-htp result to report; nodes: Det x1 (det_node)*",
        ]
    )


def test_a_backend_that_ships_but_cannot_run_is_not_listed_and_says_why(pytester, model_dir):
    """The onnxruntime-qnn wheel for x86-64 ships libQnnGpu.so, but there is no GPU behind it."""
    pytester.makepyfile(MATCH_TEST.format(model=model_dir / "conv_matmul_qdq.onnx").replace('"qnn-htp"', '"qnn-gpu"'))
    result = run(pytester)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [
            "edgeort device local: *; providers: cpu; listed but unusable: qnn-gpu (no session on its backend); "
            "not probed: qnn-htp, qnn-htp-fp16 (no selected test runs on it)*",
            "*device 'local' has no provider 'qnn-gpu' (QNNExecutionProvider, backend gpu) (its library ships, but "
            "QNN's gpu backend cannot create a session of a one-node float graph with CPU fallback disabled: *",
        ]
    )


RUNTIME_GPU_TEST = """
import pytest

@pytest.mark.edge_model(r"{model}")
@pytest.mark.edge_providers("qnn-htp")
def test_matches_cpu(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))

@pytest.mark.edge_providers("cpu")
def test_opens_gpu_at_run_time(edge_open):
    edge_open(r"{model}", provider="qnn-gpu")
"""


def test_only_the_backends_the_run_uses_are_probed_and_another_is_probed_when_a_test_opens_it(pytester, model_dir):
    """The QNN backend probe costs a session per backend (~40 ms for the simulator's missing GPU): a run probes
    those its items name; a session a test opens on another backend probes that one first, with the same verdict."""
    pytester.makepyfile(RUNTIME_GPU_TEST.format(model=model_dir / "conv_matmul_qdq.onnx"))
    result = run(pytester, "-k", "matches_cpu", "--edge-report=first.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "edgeort device local: *; providers: cpu, qnn-htp, qnn-htp-fp16; not probed: qnn-gpu "
            "(no selected test runs on it)*"
        ]
    )
    assert json.loads((pytester.path / "first.json").read_text())["devices"]["local"]["qnn"]["probed"] == ["htp"]
    result = run(pytester, "--edge-report=second.json")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*device 'local' has no provider 'qnn-gpu' (QNNExecutionProvider, backend gpu) (its library ships, but "
            "QNN's gpu backend cannot create a session of a one-node float graph with CPU fallback disabled: *",
        ]
    )
    qnn = json.loads((pytester.path / "second.json").read_text())["devices"]["local"]["qnn"]
    assert qnn["probed"] == ["gpu", "htp"] and list(qnn["unusable"]) == ["gpu"]


@pytest.mark.parametrize("strict", [False, True])
def test_missing_provider_skips_or_fails_when_strict(pytester, model_dir, strict):
    pytester.makepyfile(MATCH_TEST.format(model=model_dir / "conv_matmul_qdq.onnx").replace('"qnn-htp"', '"cuda"'))
    result = run(pytester, *(["--edge-strict"] if strict else []))
    message = "*device 'local' has no provider 'cuda' (CUDAExecutionProvider); it has: cpu, qnn-htp*"
    if strict:
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines([message + "[[]--edge-strict[]]*"])
        assert result.ret == 1
    else:
        result.assert_outcomes(skipped=1)
        result.stdout.fnmatch_lines([message])
        assert result.ret == 0


def test_parametrization_ids_and_provider_filter(pytester, model_dir):
    pytester.makepyfile(f'''
import pytest

@pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}")
@pytest.mark.edge_providers("qnn-htp", "cpu")
def test_ids(edge_device, edge_provider):
    pass
''')
    result = run(pytester, "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_ids[[]local-qnn-htp[]]", "*test_ids[[]local-cpu[]]"])
    filtered = run(pytester, "--collect-only", "-q", "--edge-provider=cpu")
    filtered.stdout.fnmatch_lines(["*test_ids[[]local-cpu[]]"])
    filtered.stdout.no_fnmatch_line("*local-qnn-htp*")
    none_kept = run(pytester, "--edge-provider=qnn-htp-fp16")  # a test the filter leaves nothing of says why
    none_kept.assert_outcomes(skipped=1)
    none_kept.stdout.fnmatch_lines(
        ["SKIPPED [[]1[]] *: --edge-provider qnn-htp-fp16 keeps none of the providers this test runs on (qnn-htp, cpu)"]
    )


def test_unknown_device_or_missing_inventory_file_is_a_usage_error(pytester, model_dir):
    pytester.makepyfile(MATCH_TEST.format(model=model_dir / "conv_matmul_qdq.onnx"))
    result = run(pytester, "--edge-device=board9")
    result.stderr.fnmatch_lines(["*unknown edge device 'board9'; known devices: local (from no inventory file)*"])
    named = pytester.runpytest("-p", "no:cacheprovider", "--edge-devices-file=lab/devices.toml")
    assert named.ret == pytest.ExitCode.USAGE_ERROR
    named.stderr.fnmatch_lines([f"*--edge-devices-file {pytester.path / 'lab' / 'devices.toml'}: no such file*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_sessions_are_created_once_per_key(pytester, model_dir):
    model = model_dir / "conv_matmul_qdq.onnx"
    pytester.makepyfile(f'''
import pytest

pytestmark = [pytest.mark.edge_model(r"{model}"), pytest.mark.edge_providers("qnn-htp")]

def test_one(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))

def test_two(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))

def test_three(edge_session, edge_open, edge_run_state):
    assert edge_open(r"{model}", "qnn-htp") is edge_session
    other = edge_open(r"{model}", "qnn-htp", options={{"htp_performance_mode": "burst"}})
    assert other is not edge_session
    # qnn-htp, cpu reference, and the burst-mode session: three keys, three sessions
    assert edge_run_state.sessions_created == 3
''')
    run(pytester).assert_outcomes(passed=3)


def test_provider_option_typo_is_refused_with_valid_keys(pytester, model_dir):
    pytester.makepyfile(
        MATCH_TEST.format(model=model_dir / "conv_matmul_qdq.onnx").replace(
            '"qnn-htp")', '"qnn-htp", options={"htp_performence_mode": "burst"})'
        )
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*device 'local': unknown option 'htp_performence_mode' for provider qnn-htp "
            "(did you mean 'htp_performance_mode'?); valid keys: backend_path, backend_type,*",
        ]
    )


@pytest.mark.parametrize("provider", ["cpu", "qnn-htp"])
def test_dynamic_input_names_the_fix(pytester, model_dir, provider):
    """On qnn-htp too: the fix comes first, not QNN's "took none of the nodes" that follows from it."""
    pytester.makepyfile(MATCH_TEST.format(model=model_dir / "dynamic.onnx").replace('"qnn-htp"', f'"{provider}"'))
    result = run(pytester)
    result.assert_outcomes(errors=1)
    message = (
        "dynamic.onnx: input 'x' has dynamic shape ['batch', 3, 16, 16]; give a fixed shape "
        "(edge_model(..., shapes={'x': [...]}) or [prepare] fix_shapes) or fix the model: "
        "python -m onnxruntime.tools.make_dynamic_shape_fixed --dim_param batch --dim_value 1 dynamic.onnx fixed.onnx"
    )
    before_summary = result.stdout.str().split("short test summary info")[0]  # (CI=true repeats lines there)
    assert before_summary.count(message) == 1  # once: no chained copy "During handling of ..."


def test_zero_length_input_is_static_on_qnn(pytester):
    """An empty ``axes`` input (ONNX node cases) is data of a fixed shape: generated, run and compared."""
    from tests.unit.model.test_shapes import empty_axes_model

    model = empty_axes_model(pytester.path / "empty_axes.onnx")
    pytester.makepyfile(f'''
import pytest

@pytest.mark.edge_model(r"{model}")
@pytest.mark.edge_providers("qnn-htp")
def test_empty_axes(edge_session, edge_reference, edge_inputs, edge_compare):
    assert edge_inputs["axes"].shape == (0,)
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))
''')
    run(pytester).assert_outcomes(passed=1)


@pytest.mark.parametrize(
    "float_model, source", [(False, "the QDQ model without activation rounding"), (True, "float_model f.onnx")]
)
def test_deep_outputs_are_judged_against_their_yardstick(pytester, float_model, source):
    """A deep u8 output's SNR floor follows what quantization costs on the input, measured against the user's
    float model or, without one, the QDQ model with its activation rounding removed; the record names it."""
    from tests.support.models import conv_chain_float, quantize_u8

    float_path = conv_chain_float(pytester.path / "f.onnx")
    model = quantize_u8(float_path, pytester.path / "deep.onnx")
    extra = f', float_model=r"{float_path}"' if float_model else ""
    pytester.makepyfile(f'''
import pytest

@pytest.mark.edge_model(r"{model}"{extra})
@pytest.mark.edge_providers("qnn-htp")
def test_deep(edge_session, edge_reference, edge_inputs, edge_compare):
    result = edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))
    y = result.outputs[0]
    assert y.yardstick["source"] == "{source}"
    assert y.yardstick["snr_floor_db"] <= 10 < y.yardstick["reference_snr_db"] + 6
''')
    run(pytester).assert_outcomes(passed=1)


def test_shapes_fix_the_models_shapes_for_the_session(pytester, model_dir):
    pytester.makepyfile(f'''
import pytest

@pytest.mark.edge_model(r"{model_dir / "dynamic.onnx"}", shapes={{"x": [2, 3, 16, 16]}})
@pytest.mark.edge_providers("qnn-htp")
def test_fixed(edge_session, edge_reference, edge_inputs, edge_compare):
    assert edge_session.model.path.name == "dynamic.onnx"
    assert [tuple(t.shape) for t in edge_session.model.inputs] == [(2, 3, 16, 16)]
    actual = edge_session.run(edge_inputs)
    assert actual["y"].shape == (2, 10)
    edge_compare(actual, edge_reference.run(edge_inputs))
''')
    run(pytester).assert_outcomes(passed=1)


def test_no_edge_tests_no_output_no_worker(pytester):
    pytester.makeconftest("""
from pytest_edgeort.run import edge_run

def pytest_unconfigure(config):
    run = edge_run(config)
    with open("edge-state.txt", "w") as f:
        f.write(f"{len(run.devices)} {run.sessions_created}")
""")
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    result = run(pytester)
    result.assert_outcomes(passed=1)
    assert "edgeort:" not in result.stdout.str() and "edgeort device" not in result.stdout.str()
    assert (pytester.path / "edge-state.txt").read_text() == "0 0"


def test_workers_stop_while_pytest_prints_its_summary(pytester, model_dir):
    """A worker's teardown (~15 ms for a QNN process) overlaps pytest's summary; unconfigure only waits for it."""
    pytester.makeconftest("""
import os, time
import pytest
from pytest_edgeort.run import edge_run

PIDS = []

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    PIDS.extend(c.pid for d in edge_run(session.config).devices.values() for c in d.clients.values())

def gone():
    return all(not os.path.exists(f"/proc/{pid}") for pid in PIDS)

def pytest_terminal_summary(terminalreporter):
    deadline = time.monotonic() + 5
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.01)
    terminalreporter.write_line(f"workers {len(PIDS)}, gone before the summary: {gone()}")
""")
    pytester.makepyfile(QUICK_TEST.format(models=model_dir))
    result = run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["workers 1, gone before the summary: True"])


RUN_WORKERS = """
import os
import pytest
from pytest_edgeort.run import edge_run


def run_workers(config):
    \"\"\"The pids of this run's worker processes (their command line names the run).\"\"\"
    run_id = edge_run(config).registry.run_id.encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if run_id in f.read().split(b"\\0"):
                    found.append(int(pid))
        except OSError:
            pass
    return found
"""


def test_the_local_worker_starts_while_pytest_collects(pytester, model_dir):
    """The worker loads numpy and onnxruntime (~130 ms) while pytest collects, not after the collection."""
    pytester.makeconftest(
        RUN_WORKERS
        + """
SEEN = {}

def pytest_collection_modifyitems(config):  # before the plugin's (trylast), so before the device header
    SEEN["collecting"] = run_workers(config)

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    used = [c.pid for d in edge_run(session.config).devices.values() for c in d.clients.values()]
    SEEN["used"] = used

def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"running while collecting: {SEEN['collecting'] == SEEN['used'] != []}")
"""
    )
    pytester.makepyfile(QUICK_TEST.format(models=model_dir))
    result = run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["running while collecting: True"])


def test_a_worker_started_for_deselected_edge_tests_stops_before_the_tests(pytester, model_dir):
    """``-k`` that deselects every edge test: the worker started while collecting them is gone, and so is the record
    it keeps of itself in the workdir (board/leftovers.py), no device header."""
    pytester.makeconftest(
        RUN_WORKERS
        + """
import time
from pytest_edgeort.devices.localworker import workdir_of

def pytest_collection_modifyitems(config):  # before the plugin's (trylast): the worker has recorded itself
    workdir = workdir_of(edge_run(config).registry.inventory["local"])
    config._records = [workdir / "workers" / f"{pid}.json" for pid in run_workers(config)]
    deadline = time.monotonic() + 30
    while not all(r.exists() for r in config._records) and time.monotonic() < deadline:
        time.sleep(0.02)

def pytest_collection_finish(session):
    config = session.config
    config._seen = (len(config._records), len(run_workers(config)), sum(r.exists() for r in config._records))

def pytest_terminal_summary(terminalreporter, config):
    terminalreporter.write_line("started %d; after collection: workers %d, records %d" % config._seen)
"""
    )
    pytester.makepyfile(QUICK_TEST.format(models=model_dir) + "\n\ndef test_plain():\n    pass\n")
    result = run(pytester, "-k", "plain")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["started 1; after collection: workers 0, records 0"])
    result.stdout.no_fnmatch_line("*edgeort device*")


def test_a_command_that_ran_edge_tests_starts_its_worker_before_collecting_next_time(pytester, model_dir):
    """The second run of the same command starts the local worker at configure time, before collection, and greets
    that worker; once the command's tests hold no edge test, its next run starts one and stops it after collection,
    and the run after that starts none (``.edgeort-cache/ahead.json``, git-ignored)."""
    pytester.makeconftest(
        RUN_WORKERS
        + """
SEEN = {}

@pytest.hookimpl(tryfirst=True)
def pytest_collection(session):
    SEEN["before"] = run_workers(session.config)

def pytest_collection_finish(session):
    SEEN["after"] = run_workers(session.config)

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    SEEN["used"] = [c.pid for d in edge_run(session.config).devices.values() for c in d.clients.values()]

def pytest_terminal_summary(terminalreporter):
    before, after, used = SEEN["before"], SEEN["after"], SEEN["used"]
    greeted = bool(before) and before == used
    terminalreporter.write_line(f"before collection {len(before)}, after {len(after)}, greeted: {greeted}")
"""
    )
    pytester.makepyfile(test_it=QUICK_TEST.format(models=model_dir))
    run(pytester).stdout.fnmatch_lines(["before collection 0, after 1, greeted: False"])
    result = run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["before collection 1, after 1, greeted: True"])
    assert (pytester.path / ".edgeort-cache" / ".gitignore").read_text().endswith("*\n")
    pytester.makepyfile(test_it="def test_plain():\n    pass\n")
    run(pytester).stdout.fnmatch_lines(["before collection 1, after 0, greeted: False"])
    run(pytester).stdout.fnmatch_lines(["before collection 0, after 0, greeted: False"])


def test_worker_killed_mid_run_errors_that_test_and_next_one_recovers(pytester, model_dir):
    pytester.makepyfile(f'''
import os, signal
import pytest

pytestmark = [pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}"), pytest.mark.edge_providers("cpu")]

def test_a_killed(edge_session, edge_inputs):
    os.kill(edge_session.device.clients["default"].pid, signal.SIGKILL)
    edge_session.run(edge_inputs)

def test_b_recovers(edge_session, edge_inputs):
    assert set(edge_session.run(edge_inputs)) == {{"y"}}
''')
    result = run(pytester)
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*conv_matmul_qdq.onnx on local/cpu: worker on device 'local' died during run: killed by SIGKILL*",
        ]
    )


def test_marker_help_is_registered(pytester):
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        ["@pytest.mark.edge_model(path,*", "@pytest.mark.edge_providers(*", "@pytest.mark.edge_tolerance(*"]
    )


def test_options_are_settable_as_ini(pytester, model_dir):
    pytester.makeini("[pytest]\nedge_provider = cpu\nedge_seed = 7\n")
    pytester.makepyfile(f'''
import pytest

@pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}")
@pytest.mark.edge_providers("qnn-htp", "cpu")
def test_ids(edge_provider):
    assert edge_provider == "cpu"
''')
    result = run(pytester, "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["edgeort: devices local; seed 7; providers cpu*"])


def test_edge_inputs_from_npz_exact_or_stacked_and_mismatch_named(pytester, model_dir):
    import numpy as np

    x = np.random.default_rng(0).random((3, 1, 3, 16, 16), dtype=np.float32)
    np.savez(pytester.path / "stacked.npz", x=x)
    np.savez(pytester.path / "exact.npz", x=x[1])
    np.savez(pytester.path / "wrong.npz", image=x[0])
    body = """
@pytest.mark.edge_model(r"{model}", inputs="{npz}")
@pytest.mark.edge_providers("cpu")
def test_{name}(edge_inputs):
    np.testing.assert_array_equal(edge_inputs["x"], np.load("{npz}")["x"][{index}])
"""
    model = model_dir / "conv_matmul_qdq.onnx"
    pytester.makepyfile(
        "import numpy as np\nimport pytest\n"
        + body.format(model=model, npz="stacked.npz", name="stacked", index=0)
        + body.format(model=model, npz="exact.npz", name="exact", index="...")
        + body.format(model=model, npz="wrong.npz", name="wrong", index=0)
    )
    result = run(pytester)
    result.assert_outcomes(passed=2, errors=1)
    assert (
        "wrong.npz: inputs do not match conv_matmul_qdq.onnx; missing ['x']; unexpected ['image'] (model inputs: ['x'])"
    ) in result.stdout.str()


def test_edge_compare_raises_an_assertion_error_carrying_the_comparison(pytester, model_dir):
    """As numpy.testing and torch.testing.assert_close: pytest.raises(AssertionError) works."""
    pytester.makepyfile(f'''
import pytest
from pytest_edgeort import ComparisonError

@pytest.mark.edge_model(
    r"{model_dir / "conv_matmul_qdq.onnx"}",
    reference_model=r"{model_dir / "conv_matmul_qdq_wrong.onnx"}",
)
@pytest.mark.edge_providers("qnn-htp")
def test_expected_mismatch(edge_session, edge_reference, edge_inputs, edge_compare):
    with pytest.raises(AssertionError) as info:
        edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))
    assert isinstance(info.value, ComparisonError) and not info.value.comparison.passed
    assert "vs cpu reference conv_matmul_qdq_wrong.onnx: 1 of 1 outputs failed" in str(info.value)
''')
    run(pytester).assert_outcomes(passed=1)


def _dataset_test(pytester, model_dir, samples: int, failing: int, compare_args: str) -> None:
    """A test comparing ``samples`` samples of a data set in a loop, sample ``failing`` off by 1.0."""
    pytester.makepyfile(f'''
import numpy as np
import pytest

@pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}")
@pytest.mark.edge_providers("qnn-htp")
def test_dataset(edge_session, edge_reference, edge_compare):
    for i in range({samples}):
        x = {{"x": np.random.default_rng(i).random((1, 3, 16, 16), dtype=np.float32)}}
        actual = edge_session.run(x)
        expected = edge_reference.run(x) if i != {failing} else {{k: v + 1.0 for k, v in actual.items()}}
        edge_compare(actual, expected{compare_args})
''')


def test_a_loop_of_comparisons_says_which_one_failed(pytester, model_dir):
    """A test that compares every sample of a data set: the failure names the comparison's number, and the HTML
    report marks the comparisons that passed as passed."""
    _dataset_test(pytester, model_dir, 4, 2, "")
    result = run(pytester, "--edge-html=r.html")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*on local/qnn-htp vs cpu reference (comparison 3 of this test): 1 of 1 outputs failed*"]
    )
    page = (pytester.path / "r.html").read_text()
    assert page.count("(its test failed on another check)") == 2


def test_a_labelled_comparison_names_its_sample_in_the_failure_and_the_reports(pytester, model_dir):
    """``edge_compare(..., label=)`` names a data set's sample: in the failure title, on each JSON record and
    with the HTML record; it is not taken for a tolerance key."""
    _dataset_test(pytester, model_dir, 3, 1, ', label=f"sample_{i:03d}.png", lsb=2')
    report = pytester.path / "edge.json"
    result = run(pytester, f"--edge-report={report}", "--edge-html=r.html")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*vs cpu reference (sample_001.png, comparison 2 of this test): 1 of 1 outputs failed*"]
    )
    records = [r for r in json.loads(report.read_text())["results"] if r["check"] == "conformance"]
    assert [(r["label"], r["comparison"]["passed"]) for r in records] == [
        ("sample_000.png", True),
        ("sample_001.png", False),
    ]
    assert "sample_001.png" in (pytester.path / "r.html").read_text()


def test_a_data_set_run_first_and_compared_after_judges_each_sample_on_its_own_inputs(pytester):
    """Outputs of a whole data set held, then compared one by one: the float yardstick of a deep output (what
    lowers its SNR floor where quantization itself costs that much) comes from each sample's own inputs. It
    came from the session's last feed: the last sample's float outputs judged every sample (a floor 20 dB off)."""
    from tests.support.models import deep_qdq_chain

    deep_qdq_chain(pytester.path)
    pytester.makepyfile("""
import numpy as np
import pytest

def feed(i):
    return {"x": np.random.default_rng(i).random((1, 4, 8, 8), dtype=np.float32)}

pytestmark = [pytest.mark.edge_model("deep_chain_qdq.onnx", float_model="deep_chain.onnx"),
              pytest.mark.edge_providers("qnn-htp")]

def test_each_in_turn(edge_session, edge_reference, edge_compare):
    for i in range(3):
        edge_compare(edge_session.run(feed(i)), edge_reference.run(feed(i)))

def test_run_first(edge_session, edge_reference, edge_compare):
    outputs = [edge_session.run(feed(i)) for i in range(3)]
    references = [edge_reference.run(feed(i)) for i in range(3)]
    for actual, expected in zip(outputs, references):
        edge_compare(actual, expected)
""")
    report = pytester.path / "edge.json"
    run(pytester, f"--edge-report={report}").assert_outcomes(passed=2)
    yardsticks: dict = {}
    for record in json.loads(report.read_text())["results"]:
        if record["check"] == "conformance":
            test = record["nodeid"].split("::")[1].split("[")[0]
            snr = record["comparison"]["outputs"][0]["yardstick"]["reference_snr_db"]
            yardsticks.setdefault(test, []).append(round(snr, 6))
    assert len(yardsticks["test_each_in_turn"]) == 3
    assert yardsticks["test_run_first"] == yardsticks["test_each_in_turn"]


def test_edge_compare_without_edge_session_judges_the_marked_model_on_the_provider(pytester, model_dir):
    """A test that compares arrays of its own still gets the marked model's scales and tolerances (its
    session opened as ``edge_session`` would), and its record names that session."""
    pytester.makepyfile(f'''
import pytest

@pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}")
@pytest.mark.edge_providers("qnn-htp")
def test_own_arrays(edge_reference, edge_inputs, edge_compare):
    expected = edge_reference.run(edge_inputs)
    comparison = edge_compare(expected, expected)
    assert comparison.passed and comparison.outputs[0].scale > 0
''')
    report = pytester.path / "edge.json"
    run(pytester, f"--edge-report={report}").assert_outcomes(passed=1)
    (record,) = [r for r in json.loads(report.read_text())["results"] if r["check"] == "conformance"]
    assert (record["provider"], record["outcome"], record["comparison"]["passed"]) == ("qnn-htp", "passed", True)


def test_fp16_without_soc_model_says_what_to_set(pytester, model_dir):
    """QNN's own error is a C++ trace; the message names the option, an example value and both places."""
    pytester.makepyfile(f'''
import pytest

@pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}")  # QNN refuses the options, before any graph
@pytest.mark.edge_providers("qnn-htp-fp16")
def test_fp16(edge_session):
    pass
''')
    result = run(pytester)
    result.assert_outcomes(errors=1)
    text = result.stdout.str()
    assert "onnxruntime_src" not in text
    assert (
        "qnn-htp-fp16 needs the QNN option soc_model here (QNN runs float in fp16 for a given SoC; on the x86-64 "
        'simulator any, e.g. "60"): @pytest.mark.edge_providers("qnn-htp-fp16", options={"soc_model": "60"}) or '
        'soc_model = "60" under [devices.local.providers.qnn-htp-fp16] in edge-devices.toml'
    ) in text


def test_a_failure_against_the_tests_own_arrays_says_so(pytester, model_dir):
    pytester.makepyfile(f'''
import pytest

@pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}")
@pytest.mark.edge_providers("qnn-htp")
def test_against_arrays(edge_session, edge_inputs, edge_compare):
    actual = edge_session.run(edge_inputs)
    edge_compare(actual, {{name: value + 1.0 for name, value in actual.items()}})
''')
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*conv_matmul_qdq.onnx on local/qnn-htp vs expected outputs: 1 of 1 outputs failed*"])


def test_a_bad_tolerance_marker_fails_its_test_only_with_one_line(pytester, model_dir):
    pytester.makepyfile(f'''
import pytest

pytestmark = [pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}"), pytest.mark.edge_providers("qnn-htp")]

@pytest.mark.edge_tolerance(lbs=2)
def test_bad(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))

@pytest.mark.edge_tolerance(lsb=4)
def test_good(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))
''')
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_bad[[]local-qnn-htp[]] _*",
            "edge_tolerance in *test_bad[[]local-qnn-htp[]]: unknown tolerance key 'lbs' "
            "(did you mean 'lsb'? valid: atol, *)",
            "=*= edgeort summary =*=",
        ]
    )


def test_an_expected_problem_is_its_one_line_without_an_exception_chain(pytester, model_dir):
    """A bad ``shapes=`` and a dynamic input on qnn-htp: each error shows its line once, never with
    "During handling of the above exception" and the same line again."""
    pytester.makepyfile(f'''
import pytest

@pytest.mark.edge_model(r"{model_dir / "dynamic.onnx"}", shapes={{"x": "oops"}})
@pytest.mark.edge_providers("cpu")
def test_bad_shapes(edge_session):
    pass

@pytest.mark.edge_model(r"{model_dir / "dynamic.onnx"}")
@pytest.mark.edge_providers("qnn-htp")
def test_dynamic(edge_session):
    pass
''')
    result = run(pytester)
    result.assert_outcomes(errors=2)
    text = result.stdout.str().split("short test summary info")[0]  # (under CI=true pytest repeats lines whole there)
    assert "During handling of the above exception" not in text
    assert text.count("dynamic.onnx: input 'x' has dynamic shape ['batch', 3, 16, 16]") == 1
    assert text.count("fix_shapes.x: expected a list of non-negative integers, got str 'oops'") == 1
