"""The check table: every check a suite item can run, by name, in item order. A new check is one module
(its ``run_suite`` and ``CHECK``) and one entry here."""

from __future__ import annotations

from typing import Dict

from . import conformance, fuzz, golden, latency, no_fallback
from .context import SuiteCheck

SUITE_CHECKS: Dict[str, SuiteCheck] = {
    check.name: check for check in (conformance.CHECK, no_fallback.CHECK, golden.CHECK, latency.CHECK, fuzz.CHECK)
}
