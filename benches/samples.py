"""Latency samples shared by the benchmark scripts: per-round samples, pooled percentiles.

Each script measures cells in rounds (alternating what it compares, so drift on a shared
machine hits every cell alike) and reports percentiles over the pooled rounds, keeping
the per-round figures for the JSON output.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def percentile(sorted_values: list[float], q: float) -> float:
    """The `q` quantile of already sorted values (nearest rank); NaN when empty."""
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


@dataclass
class Samples:
    """Latencies in seconds, one list per round."""

    rounds: list[list[float]] = field(default_factory=list)

    def pooled(self) -> list[float]:
        return sorted(x for r in self.rounds for x in r)

    def p(self, q: float) -> float:
        """The `q` quantile over every round, in milliseconds."""
        return percentile(self.pooled(), q) * 1000
