"""Layer-wise diagnosis: the first ONNX node whose output departs from the reference beyond that tensor's
healthy noise, found by bisection over prefix subgraphs run on the provider and on the reference (no pytest).

Each probe cuts the provider's model after one candidate tensor (:mod:`~pytest_edgeort.model.prefix`; in a
QDQ model after a Q/DQ pair, so the tensor compared is the quantized value, in its own LSB), opens that
prefix as a fresh session on the provider's device (its worker: a crash there fails one probe, not the run)
and the same cut of the reference model on the reference, runs the examples on both (stacked on axis 0 when
there are several, as the conformance check compares them) and judges the tensor with the rule
:data:`HealthyNoise` gives it (a graph output: the check's own rules).
Bisection assumes that once a tensor departs, the later ones do too:
about ``2 * log2(N)`` sessions for ``N`` candidates. A prefix the provider refuses is replaced by its nearest
untried neighbour, and said so; when no probe is left (or the time budget is spent) the answer is the range
it could not narrow. The second strategy, ``mark``, makes every candidate an output of one model (2 sessions;
it changes what the provider partitions and requantizes, so it is chosen only for a few candidates).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import onnx

from .._text import atomic_write, one_line
from ..compare.engine import compare_output
from ..compare.result import Comparison, OutputComparison
from ..compare.tolerance import Tolerance, ToleranceSpec, default_tolerance
from ..errors import EdgeError
from ..model.info import model_info
from ..model.prefix import Cut, candidates, prefix_model, tensor_names
from .conformance import output_tolerance
from .diagnosis import Diagnosis, Divergence, Step, format_number, format_unit
from .golden import stack_examples

if TYPE_CHECKING:
    from ..devices.session import EdgeSession

DEFAULT_BUDGET_S = 60.0  # as the ini key edge_diagnose_budget_s
#: with at most this many candidates, one model with every candidate as an output is cheaper than bisection
MARK_MAX = 4
STRATEGIES = ("auto", "bisect", "mark")
#: the examples each inner probe runs (the outputs are judged on all of them)
INNER_EXAMPLES = 4
#: rules that judge a model's final answer, not an intermediate tensor
_OUTPUT_ONLY = ("topk", "tie_lsb", "vs_float")
#: where a diagnosis writes its prefix models (under the run's cache folder)
PREFIX_DIR = "diagnose"

#: ``(cut, accelerator, float_as_fp16)`` -> the rules a healthy provider meets at that tensor
HealthyNoise = Callable[[Cut, bool, bool], Tolerance]


def depth_noise(cut: Cut, accelerator: bool, float_as_fp16: bool) -> Tolerance:
    """The rules a conformance check applies to an output of the tensor's precision and requantization
    depth: what quantization costs that deep, as measured for outputs (docs/tolerances.md). The deep-output
    yardstick (the QDQ model without its activation Q/DQ pairs) plugs in here as another rule."""
    if cut.quant is not None:
        width = {"uint16": "u16", "int16": "i16", "int8": "i8"}.get(cut.quant.qtype, "u8")
        return default_tolerance(width, accelerator, cut.depth)
    return default_tolerance("fp16" if float_as_fp16 else "fp32", accelerator)


class _Side:
    """One side of the comparison: prefixes of ``session``'s model, opened like ``session``."""

    def __init__(self, session: EdgeSession, cache: Path, counter: Callable[[], None]) -> None:
        self.session = session
        self.model = onnx.load(str(session.model.path))
        self.cache = cache
        self.count = counter

    def run(self, outputs: Sequence[str], feeds: Sequence[Mapping[str, np.ndarray]]) -> Dict[str, np.ndarray]:
        """The prefix ending at ``outputs`` on this side's device and provider; EdgeError when refused."""
        data = prefix_model(self.model, outputs).SerializeToString()
        path = self.cache / f"{hashlib.sha256(data).hexdigest()[:32]}.onnx"
        if not path.is_file():
            self.cache.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data)
        info = model_info(path)
        self.count()
        probe = self.session.sibling(info)
        try:
            names = {t.name for t in info.inputs}
            results = probe.run_all([{k: v for k, v in feed.items() if k in names} for feed in feeds])
            return results[0] if len(results) == 1 else stack_examples(results)
        finally:
            probe.close()


