"""The policy comparison in the simulator: runq's slo scaler against RunPod's default."""

from __future__ import annotations

import doctest
import random

import pytest

from runq.bench import compare, traces


@pytest.mark.timeout(30)
def test_ours_is_cheaper_than_runpods_default_at_no_worse_p95_on_bursty_traffic() -> None:
    # 30 minutes of bursts (5 jobs/s for 20 s about every 5 minutes over 0.05/s), jobs of
    # about 1.6 s, a 10 s cold start. runq slo's target is RunPod's measured p95.
    trace = traces.bursty(1800.0, seed=7)
    rng = random.Random(1)
    execution = [rng.lognormvariate(0.5, 0.6) for _ in trace.arrivals]

    rows = compare.compare(
        trace.arrivals,
        execution,
        cold_start_s=10.0,
        max_workers=50,
        only=(compare.OURS,),
    )

    runpod, ours = rows
    assert (runpod.policy, ours.policy) == (compare.RUNPOD, compare.OURS)
    assert ours.jobs == runpod.jobs == len(trace.arrivals)
    assert ours.p95_s <= runpod.p95_s
    assert compare.savings(rows) >= 0.20, (ours, runpod)


@pytest.mark.timeout(60)
def test_every_policy_runs_the_same_jobs_and_is_priced() -> None:
    trace = traces.bursty(600.0, seed=3)
    execution = [1.0] * len(trace.arrivals)

    rows = compare.compare(trace.arrivals, execution, cold_start_s=10.0, max_workers=20)

    assert [r.policy for r in rows] == [c.name for c in compare.candidates(20, 1.0)]
    for row in rows:
        assert row.jobs == len(trace.arrivals), row.policy
        assert row.busy_s == pytest.approx(sum(execution)), row.policy
        assert row.cost > 0 and row.cold_starts >= 1, row.policy


def test_docstring_examples() -> None:
    assert doctest.testmod(compare).failed == 0
