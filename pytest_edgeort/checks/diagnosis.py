"""What a layer-wise diagnosis found: the probes of its path, the divergence (or the range it could not
narrow), its one-line message and its JSON form (pure data; :mod:`.diagnose` finds it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple


@dataclass(frozen=True)
class Step:
    """One probe: the candidate ``index`` (its position in topological order) and what it showed:
    ``diverged``/``agrees`` (``error`` is the tensor's max error in ``unit``), ``rejected`` (the provider
    refused the prefix: ``detail``) or ``failed`` (the prefix ran but could not be compared)."""

    index: int
    tensor: str
    node: str
    op_type: str
    depth: int
    outcome: str
    error: Optional[float] = None
    unit: str = ""
    detail: str = ""
    seconds: float = 0.0

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Divergence:
    """The first node that departs: its output tensor, the error's pattern, how far its inputs agree."""

    node: str
    op_type: str
    tensor: str
    pattern: str
    error: float
    unit: str
    inputs_error: Optional[float]  # the largest max error of the node's candidate inputs; None: graph inputs
    inputs: Tuple[str, ...]

    def to_dict(self) -> Dict[str, Any]:
        return {**asdict(self), "inputs": list(self.inputs)}


@dataclass
class Diagnosis:
    """What a diagnosis found (``found``; None: no divergence or not narrowed) and the path that led there."""

    strategy: str
    candidates: int
    budget_s: float
    steps: List[Step] = field(default_factory=list)
    sessions: int = 0
    seconds: float = 0.0
    found: Optional[Divergence] = None
    unresolved: Optional[Tuple[str, str, int]] = None  # (first, last tensor, how many) it could not narrow
    reason: str = ""  # why it stopped short, or why there is nothing to narrow
    notes: List[str] = field(default_factory=list)  # prefixes the provider refused and the neighbour used

    @property
    def cost(self) -> str:
        name = "bisection" if self.strategy == "bisect" else "marked outputs"
        return (
            f"{name} over {self.candidates} tensors: {self.sessions} sessions, "
            f"{self.seconds:.1f} s of a {self.budget_s:g} s budget"
        )

    @property
    def message(self) -> str:
        """One line: where and what, then what it cost; refusals follow as notes."""
        if self.found is not None:
            f = self.found
            if f.inputs_error is None:
                inputs = "its inputs are graph inputs"
            else:
                inputs = f"its inputs agree within {format_number(f.inputs_error)}{format_unit(f.unit)}"
            head = f"first divergence: node {f.node!r} ({f.op_type}) -> tensor {f.tensor!r}: {f.pattern}, {inputs}"
        elif self.unresolved is not None:
            first, last, count = self.unresolved
            span = f"tensor {first!r}" if count == 1 else f"{count} tensors, from {first!r} to {last!r}"
            head = f"could not narrow below {span}: {self.reason}"
        else:
            head = f"no divergence: {self.reason}"
        notes = "".join(f"; {n}" for n in self.notes)
        return f"{head} ({self.cost}){notes}"

    def to_dict(self) -> Dict[str, Any]:
        return {
            "message": self.message,
            "strategy": self.strategy,
            "candidates": self.candidates,
            "budget_s": self.budget_s,
            "sessions": self.sessions,
            "seconds": round(self.seconds, 3),
            "found": self.found.to_dict() if self.found else None,
            "unresolved": list(self.unresolved) if self.unresolved else None,
            "reason": self.reason,
            "notes": list(self.notes),
            "path": [s.to_dict() for s in self.steps],
        }


def format_number(value: float) -> str:
    """A metric in messages: three significant digits."""
    return f"{value:.3g}"


def format_unit(unit: str) -> str:
    """A unit after a number (nothing for none)."""
    return f" {unit}" if unit else ""
