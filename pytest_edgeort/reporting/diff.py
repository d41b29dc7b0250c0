"""Two run reports compared: their tests and records paired (two boards, two versions of the stack), and every
change between them marked worse, better or changed; what ``python -m pytest_edgeort diff`` shows."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .._text import did_you_mean
from .schema import OP_MATRIX_CLASSES, CheckRecord, ReportDocument, number
from .summary import SummaryRow, build_rows, format_ms, format_number, row_key

WORSE, BETTER, CHANGED = "worse", "better", "changed"
SEVERITIES = (WORSE, BETTER, CHANGED)  # the order changes are listed in

#: Op-matrix classes, best first: a case whose class moves to the right got worse.
OP_CLASSES = tuple(OP_MATRIX_CLASSES)  # best first: a case that moves down this list got worse

_BAD_OUTCOMES = ("failed", "error")

#: Device facts compared between the two runs: (label, path into the device's capabilities).
DEVICE_FACTS = (
    ("platform", ("platform",)),
    ("machine", ("machine",)),
    ("SoC", ("soc",)),
    ("hostname", ("hostname",)),
    ("python", ("python",)),
    ("numpy", ("numpy",)),
    ("onnxruntime", ("onnxruntime",)),
    ("QNN SDK", ("qnn", "sdk_version")),
    ("QNN EP", ("qnn", "ep_package_version")),
    ("providers", ("providers",)),
)

#: Facts of a row's session compared between the runs: (label, record field).
SESSION_FACTS = (
    ("model sha256", "model_sha256"),
    ("provider options", "provider_options"),
    ("graph I/O quantization offload", "offload_graph_io_quantization"),
    ("EP API", "ep_api"),
)


@dataclass(frozen=True)
class Change:
    """One thing that differs between the runs: its kind, what it is about, one line, and whether it got worse."""

    kind: str  # verdict, run, metrics, coverage, placement, latency, op-matrix, op-type, golden, facts
    subject: str  # a test node id (NEW's), a row "model on device/provider", a device, an op type
    text: str
    severity: str = CHANGED

    def to_dict(self) -> Dict[str, str]:
        return {"kind": self.kind, "subject": self.subject, "text": self.text, "severity": self.severity}


@dataclass(frozen=True)
class LatencyGate:
    """``--fail-latency [p50:|p90:]N%``: a latency statistic may grow by at most ``limit`` (0.1 = 10 %)."""

    limit: float
    stat: str = "p50"

    @classmethod
    def parse(cls, text: str) -> LatencyGate:
        """``"10%"``, ``"p90:10%"`` (``%`` optional); ValueError (one line) for anything else."""
        stat, _, amount = text.rpartition(":")
        stat = stat or "p50"
        if stat not in ("p50", "p90"):
            raise ValueError(f"--fail-latency {text!r}: the statistic must be p50 or p90, e.g. p90:10%")
        try:
            limit = float(amount.strip().rstrip("%")) / 100
        except ValueError:
            limit = -1.0
        if not math.isfinite(limit) or limit < 0:
            raise ValueError(f"--fail-latency {text!r}: expected a percentage >= 0, e.g. 10%")
        return cls(limit, stat)


@dataclass
class Diff:
    """What two reports have in common, what only one has, and what changed."""

    devices: Dict[str, str]  # OLD's device name -> NEW's
    paired_tests: int = 0
    only_old: List[str] = field(default_factory=list)  # node ids (OLD's)
    only_new: List[str] = field(default_factory=list)
    rows: List[Tuple[SummaryRow, SummaryRow]] = field(default_factory=list)  # (OLD's, NEW's) per paired row
    changes: List[Change] = field(default_factory=list)

    def count(self, severity: str) -> int:
        return sum(c.severity == severity for c in self.changes)

    @property
    def worse(self) -> bool:
        return any(c.severity == WORSE for c in self.changes)


def report_devices(document: ReportDocument) -> List[str]:
    """The devices a report's records ran on, sorted."""
    return sorted({r.device for r in document.records if r.device})


