"""Mistakes a new user makes, each tried as a new user would: a typo or a wrong path fails that test (or that
suite item) only, with one line that names it and says what was meant."""

from __future__ import annotations

from tests.support.runs import require_qnn, run

require_qnn()


def test_a_provider_typo_in_a_marker_fails_that_test_only(pytester, model_dir):
    pytester.makepyfile(f'''
import pytest

pytestmark = pytest.mark.edge_model(r"{model_dir / "conv_matmul_qdq.onnx"}")

@pytest.mark.edge_providers("qnn-hpt", "cpu")
def test_typo(edge_provider):
    pass

@pytest.mark.edge_providers("qnn-htp")
def test_good(edge_provider):
    assert edge_provider == "qnn-htp"

@pytest.mark.edge_providers("qnn-htp")
@pytest.mark.edge_tolerance(lbs=2, min_snr=3)
def test_two_bad_tolerance_keys(edge_session, edge_reference, edge_inputs, edge_compare):
    edge_compare(edge_session.run(edge_inputs), edge_reference.run(edge_inputs))
''')
    result = run(pytester, "-v")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_typo[[]local-cpu[]] PASSED*",
            "*test_a_provider_typo_in_a_marker_fails_that_test_only.py::test_typo: edge_providers: unknown provider "
            "'qnn-hpt' (did you mean 'qnn-htp'?); use one of cpu, *",
            "*unknown tolerance keys 'lbs' (did you mean 'lsb'?), 'min_snr' (did you mean 'min_snr_db'?) (valid: *",
        ]
    )
    deselected = run(pytester, "-k", "good")
    deselected.assert_outcomes(passed=1, deselected=3)
    assert deselected.ret == 0