class _Bisection:
    """The probes of one diagnosis and its record (see the module docstring)."""

    def __init__(
        self,
        session: EdgeSession,
        reference: EdgeSession,
        feeds: Sequence[Mapping[str, np.ndarray]],
        spec: ToleranceSpec,
        noise: HealthyNoise,
        cache: Path,
        budget_s: float,
    ) -> None:
        self.provider = _Side(session, cache, self._count)
        self.reference = _Side(reference, cache, self._count)
        self.feeds = feeds
        self.spec = spec
        self.inner_rules = ToleranceSpec({k: v for k, v in spec.rules.items() if k not in _OUTPUT_ONLY})
        self.outputs = {o.name for o in session.model.outputs}
        self.noise = noise
        self.accelerator = session.spec.accelerator
        self.fp16 = session.spec.float_as_fp16
        self.cuts = candidates(self.provider.model, tensor_names(self.reference.model))
        self.start = time.monotonic()
        self.budget_s = budget_s
        self.result = Diagnosis("bisect", len(self.cuts), budget_s)
        self.judged: Dict[int, OutputComparison] = {}

    @property
    def output_indices(self) -> List[int]:
        """The candidates that are graph outputs (else the last candidate)."""
        return [c.index for c in self.cuts if c.tensor in self.outputs] or [len(self.cuts) - 1]

    def _count(self) -> None:
        self.result.sessions += 1

    @property
    def left_s(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)

    def tolerance(self, cut: Cut) -> Tolerance:
        """A graph output: the check's own rules for it (but ``vs_float``: no float model runs here); a quantized
        inner tensor: its healthy noise, in its own LSB; a float inner tensor: its healthy noise with the check's
        rules for every output on top."""
        if cut.tensor in self.outputs:
            return replace(output_tolerance(self.provider.session, self.spec, cut.tensor), vs_float=None)
        base = self.noise(cut, self.accelerator, self.fp16)
        return base if cut.quant is not None else self.inner_rules.for_output(cut.tensor, base)

    def judge(self, cut: Cut, actual: np.ndarray, expected: np.ndarray) -> OutputComparison:
        scale = cut.quant.scale if cut.quant is not None else None
        layout = self.provider.session.model.output_layout.get(cut.tensor)
        return compare_output(cut.tensor, actual, expected, self.tolerance(cut), scale, layout=layout)

    def probe(self, indices: Sequence[int]) -> Optional[str]:
        """Run the prefix ending at the candidates ``indices`` on both sides and judge each; the error text
        when a side refused or failed (every index is recorded as a step either way)."""
        cuts = [self.cuts[i] for i in indices]
        began = time.monotonic()
        try:
            actual = self.provider.run([c.tensor for c in cuts], self.feeds)
        except EdgeError as exc:
            return self._refused(cuts, "rejected", exc, began)
        try:
            expected = self.reference.run([c.tensor for c in cuts], self.feeds)
        except EdgeError as exc:
            return self._refused(cuts, "failed", exc, began)
        seconds = (time.monotonic() - began) / len(cuts)
        for cut in cuts:
            self._record(cut, self.judge(cut, actual[cut.tensor], expected[cut.tensor]), seconds)
        return None

    def _record(self, cut: Cut, judged: OutputComparison, seconds: float) -> None:
        self.judged[cut.index] = judged
        error, unit = _error(judged)
        outcome = "agrees" if judged.passed else "diverged"
        self.result.steps.append(
            Step(cut.index, cut.shown, cut.node, cut.op_type, cut.depth, outcome, error, unit, "", seconds)
        )

    def outputs_judged(self, verdict: Optional[Comparison]) -> Optional[str]:
        """Judge the graph outputs: by the check's own ``verdict`` on them where it has one, else by a probe."""
        by_name = {o.name: o for o in verdict.outputs} if verdict is not None else {}
        outputs = [self.cuts[i] for i in self.output_indices]
        if outputs and all(c.tensor in by_name for c in outputs):
            for cut in outputs:
                self._record(cut, by_name[cut.tensor], 0.0)
            return None
        return self.probe(self.output_indices)

    def _refused(self, cuts: Sequence[Cut], outcome: str, exc: Exception, began: float) -> str:
        detail = one_line(exc, 300)
        seconds = (time.monotonic() - began) / len(cuts)
        for cut in cuts:
            self.result.steps.append(
                Step(cut.index, cut.shown, cut.node, cut.op_type, cut.depth, outcome, detail=detail, seconds=seconds)
            )
        return detail

    def diverged(self, index: int) -> bool:
        return not self.judged[index].passed

    # -- strategies
    def bisect(self, verdict: Optional[Comparison]) -> None:
        """Judge the graph outputs (:meth:`outputs_judged`), then narrow ``(lo, hi]`` (``lo``: last index known
        to agree, -1 = the graph inputs; ``hi``: first known to diverge, at first the earliest diverged output)
        to one candidate, on the examples :meth:`_inner_feeds` picks."""
        outputs = self.output_indices
        error = self.outputs_judged(verdict)
        last = max(outputs)
        if error is not None:
            self._unresolved(0, last, f"the provider refused the whole model ({error})")
            return
        diverged = [i for i in outputs if self.diverged(i)]
        if not diverged:
            self.result.reason = self._agreement(outputs)
            return
        self.feeds = self._inner_feeds(diverged)
        lo, hi = -1, min(diverged)
        while hi - lo > 1:
            if self.left_s <= 0:
                self._unresolved(lo + 1, hi, f"the time budget of {self.result.budget_s:g} s is spent")
                return
            index = self._next_probe(lo, hi)
            if index is None:
                self._unresolved(lo + 1, hi, "the provider refused every prefix in between")
                return
            if self.diverged(index):
                hi = index
            else:
                lo = index
        self._found(hi)

    def _inner_feeds(self, diverged: Sequence[int]) -> Sequence[Mapping[str, np.ndarray]]:
        """At most :data:`INNER_EXAMPLES` examples for the inner probes: the one with the largest error of the
        first diverged output, then the first others."""
        if len(self.feeds) <= INNER_EXAMPLES:
            return self.feeds
        worst = self.judged[diverged[0]].worst
        first = worst[0].index[0] if worst and worst[0].index else 0
        chosen = [first, *(i for i in range(len(self.feeds)) if i != first)][:INNER_EXAMPLES]
        self.result.notes.append(
            f"inner tensors compared on {INNER_EXAMPLES} of {len(self.feeds)} examples (#{first} has the largest "
            "output error)"
        )
        return [self.feeds[i] for i in chosen]

    def _next_probe(self, lo: int, hi: int) -> Optional[int]:
        """Probe the middle of ``(lo, hi)``, or its nearest neighbours when the provider refuses it; the index
        that answered (None: every prefix in between was refused, or the budget ran out)."""
        middle = (lo + hi) // 2
        refused: Optional[Tuple[int, str]] = None
        for index in sorted(range(lo + 1, hi), key=lambda i: (abs(i - middle), i)):
            error = self.probe([index])
            if error is None:
                if refused is not None:
                    self.result.notes.append(
                        f"the prefix ending at {self.cuts[refused[0]].shown!r} was refused by "
                        f"{self.provider.session.spec.alias} ({one_line(refused[1], 120)}), "
                        f"stepped to {self.cuts[index].shown!r}"
                    )
                return index
            refused = refused or (index, error)
            if self.left_s <= 0:
                return None
        return None

    def mark(self) -> None:
        """One model with every candidate as an output; the first (topological order) that departs."""
        self.result.strategy = "mark"
        error = self.probe(range(len(self.cuts)))
        if error is not None:
            self._unresolved(0, len(self.cuts) - 1, f"the provider refused the model with marked outputs ({error})")
            return
        first = next((i for i in range(len(self.cuts)) if self.diverged(i)), None)
        if first is None:
            self.result.reason = self._agreement(self.output_indices)
            return
        self._found(first)

    # -- conclusions
    def _agreement(self, indices: Sequence[int]) -> str:
        errors = {self.cuts[i].shown: _error(self.judged[i]) for i in indices if i in self.judged}
        worst = ", ".join(f"{name!r} max {format_number(e or 0.0)}{format_unit(u)}" for name, (e, u) in errors.items())
        if self.result.strategy == "mark":
            return f"no tensor departs from the reference beyond its healthy noise (outputs: {worst})"
        return f"the outputs agree with the reference under the check's rules ({worst}): nothing to narrow"

    def _unresolved(self, first: int, last: int, reason: str) -> None:
        self.result.unresolved = (self.cuts[first].shown, self.cuts[last].shown, last - first + 1)
        self.result.reason = reason

    def _found(self, index: int) -> None:
        cut = self.cuts[index]
        positions = {c.tensor: c.index for c in self.cuts}
        inputs = [positions[name] for name in cut.inputs if name in positions]
        unknown = [i for i in inputs if i not in self.judged]
        if unknown and self.left_s > 0:
            self.probe(unknown)
        errors = [_error(self.judged[i])[0] or 0.0 for i in inputs if i in self.judged]
        judged = self.judged[index]
        error, unit = _error(judged)
        self.result.found = Divergence(
            cut.node,
            cut.op_type,
            cut.shown,
            _pattern(judged),
            error or 0.0,
            unit,
            max(errors) if errors else None,
            tuple(self.cuts[i].shown for i in inputs),
        )