def device_pairs(old: ReportDocument, new: ReportDocument, match: Mapping[str, str]) -> Dict[str, str]:
    """OLD's device -> NEW's: ``match`` (``--match-device``), else the one device of each report when each ran
    on one, else the same names (those ``match`` leaves out too). ValueError (one line, did-you-mean) for a
    ``match`` name a report lacks."""
    old_names, new_names = report_devices(old), report_devices(new)
    for name, names, which in [(o, old_names, "OLD") for o in match] + [(n, new_names, "NEW") for n in match.values()]:
        if name not in names:
            raise ValueError(
                f"--match-device: {which} has no device {name!r}{did_you_mean(name, names)}; "
                f"its devices: {', '.join(names) or 'none'}"
            )
    if not match and len(old_names) == 1 and len(new_names) == 1:
        return {old_names[0]: new_names[0]}
    return {**{name: name for name in old_names if name in new_names}, **match}


def renamed_nodeid(
    nodeid: str, devices: Mapping[str, str], device: Optional[str] = None, provider: Optional[str] = None
) -> str:
    """OLD's node id as NEW spells it: NEW's device in the ``<device>-<provider>`` parameter id (``device`` and
    ``provider``: the record's, where known; else any device of ``devices`` at the start of a parameter)."""
    head, bracket, params = nodeid.partition("[")
    pairs = [(device, devices.get(device))] if device else list(devices.items())
    for old, new in pairs:
        if new and old and new != old:
            pattern = rf"(^|-){re.escape(old)}-(?={re.escape(provider or '')})"
            renamed = re.sub(pattern, lambda m: f"{m.group(1)}{new}-", params, count=1)  # noqa: B023
            if renamed != params:
                return f"{head}{bracket}{renamed}"
    return nodeid


def _keyed(records: Iterable[CheckRecord], devices: Mapping[str, str]) -> Dict[Tuple[str, str, int], CheckRecord]:
    """Records by (node id in NEW's spelling and the record's label, check, how many of that pair came before): a
    data-set loop's comparisons pair by their ``label`` where the test gave one, else by their order."""
    seen: Counter = Counter()
    keyed = {}
    for rec in records:
        nodeid = renamed_nodeid(rec.nodeid or "", devices, rec.device, rec.provider)
        pair = (nodeid + (f" ({rec.label})" if rec.label else ""), rec.check or "")
        keyed[(*pair, seen[pair])] = rec
        seen[pair] += 1
    return keyed


def _outcomes(document: ReportDocument, devices: Mapping[str, str]) -> Dict[str, str]:
    """Every edge test's outcome by node id in NEW's spelling (device and provider from its records)."""
    where = {r.nodeid: (r.device, r.provider) for r in document.records if r.nodeid}
    return {renamed_nodeid(n, devices, *where.get(n, (None, None))): o for n, o in document.outcomes.items()}


def _rank(values: Sequence[str], value: str) -> int:
    return values.index(value) if value in values else len(values)


# -- what changed: one function per kind, each returning its Changes


def verdict_changes(old: Mapping[str, str], new: Mapping[str, str]) -> List[Change]:
    """Tests whose outcome differs: to failed/error is worse, from it better; a test only NEW has that failed is
    worse too (a suite file that broke is a new ``::suite`` item, not a paired one)."""
    changes = []
    for nodeid in sorted(set(old) & set(new)):
        before, after = old[nodeid], new[nodeid]
        if before == after:
            continue
        bad_before, bad_after = before in _BAD_OUTCOMES, after in _BAD_OUTCOMES
        severity = WORSE if bad_after and not bad_before else BETTER if bad_before and not bad_after else CHANGED
        changes.append(Change("verdict", nodeid, f"{before} -> {after}", severity))
    for nodeid in sorted(set(new) - set(old)):
        if new[nodeid] in _BAD_OUTCOMES:
            changes.append(Change("verdict", nodeid, f"{new[nodeid]} (not in OLD)", WORSE))
    return changes


def run_changes(old: ReportDocument, new: ReportDocument, result: Diff) -> List[Change]:
    """What makes NEW no run of OLD's tests to compare with: NEW was interrupted (its report holds what ran
    before), or none of OLD's tests is in it (another suite, a wrong file); either is worse: the gate cannot say
    nothing got worse. An interrupted OLD is said, not counted."""
    changes = []
    missing = f"{len(result.only_old)} of OLD's {result.paired_tests + len(result.only_old)} tests are not in it"
    if new.interrupted:
        changes.append(Change("run", "NEW", f"the run was interrupted: {missing}", WORSE))
    elif result.only_old and not result.paired_tests:
        changes.append(Change("run", "NEW", f"no test of OLD is in it ({missing}): not a run of the same tests", WORSE))
    if old.interrupted:
        changes.append(Change("run", "OLD", "the run was interrupted: its report holds only what ran before it"))
    return changes


