"""The usage tally behind Prometheus's worker counters never goes down when the registry's
bounded history forgets a worker."""

from __future__ import annotations

import pytest

from runq.fleet.usage_tally import UsageTally
from runq.policy.usage import Usage


def used(billed_s: float, cold_starts: int = 1) -> Usage:
    return Usage(cold_starts=cold_starts, billed_s=billed_s, cost=billed_s * 0.001)


def test_a_forgotten_worker_keeps_counting_in_its_endpoint_total() -> None:
    tally = UsageTally()
    first = tally.update({"a": ("echo", used(3)), "b": ("echo", used(5)), "c": ("sd", used(1))})
    assert (first["echo"].billed_s, first["echo"].cold_starts, first["sd"].billed_s) == (8, 2, 1)

    # a dropped out of the history; b ran one more second: 3 + 6, two cold starts still.
    second = tally.update({"b": ("echo", used(6)), "c": ("sd", used(1))})
    assert (second["echo"].billed_s, second["echo"].cold_starts) == (9, 2)

    # Every worker forgotten, a new one started: the old ones stay in the totals.
    third = tally.update({"d": ("echo", used(2))})
    assert (third["echo"].billed_s, third["echo"].cold_starts) == (11, 3)
    assert third["sd"].billed_s == 1
    assert third["echo"].cost == pytest.approx(11 * 0.001)


def test_no_workers_ever_is_an_empty_tally() -> None:
    assert UsageTally().update({}) == {}
