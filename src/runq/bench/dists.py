"""Distributions of durations (cold start, revival, execution) for the simulator.

Three kinds, all sampled with a caller's seeded `random.Random`, so a simulation is repeatable:

* `Constant`: always the same value;
* `Empirical`: resamples recorded values, each equally likely (the bootstrap);
* `LogNormal`: `exp(N(mu, sigma))`, fitted by maximum likelihood.

`fit(samples)` chooses: with at least `MIN_EMPIRICAL` (30) samples the recorded values are the
best description and are resampled as they are; with 2 to 29 a lognormal is fitted (durations
are positive and right-skewed, and a few samples say too little about the tail to resample
them); one sample is a constant.

>>> import random
>>> dist = fit([2.0, 8.0])  # ln 2 = 0.693, ln 8 = 2.079: mu = 1.386, sigma = 0.693
>>> round(dist.median, 6), round(dist.sigma, 3)  # median = exp(mu) = sqrt(2 * 8) = 4
(4.0, 0.693)
>>> fit([3.0]).sample(random.Random(1))
3.0
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

MIN_EMPIRICAL = 30
# Recorded durations can be 0 (a job that ran in under a millisecond); the log needs > 0.
_FLOOR_S = 0.001


@dataclass(frozen=True)
class Constant:
    value: float

    def sample(self, rng: random.Random) -> float:
        return self.value

    @property
    def mean(self) -> float:
        return self.value

    def describe(self) -> str:
        return f"{self.value:g}s"


@dataclass(frozen=True)
class Empirical:
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("an empirical distribution needs at least one value")

    def sample(self, rng: random.Random) -> float:
        return self.values[rng.randrange(len(self.values))]

    @property
    def mean(self) -> float:
        return math.fsum(self.values) / len(self.values)

    def describe(self) -> str:
        ordered = sorted(self.values)
        p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
        return (
            f"empirical n={len(ordered)}, median {statistics.median(ordered):.3g}s, p95 {p95:.3g}s"
        )


@dataclass(frozen=True)
class LogNormal:
    mu: float  # mean of ln(duration)
    sigma: float  # standard deviation of ln(duration), >= 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mu) and math.isfinite(self.sigma)) or self.sigma < 0:
            raise ValueError(f"lognormal needs finite mu and sigma >= 0, got {self}")

    @classmethod
    def from_median(cls, median: float, sigma: float) -> LogNormal:
        """The lognormal with this median (= exp(mu)) and log-spread."""
        if median <= 0:
            raise ValueError(f"a lognormal median must be > 0, got {median!r}")
        return cls(math.log(median), sigma)

    def sample(self, rng: random.Random) -> float:
        return rng.lognormvariate(self.mu, self.sigma)

    @property
    def median(self) -> float:
        return math.exp(self.mu)

    @property
    def mean(self) -> float:
        return math.exp(self.mu + self.sigma**2 / 2)

    def describe(self) -> str:
        return f"lognormal median {self.median:.3g}s, sigma {self.sigma:.3g}"


Dist = Constant | Empirical | LogNormal


def fit_lognormal(samples: Sequence[float]) -> LogNormal:
    """Maximum likelihood: mu and sigma are the mean and the population (1/n) standard deviation
    of the logs. Values under 1 ms count as 1 ms.

    >>> fit_lognormal([1.0, 1.0]).sigma  # no spread at all
    0.0

    Raises:
        ValueError: no samples.
    """
    if not samples:
        raise ValueError("cannot fit a lognormal to no samples")
    logs = [math.log(max(s, _FLOOR_S)) for s in samples]
    return LogNormal(statistics.fmean(logs), statistics.pstdev(logs))


def fit(samples: Sequence[float], min_empirical: int = MIN_EMPIRICAL) -> Dist:
    """The distribution of recorded durations (the rule is in the module doc).

    Raises:
        ValueError: no samples, or a negative or non-finite one.
    """
    if not samples:
        raise ValueError("cannot fit a distribution to no samples")
    bad = [s for s in samples if not math.isfinite(s) or s < 0]
    if bad:
        raise ValueError(f"durations must be finite and >= 0, got {bad[0]!r}")
    if len(samples) >= min_empirical:
        return Empirical(tuple(float(s) for s in samples))
    if len(samples) == 1:
        return Constant(float(samples[0]))
    return fit_lognormal(samples)


def draw(value: float | Dist, rng: random.Random) -> float:
    """One duration: a float is itself, a distribution is sampled."""
    return value if isinstance(value, float | int) else value.sample(rng)


def parse_dist(text: str) -> Dist:
    """A distribution as a user types it: `12` or `12s` (constant seconds), or
    `lognormal:MEDIAN,SIGMA` (median in seconds).

    >>> parse_dist("lognormal:4,0.5")
    LogNormal(mu=1.3862943611198906, sigma=0.5)

    Raises:
        ValueError: anything else, with the text in the message.
    """
    raw = text.strip()
    try:
        if raw.lower().startswith("lognormal:"):
            median, sigma = (float(part) for part in raw.split(":", 1)[1].split(","))
            dist: Dist = LogNormal.from_median(median, sigma)
        else:
            value = float(raw.removesuffix("s"))
            if not math.isfinite(value) or value < 0:
                raise ValueError
            dist = Constant(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a duration: expected seconds (e.g. 12) or lognormal:MEDIAN,SIGMA "
            "(e.g. lognormal:12,0.5)"
        ) from None
    return dist