def _metric(value: Any, fmt: str, scale: float = 1.0) -> str:
    value = number(value)
    return format_number(None if value is None else value * scale, fmt)


#: Per-output metrics shown when they differ: (label, key, format, scale, unit).
METRICS = (
    ("max LSB", "max_lsb", ".0f", 1.0, ""),
    ("max |err|", "max_abs", ".3g", 1.0, ""),
    ("SNR", "snr_db", ".1f", 1.0, " dB"),
    ("top-k", "topk_agreement", ".0f", 100.0, " %"),
)


def metric_changes(nodeid: str, old: CheckRecord, new: CheckRecord) -> List[Change]:
    """Per output both records compared: the metrics whose shown value differs."""
    before = {out.get("name"): out for out in old.outputs}
    changes = []
    for out in new.outputs:
        prior = before.get(out.get("name"))
        if prior is None:
            continue
        parts = []
        for label, key, fmt, scale, unit in METRICS:
            a, b = _metric(prior.get(key), fmt, scale), _metric(out.get(key), fmt, scale)
            if a != b:
                parts.append(f"{label} {a} -> {b}{unit}")
        if parts:
            changes.append(Change("metrics", nodeid, f"output {out.get('name')}: " + ", ".join(parts)))
    return changes


def golden_changes(nodeid: str, old: CheckRecord, new: CheckRecord) -> List[Change]:
    """The facts of the goldens compared with that differ (a golden rewritten between the runs)."""
    before, after = old.golden_provenance or {}, new.golden_provenance or {}
    if not before or not after:
        return []
    keys = sorted(k for k in set(before) | set(after) if k != "placement" and before.get(k) != after.get(k))
    if not keys:
        return []
    text = "golden provenance: " + "; ".join(f"{k} {before.get(k)} -> {after.get(k)}" for k in keys)
    return [Change("golden", nodeid, text)]


def op_matrix_of(record: CheckRecord) -> Optional[Mapping[str, Any]]:
    """The record's op-matrix case ({"case", "op_type", "class", ...}), or None."""
    return record.op_matrix if isinstance(record.op_matrix, Mapping) else None


def op_case_changes(nodeid: str, old: CheckRecord, new: CheckRecord) -> List[Change]:
    """An op-matrix case whose class changed: worse when it moved down :data:`OP_CLASSES`."""
    before, after = op_matrix_of(old), op_matrix_of(new)
    if before is None or after is None or before.get("class") == after.get("class"):
        return []
    a, b = str(before.get("class")), str(after.get("class"))
    rank_a, rank_b = _rank(OP_CLASSES, a), _rank(OP_CLASSES, b)
    severity = WORSE if rank_b > rank_a else BETTER if rank_b < rank_a else CHANGED
    subject = f"{after.get('op_type')} {after.get('case')} on {new.device}/{new.provider}"
    return [Change("op-matrix", subject, f"{a} -> {b}", severity)]


#: What is compared for each pair of records (OLD's, NEW's) that share a test and check.
RECORD_CHANGES: Tuple[Callable[[str, CheckRecord, CheckRecord], List[Change]], ...] = (
    metric_changes,
    golden_changes,
    op_case_changes,
)


