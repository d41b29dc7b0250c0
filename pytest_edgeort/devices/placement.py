"""Where a session's nodes ran: per-EP node lists summarized by op type (pure data, no I/O)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Dict, List, Optional, Sequence, Tuple

Node = Tuple[str, str, str]  # (name, op_type, domain)


@dataclass(frozen=True)
class Placement:
    """Nodes assigned to each execution provider in one session."""

    nodes_by_ep: Dict[str, Tuple[Node, ...]]

    @classmethod
    def from_worker(cls, raw: Optional[Sequence[dict]]) -> Optional[Placement]:
        if raw is None:
            return None
        by_ep: Dict[str, List[Node]] = {}
        for entry in raw:
            by_ep.setdefault(entry["ep"], []).extend(tuple(n) for n in entry["nodes"])
        return cls({ep: tuple(nodes) for ep, nodes in by_ep.items()})

    @property
    def total(self) -> int:
        return sum(len(n) for n in self.nodes_by_ep.values())

    def count(self, ep_name: str) -> int:
        return len(self.nodes_by_ep.get(ep_name, ()))

    def coverage(self, ep_name: str) -> float:
        """Fraction of nodes on ``ep_name`` (0..1); 0 for an empty graph."""
        return self.count(ep_name) / self.total if self.total else 0.0

    def op_counts(self, ep_name: str) -> Dict[str, int]:
        return dict(Counter(op for _, op, _ in self.nodes_by_ep.get(ep_name, ())))

    def nodes_not_on(self, ep_name: str) -> Dict[str, List[str]]:
        """Node names by op type for every node that did not land on ``ep_name``."""
        grouped: Dict[str, List[str]] = {}
        for ep, nodes in self.nodes_by_ep.items():
            if ep == ep_name:
                continue
            for name, op, domain in nodes:
                key = f"{domain}.{op}" if domain and domain != "ai.onnx" else op
                grouped.setdefault(key, []).append(name or "<unnamed>")
        return dict(sorted(grouped.items()))

    @cached_property
    def _op_counts(self) -> Dict[str, Dict[str, int]]:  # every result of a session records it: counted once
        return {ep: self.op_counts(ep) for ep in self.nodes_by_ep}

    def to_dict(self) -> Dict[str, Dict[str, int]]:
        return {ep: dict(counts) for ep, counts in self._op_counts.items()}


def format_fallback(nodes: Dict[str, List[str]], limit: int = 8) -> str:
    """'Det x1 (det_node), Sin x2 (a, b)' listing of the nodes that would run on CPU."""
    parts = []
    for op, names in nodes.items():
        shown = ", ".join(names[:limit]) + (f", ... {len(names) - limit} more" if len(names) > limit else "")
        parts.append(f"{op} x{len(names)} ({shown})")
    return "; ".join(parts)