def _error(judged: OutputComparison) -> Tuple[Optional[float], str]:
    """A tensor's max error and its unit: LSB of its own scale when quantized, else absolute."""
    if judged.max_lsb is not None and judged.scale:
        return judged.max_lsb, "LSB"
    return judged.max_abs, ""


def _pattern(judged: OutputComparison) -> str:
    """The error's pattern in the failure table's words, else the first rule it broke."""
    if judged.pattern_text:
        return judged.pattern_text
    from ..compare.patterns import describe

    return judged.failures[0] if judged.failures else describe(np.zeros(0), np.zeros(0), "", 0.0).text


def diagnose(
    session: EdgeSession,
    reference: EdgeSession,
    feeds: Sequence[Mapping[str, np.ndarray]],
    cache: Path,
    spec: Optional[ToleranceSpec] = None,
    budget_s: float = DEFAULT_BUDGET_S,
    strategy: str = "auto",
    noise: HealthyNoise = depth_noise,
    verdict: Optional[Comparison] = None,
) -> Diagnosis:
    """The first node of ``session``'s model whose output departs from ``reference`` (the same tensor of the
    reference's model, by name) on ``feeds``.

    Args:
        session: the provider under test (its device, provider, options and fallback mode are reused).
        reference: the reference (e.g. the healthy or float model on CPU); only tensors it also has count.
        feeds: the examples (several: compared stacked on axis 0, like the conformance check).
        cache: a folder for the prefix models (content-addressed).
        spec: the check's tolerance: its rules for an output judge that output; its rules for every output
            also judge float intermediate tensors (quantized ones: their healthy noise only).
        budget_s: no probe starts after this many seconds; the answer then is the range left.
        strategy: ``bisect``, ``mark`` (every candidate an output of one model) or ``auto`` (``mark`` for at
            most :data:`MARK_MAX` candidates).
        noise: the healthy-noise rule per tensor (:func:`depth_noise`).
        verdict: the check's own comparison of the graph outputs on ``feeds`` against ``reference``: the
            outputs are judged by it (yardsticks and layouts included) without a session.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"diagnosis strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    work = _Bisection(session, reference, feeds, spec or ToleranceSpec(), noise, cache, budget_s)
    if not work.cuts:
        work.result.reason = "the model has no tensor the reference model also computes"
    elif strategy == "mark" or (strategy == "auto" and len(work.cuts) <= MARK_MAX):
        work.mark()
    else:
        work.bisect(verdict)
    work.result.seconds = time.monotonic() - work.start
    return work.result