def op_type_changes(old: Iterable[CheckRecord], new: Iterable[CheckRecord], devices: Mapping[str, str]) -> List[Change]:
    """Per op type, device and provider: the count of op-matrix cases in each class, where it changed; worse
    when fewer cases pass."""

    def counts(records: Iterable[CheckRecord], rename: Mapping[str, str]) -> Dict[Tuple[str, str], Counter]:
        table: Dict[Tuple[str, str], Counter] = {}
        for rec in records:
            case = op_matrix_of(rec)
            if case is not None:
                where = f"{rename.get(rec.device or '', rec.device)}/{rec.provider}"
                table.setdefault((str(case.get("op_type")), where), Counter())[str(case.get("class"))] += 1
        return table

    before, after = counts(old, devices), counts(new, {})
    changes = []
    for key in sorted(set(before) & set(after)):
        a, b = before[key], after[key]
        if a == b:
            continue
        classes = sorted(set(a) | set(b), key=lambda c: _rank(OP_CLASSES, c))
        text = ", ".join(f"{c} {a[c]} -> {b[c]}" for c in classes if a[c] != b[c])
        passing = b[OP_CLASSES[0]] - a[OP_CLASSES[0]]
        severity = WORSE if passing < 0 else BETTER if passing > 0 else CHANGED
        changes.append(Change("op-type", f"{key[0]} on {key[1]}", text, severity))
    return changes


def _representatives(
    records: Iterable[CheckRecord], rootdir: Optional[Path]
) -> Dict[Tuple[str, str, str], CheckRecord]:
    """Per summary row, its first record made from a session with CPU fallback allowed (placement per node)."""
    firsts: Dict[Tuple[str, str, str], CheckRecord] = {}
    for rec in records:
        if rec.has_session and rec.cpu_fallback is not False:
            firsts.setdefault(row_key(rec, rootdir), rec)
    return firsts


def _off_accelerator(record: CheckRecord) -> Counter:
    """Nodes per op type that did not run on the record's EP."""
    counts: Counter = Counter()
    for ep, ops in (record.placement or {}).items():
        if ep != record.ep:
            counts.update({op: int(n) for op, n in ops.items()})
    return counts


def row_changes(
    subject: str, old: SummaryRow, new: SummaryRow, old_rec: Optional[CheckRecord], new_rec: Optional[CheckRecord]
) -> List[Change]:
    """What changed in one row: NPU coverage (like with like), op types that moved to or from CPU, session facts."""
    changes = []
    pairs = (
        (old.strict_coverage, new.strict_coverage, "CPU fallback disabled"),
        (old.coverage, new.coverage, "CPU fallback allowed"),
    )
    for before, after, mode in pairs:
        if before is None or after is None or round(100 * before) == round(100 * after):
            continue
        severity = WORSE if after < before else BETTER
        text = f"NPU coverage {100 * before:.0f} -> {100 * after:.0f} % ({mode})"
        changes.append(Change("coverage", subject, text, severity))
        break
    if old_rec is None or new_rec is None:
        return changes
    if old_rec.placement and new_rec.placement:
        before, after = _off_accelerator(old_rec), _off_accelerator(new_rec)
        moved = {op: after[op] - before[op] for op in sorted(set(before) | set(after)) if after[op] != before[op]}
        to_cpu = [f"{op} x{n}" for op, n in moved.items() if n > 0]
        back = [f"{op} x{-n}" for op, n in moved.items() if n < 0]
        if to_cpu:
            changes.append(Change("placement", subject, "moved off the NPU: " + ", ".join(to_cpu), WORSE))
        if back:
            changes.append(Change("placement", subject, f"moved onto {new_rec.ep}: " + ", ".join(back), BETTER))
    for label, name in SESSION_FACTS:
        a, b = getattr(old_rec, name), getattr(new_rec, name)
        if name == "model_sha256":
            a, b = (str(v)[:12] if v else v for v in (a, b))
        if a != b:
            changes.append(Change("facts", subject, f"{label} {a} -> {b}"))
    return changes


def latency_changes(subject: str, old: SummaryRow, new: SummaryRow, gate: Optional[LatencyGate]) -> List[Change]:
    """p50/p90 as NEW/OLD ratios; worse when the gated statistic grew beyond ``gate``."""
    ratios = {}
    for stat, before, after in (("p50", old.p50_ms, new.p50_ms), ("p90", old.p90_ms, new.p90_ms)):
        if before and after is not None:
            ratios[stat] = (before, after, after / before)
    if not ratios:
        return []
    simulated = " (simulated)" if old.latency_simulated or new.latency_simulated else ""
    text = ", ".join(f"{s} {format_ms(a)} -> {format_ms(b)} ms (x{r:.2f})" for s, (a, b, r) in ratios.items())
    severity = CHANGED
    if gate is not None and gate.stat in ratios:
        ratio = ratios[gate.stat][2]
        if ratio > 1 + gate.limit:
            severity, text = WORSE, f"{text}: {gate.stat} beyond --fail-latency {100 * gate.limit:g}%"
        elif ratio < 1 - gate.limit:
            severity = BETTER
    return [Change("latency", subject, text + simulated, severity)]


