"""Duration distributions: the fitting rule, maximum likelihood, seeded sampling, and the
simulator drawing cold starts, revivals and execution times from them."""

from __future__ import annotations

import doctest
import math
import random
from typing import Any

import pytest

from runq.bench import dists
from runq.bench.dists import Constant, Empirical, LogNormal, fit, fit_lognormal, parse_dist
from runq.bench.sim import SimConfig, simulate
from runq.core.spec import ScalingSection
from runq.policy.cost import Rate

pytestmark = pytest.mark.timeout(30)


def test_module_examples() -> None:
    assert doctest.testmod(dists).failed == 0


@pytest.mark.parametrize(
    ("samples", "kind"),
    [
        pytest.param([4.0], Constant, id="one sample is a constant"),
        pytest.param([1.0, 3.0], LogNormal, id="two samples: lognormal"),
        pytest.param([float(n) for n in range(1, 30)], LogNormal, id="29 samples: lognormal"),
        pytest.param([float(n) for n in range(1, 31)], Empirical, id="30 samples: empirical"),
    ],
)
def test_fit_chooses_empirical_from_30_samples_and_lognormal_below(
    samples: list[float], kind: type
) -> None:
    assert isinstance(fit(samples), kind)


@pytest.mark.parametrize(
    "samples",
    [pytest.param([], id="none"), pytest.param([1.0, -2.0], id="negative"),
     pytest.param([math.nan], id="nan")],
)  # fmt: skip
def test_fit_refuses_what_is_not_a_duration(samples: list[float]) -> None:
    with pytest.raises(ValueError):
        fit(samples)


@pytest.mark.parametrize(
    ("samples", "median", "sigma"),
    [
        # ln 2 = 0.693, ln 8 = 2.079: mu = 1.386 -> median e^1.386 = 4; sigma = 0.693 (1/n).
        pytest.param([2.0, 8.0], 4.0, math.log(2), id="two points: geometric mean and half-gap"),
        pytest.param([5.0, 5.0, 5.0], 5.0, 0.0, id="no spread"),
        # A zero execution time counts as 1 ms, so the log stays finite.
        pytest.param([0.0, 0.001], 0.001, 0.0, id="zero counts as one millisecond"),
    ],
)
def test_lognormal_maximum_likelihood(samples: list[float], median: float, sigma: float) -> None:
    fitted = fit_lognormal(samples)
    assert fitted.median == pytest.approx(median)
    assert fitted.sigma == pytest.approx(sigma, abs=1e-12)


def test_lognormal_fit_recovers_the_parameters_that_made_the_samples() -> None:
    rng = random.Random(7)
    truth = LogNormal.from_median(12.0, 0.5)
    fitted = fit_lognormal([truth.sample(rng) for _ in range(5000)])
    # The standard error of mu is sigma / sqrt(n) = 0.5 / 70.7 = 0.007.
    assert fitted.mu == pytest.approx(truth.mu, abs=0.03)
    assert fitted.sigma == pytest.approx(0.5, abs=0.03)
    assert fitted.mean == pytest.approx(12.0 * math.exp(0.125), rel=0.03)


def test_empirical_resamples_only_recorded_values_repeatably_by_seed() -> None:
    dist = Empirical((1.0, 2.0, 10.0))

    def draws(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [dist.sample(rng) for _ in range(50)]

    assert draws(3) == draws(3)
    assert set(draws(3)) == {1.0, 2.0, 10.0}
    assert draws(4) != draws(3)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("12", Constant(12.0), id="seconds"),
        pytest.param("1.5s", Constant(1.5), id="seconds with a unit"),
        pytest.param("lognormal:4,0.5", LogNormal(math.log(4), 0.5), id="lognormal by median"),
    ],
)
def test_parse_dist(text: str, expected: Any) -> None:
    assert parse_dist(text) == expected


@pytest.mark.parametrize(
    "text", ["abc", "-1", "inf", "lognormal:0,1", "lognormal:4", "lognormal:4,-1"]
)
def test_parse_dist_names_the_bad_text(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_dist(text)


def make_config(**fields: Any) -> SimConfig:
    scaling = ScalingSection(idle_timeout_s=1.0, max_workers=1, flashboot=False)
    return SimConfig(scaling, rate=Rate(0.001, 0.0005), **fields)


def test_a_constant_dist_simulates_exactly_as_the_float() -> None:
    as_float = simulate([0.0, 30.0], [1.0, 1.0], make_config(cold_start_s=3.0))
    as_dist = simulate([0.0, 30.0], [1.0, 1.0], make_config(cold_start_s=Constant(3.0)))
    assert as_dist == as_float
    assert [job.delay_s for job in as_dist.jobs] == [3.0, 3.0]


def test_cold_starts_are_drawn_per_start_and_repeat_with_the_seed() -> None:
    # Two jobs far apart on a worker that idles out after 1 s: two cold starts, each a draw.
    cold = Empirical((2.0, 5.0, 9.0))
    runs = [
        tuple(j.delay_s for j in simulate([0.0, 100.0, 200.0], [1.0] * 3, make_config(
            cold_start_s=cold, seed=seed)).jobs)
        for seed in (1, 1, 2, 3, 4)
    ]  # fmt: skip
    assert runs[0] == runs[1]
    assert all(set(delays) <= {2.0, 5.0, 9.0} for delays in runs)
    assert len(set(runs)) > 1  # other seeds, other draws


def test_revivals_are_drawn_from_their_dist() -> None:
    config = SimConfig(
        ScalingSection(idle_timeout_s=1.0, max_workers=1, flashboot=True),
        cold_start_s=3.0,
        revival_s=Constant(0.5),
        rate=Rate(0.001, 0.0005),
    )
    result = simulate([0.0, 20.0], [1.0, 1.0], config)
    # Ready at 3, done at 4, parked after its idle second; revived for the job at 20 in 0.5 s
    # (plus up to one 0.25 s tick: the arrival pokes the policy only with no worker serving).
    assert result.revivals == 1
    assert result.jobs[1].delay_s == pytest.approx(0.5, abs=0.25)


def test_execution_drawn_from_a_dist_is_the_same_for_every_configuration_of_a_seed() -> None:
    arrivals = [float(t) for t in range(0, 100, 10)]
    execution = LogNormal.from_median(2.0, 0.5)
    one = simulate(arrivals, execution, make_config(cold_start_s=1.0, seed=5))
    two = simulate(arrivals, execution, SimConfig(ScalingSection(active_workers=2,
                   max_workers=2), cold_start_s=8.0, seed=5))  # fmt: skip
    assert [j.execution_s for j in one.jobs] == pytest.approx([j.execution_s for j in two.jobs])
    assert len({round(j.execution_s, 9) for j in one.jobs}) == len(arrivals)  # all drawn
