"""Nearest-rank percentiles: the summary the store and the admin API give of delay and
execution times. Pure, no clock."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def nearest_rank(ordered: Sequence[float], p: float) -> float | None:
    """The `p`-th percentile (0 < p <= 100) of `ordered` (sorted ascending) by nearest rank:
    the smallest value with at least p% of the values at or below it, always one of the
    values (no interpolation). None for no values.

    Ten values 1..10: p50 is the 5th (ceil(0.5 * 10) = 5), p90 the 9th, p99 the 10th.

    >>> values = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    >>> nearest_rank(values, 50), nearest_rank(values, 90), nearest_rank(values, 99)
    (5, 9, 10)

    Raises:
        ValueError: `p` outside (0, 100].
    """
    if not 0 < p <= 100:
        raise ValueError(f"a percentile is in (0, 100], not {p}")
    if not ordered:
        return None
    # round() first: 0.95 * 20 is 19.000000000000004 in floats, and ceil would make it 20.
    rank = math.ceil(round(p / 100 * len(ordered), 9))
    return ordered[max(rank, 1) - 1]


@dataclass(frozen=True)
class Percentiles:
    """Count and nearest-rank percentiles of a set of durations in seconds (None: no values)."""

    count: int
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None

    @classmethod
    def of(cls, values: Iterable[float]) -> Percentiles:
        """Summarise `values` in any order.

        >>> Percentiles.of([0.3, 0.1, 0.2])
        Percentiles(count=3, p50=0.2, p90=0.3, p95=0.3, p99=0.3)
        """
        ordered = sorted(values)
        return cls(
            count=len(ordered),
            p50=nearest_rank(ordered, 50),
            p90=nearest_rank(ordered, 90),
            p95=nearest_rank(ordered, 95),
            p99=nearest_rank(ordered, 99),
        )