def _lookup(facts: Mapping[str, Any], path: Sequence[str]) -> Any:
    for key in path:
        facts = facts.get(key) if isinstance(facts, Mapping) else None  # type: ignore[assignment]
    return facts


def device_changes(old: ReportDocument, new: ReportDocument, devices: Mapping[str, str]) -> List[Change]:
    """The device facts (:data:`DEVICE_FACTS`) that differ between each device pair."""
    changes = []
    for old_name, new_name in sorted(devices.items()):
        before, after = old.devices.get(old_name), new.devices.get(new_name)
        if before is None or after is None:
            continue
        subject = old_name if old_name == new_name else f"{old_name} -> {new_name}"
        for label, path in DEVICE_FACTS:
            a, b = _lookup(before, path), _lookup(after, path)
            if a != b:
                changes.append(Change("facts", f"device {subject}", f"{label} {a} -> {b}"))
    return changes


def _row_subject(row: SummaryRow) -> str:
    return f"{row.model} on {row.device}/{row.provider}"


def diff_reports(
    old: ReportDocument,
    new: ReportDocument,
    match: Optional[Mapping[str, str]] = None,
    latency_gate: Optional[LatencyGate] = None,
    rootdir: Optional[Path] = None,
) -> Diff:
    """Pair OLD's and NEW's tests and records (OLD's devices renamed to NEW's, see :func:`device_pairs`) and
    collect what changed, per test, per record pair, per summary row and per device."""
    devices = device_pairs(old, new, match or {})
    result = Diff(devices)
    old_outcomes, new_outcomes = _outcomes(old, devices), _outcomes(new, {})
    result.paired_tests = len(set(old_outcomes) & set(new_outcomes))
    result.only_old = sorted(set(old_outcomes) - set(new_outcomes))
    result.only_new = sorted(set(new_outcomes) - set(old_outcomes))
    result.changes.extend(verdict_changes(old_outcomes, new_outcomes))
    result.changes.extend(run_changes(old, new, result))

    old_records, new_records = _keyed(old.records, devices), _keyed(new.records, {})
    row_pairs: Dict[Tuple[str, str, str], Tuple[str, str, str]] = {}  # OLD's row key -> NEW's
    for key in (k for k in new_records if k in old_records):
        before, after = old_records[key], new_records[key]
        for compare in RECORD_CHANGES:
            result.changes.extend(compare(key[0], before, after))
        if before.model is not None and after.model is not None and op_matrix_of(after) is None:
            row_pairs.setdefault(row_key(before, rootdir), row_key(after, rootdir))

    # summary rows of models; op-matrix cases (one tiny model each) have their per-case and per-op-type lines
    old_plain = [r for r in old.records if op_matrix_of(r) is None]
    new_plain = [r for r in new.records if op_matrix_of(r) is None]
    old_rows = {(r.model, r.device, r.provider): r for r in build_rows(old_plain, old.outcomes, rootdir)}
    new_rows = {(r.model, r.device, r.provider): r for r in build_rows(new_plain, new.outcomes, rootdir)}
    old_firsts, new_firsts = _representatives(old_plain, rootdir), _representatives(new_plain, rootdir)
    for old_key, new_key in sorted(row_pairs.items(), key=lambda kv: kv[1]):
        before, after = old_rows.get(old_key), new_rows.get(new_key)
        if before is None or after is None:
            continue
        result.rows.append((before, after))
        subject = _row_subject(after)
        result.changes.extend(row_changes(subject, before, after, old_firsts.get(old_key), new_firsts.get(new_key)))
        result.changes.extend(latency_changes(subject, before, after, latency_gate))
    result.changes.extend(op_type_changes(old.records, new.records, devices))
    result.changes.extend(device_changes(old, new, devices))
    result.changes.sort(key=lambda c: SEVERITIES.index(c.severity))  # stable: each kind keeps its order
    return result
