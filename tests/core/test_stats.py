"""Nearest-rank percentiles against values worked out by hand."""

from __future__ import annotations

import doctest

import pytest

import runq.core.stats
from runq.core.stats import Percentiles, nearest_rank

WIKI = [15.0, 20.0, 35.0, 40.0, 50.0]  # the textbook nearest-rank example
ONE_TO_TEN = [float(v) for v in range(1, 11)]
ONE_TO_TWENTY = [float(v) for v in range(1, 21)]


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        (WIKI, 5, 15.0),  # ceil(0.05 * 5) = 1 -> 1st
        (WIKI, 30, 20.0),  # ceil(1.5) = 2 -> 2nd
        (WIKI, 40, 20.0),  # 0.4 * 5 = 2 exactly -> 2nd, not 3rd
        (WIKI, 50, 35.0),  # ceil(2.5) = 3
        (WIKI, 100, 50.0),  # the largest
        (ONE_TO_TEN, 50, 5.0),  # 0.5 * 10 = 5 -> 5th
        (ONE_TO_TEN, 90, 9.0),  # 9th
        (ONE_TO_TEN, 95, 10.0),  # ceil(9.5) = 10
        (ONE_TO_TEN, 99, 10.0),  # ceil(9.9) = 10
        (ONE_TO_TWENTY, 95, 19.0),  # 0.95 * 20 = 19 (19.000000000000004 in floats) -> 19th
        ([7.0], 1, 7.0),  # one value is every percentile
        ([7.0], 99, 7.0),
        ([], 50, None),  # no values, no percentile
    ],
    ids=[
        "p5-of-five-is-the-smallest",
        "p30-of-five-rounds-the-rank-up",
        "an-exact-rank-is-not-rounded-up",
        "p50-of-five-is-the-middle",
        "p100-is-the-largest",
        "p50-of-ten-is-the-fifth",
        "p90-of-ten-is-the-ninth",
        "p95-of-ten-is-the-tenth",
        "p99-of-ten-is-the-tenth",
        "float-error-does-not-push-p95-of-twenty-up",
        "one-value-p1",
        "one-value-p99",
        "no-values-give-none",
    ],
)
def test_nearest_rank(values: list[float], p: float, expected: float | None) -> None:
    assert nearest_rank(values, p) == expected


@pytest.mark.parametrize("p", [0, -1, 100.5])
def test_a_percentile_outside_0_to_100_is_refused(p: float) -> None:
    with pytest.raises(ValueError, match="percentile"):
        nearest_rank([1.0], p)


def test_percentiles_of_unsorted_values_sort_them_first() -> None:
    summary = Percentiles.of(reversed(ONE_TO_TEN))
    assert summary == Percentiles(count=10, p50=5.0, p90=9.0, p95=10.0, p99=10.0)


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(runq.core.stats).failed == 0
