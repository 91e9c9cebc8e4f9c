"""The ledger prices a worker by its placement: per GPU for GPU workers, per worker for CPU."""

from __future__ import annotations

import pytest

from runq.core.hosts import Price, default_prices
from runq.core.worker import Placement, Transition, Worker, WorkerState
from runq.fleet.ledger import Ledger


def worker(placement: Placement) -> Worker:
    timeline = [
        Transition(0.0, WorkerState.INITIALIZING, "started"),
        Transition(10.0, WorkerState.TERMINATED, "stopped"),
    ]
    state = WorkerState.TERMINATED
    return Worker("w1", "ep", "t", state, placement=placement, transitions=timeline)


@pytest.mark.parametrize(
    ("placement", "expected_usd"),
    [
        # Two L4s (24GB, 0.00019 per GPU-second) for 10 s.
        (Placement("h", (0, 1), "L4", "24GB"), 2 * 0.00019 * 10),
        # A CPU worker at the [prices."cpu"] flex price, per worker: 1e-5 for 10 s.
        (Placement("h"), 1e-5 * 10),
    ],
)
def test_a_worker_costs_its_price_times_what_it_holds(
    placement: Placement, expected_usd: float
) -> None:
    prices = {**default_prices(), "cpu": Price(1e-5, 1e-6)}
    only = worker(placement)
    ledger = Ledger(prices, lambda _: [only])
    assert ledger.worker(only, now=10.0).cost == pytest.approx(expected_usd)
