"""Pure statistics of the reports: duration sketches, histogram buckets, error budgets.

Percentiles come from a DDSketch (DataDog's ``ddsketch`` log mapping, 1% relative accuracy): a
daily roll-up keeps one sketch per runbook, sketches merge exactly, and a quantile read from the
merged sketch is within 1% of numpy's ``percentile(..., method="lower")`` of the raw durations —
whatever the number of runs. The buckets of the run-duration histogram (Prometheus' ``le``) are kept
exactly beside it.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ddsketch.mapping import LogarithmicMapping

from opsflow.slo.models import DURATION_BOUNDS

RELATIVE_ACCURACY = 0.01
_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
_ZERO = 1e-3  # durations under a millisecond count as zero


@dataclass
class Sketch:
    """Durations (seconds) as DDSketch key counts, plus exact counts per histogram bound."""

    keys: dict[int, int] = field(default_factory=dict)
    zeros: int = 0
    count: int = 0
    total: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(DURATION_BOUNDS))  # count ≤ bound (not cumulative)

    def add(self, value: float | None, n: int = 1) -> None:
        if value is None or math.isnan(value):
            return
        value = max(value, 0.0)
        self.count += n
        self.total += value * n
        if value < _ZERO:
            self.zeros += n
        else:
            k = _MAPPING.key(value)
            self.keys[k] = self.keys.get(k, 0) + n
        i = bisect.bisect_left(DURATION_BOUNDS, value)
        if i < len(DURATION_BOUNDS):
            self.buckets[i] += n

    def merge(self, other: Sketch) -> None:
        for k, n in other.keys.items():
            self.keys[k] = self.keys.get(k, 0) + n
        self.zeros += other.zeros
        self.count += other.count
        self.total += other.total
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]

    def quantile(self, q: float) -> float | None:
        """The value at quantile q (0..1), within 1%; None when empty."""
        if self.count == 0:
            return None
        rank = q * (self.count - 1)
        if rank < self.zeros:
            return 0.0
        seen = self.zeros
        for k in sorted(self.keys):
            seen += self.keys[k]
            if seen > rank:
                return float(_MAPPING.value(k))
        return float(_MAPPING.value(max(self.keys)))

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def at_most(self, bound: float) -> int:
        """Exactly how many durations were ≤ ``bound`` (a histogram bound)."""
        i = DURATION_BOUNDS.index(bound)
        return sum(self.buckets[: i + 1])

    def cumulative(self) -> list[tuple[float, int]]:
        """(le, count ≤ le) for each bound and +Inf: a Prometheus histogram."""
        out, acc = [], 0
        for bound, n in zip(DURATION_BOUNDS, self.buckets, strict=True):
            acc += n
            out.append((bound, acc))
        out.append((math.inf, self.count))
        return out

    def dumps(self) -> str:
        return json.dumps({"k": {str(k): n for k, n in self.keys.items()}, "z": self.zeros, "n": self.count,
                           "t": self.total, "b": self.buckets}, separators=(",", ":"))

    @classmethod
    def loads(cls, text: str) -> Sketch:
        data = json.loads(text)
        return cls(keys={int(k): n for k, n in data["k"].items()}, zeros=data["z"], count=data["n"], total=data["t"],
                   buckets=list(data["b"]))

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Sketch:
        s = cls()
        for v in values:
            s.add(v)
        return s


def rnd(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def ratio_result(good: int, total: int, target: float) -> dict[str, Any]:
    """A ratio objective: ``actual`` = good ÷ total, its error budget (1 − target) and how much is left.

    ``burn_rate`` is the budget spent per budget allowed (1 = spending it exactly as fast as allowed).
    Without events the objective is met with its whole budget left, and ``actual`` is None.
    """
    allowed = 1 - target
    if total == 0:
        return {"actual": None, "met": True, "budget_remaining": 1.0, "burn_rate": 0.0, "good": 0, "total": 0}
    bad = (total - good) / total
    burn = bad / allowed
    return {"actual": rnd(good / total, 6), "met": good / total >= target - 1e-12,
            "budget_remaining": rnd(1 - burn, 6), "burn_rate": rnd(burn, 6), "good": good, "total": total}


def threshold_result(value: float | None, threshold: float, samples: int) -> dict[str, Any]:
    """A threshold objective (seconds ≤ threshold): the threshold is the budget."""
    if value is None:
        return {"actual": None, "met": True, "budget_remaining": 1.0, "burn_rate": 0.0, "total": samples}
    burn = value / threshold
    return {"actual": rnd(value), "met": value <= threshold, "budget_remaining": rnd(1 - burn, 6),
            "burn_rate": rnd(burn, 6), "total": samples}


__all__ = ["RELATIVE_ACCURACY", "Sketch", "ratio_result", "rnd", "threshold_result"]
