"""Sizing a fleet for a p95 queue-delay target (an SLO) instead of a delay threshold.

Two estimates, the larger wins:

* **steady**: the fewest workers for which an M/M/c queue at the recently observed arrival
  rate and mean execution time keeps P(delay > target) <= 5 % (Erlang C). The rate is the
  larger of the last 10 s and the last 60 s, so a burst is seen within seconds and a lull
  does not drop capacity at once.
* **backlog**: what the queue needs now. The oldest queued job has `target - waited` left; a
  worker started now is ready a cold start later, so the time the fleet has is
  `budget = target - waited - cold start` (at least 0). The busy workers clear
  `in_progress * budget / execution` queued jobs in it; each new worker clears
  `1 + budget / execution`. With no budget left that is one new worker per queued job.

Pure: times and counts come in, a worker count and a sentence go out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

P95_TAIL = 0.05  # P(delay > target) allowed: the target is a 95th percentile
RATE_WINDOWS_S = (10.0, 60.0)  # short: sees a burst; long: rides out a lull
DEFAULT_EXECUTION_S = 1.0  # before any job has finished
RECENT_EXECUTIONS = 100


def erlang_c(workers: int, load: float) -> float:
    """Probability that an arrival waits in an M/M/c queue with offered `load` = rate x mean
    execution (in workers). At or above capacity (load >= workers) every arrival waits: 1.

    One worker at load 0.5 waits half the time; two workers at load 1 wait a third of it:

    >>> erlang_c(1, 0.5), round(erlang_c(2, 1.0), 6)
    (0.5, 0.333333)
    """
    if workers <= 0 or load >= workers:
        return 1.0
    if load <= 0:
        return 0.0
    blocked = 1.0  # Erlang B by its recursion, numerically stable for large c
    for k in range(1, workers + 1):
        blocked = load * blocked / (k + load * blocked)
    return workers * blocked / (workers - load * (1 - blocked))


def tail_probability(workers: int, rate: float, execution_s: float, delay_s: float) -> float:
    """P(queue delay > `delay_s`) in M/M/c: C(c, a) x exp(-(c - a) x delay / execution).

    One worker, a job every 2 s taking 1 s (load 0.5): half wait, and P(delay > 1 s) is
    0.5 x e^-0.5 = 0.303:

    >>> round(tail_probability(1, 0.5, 1.0, 1.0), 3)
    0.303
    """
    load = rate * execution_s
    waits = erlang_c(workers, load)
    if waits >= 1.0:
        return 1.0
    return waits * math.exp(-(workers - load) * delay_s / execution_s)


def workers_for_target(rate: float, execution_s: float, target_s: float, limit: int) -> int:
    """The fewest workers (at most `limit`) with P(delay > target) <= 5 %; 0 with no arrivals.

    4 jobs a second of 1 s each is a load of 4 workers. With a 2 s target, 5 workers leave
    C(5, 4) e^-2 = 0.554 x 0.135 = 7.5 % over it, 6 leave 0.285 x e^-4 = 0.5 %: so 6.

    >>> workers_for_target(4.0, 1.0, 2.0, limit=20), workers_for_target(4.0, 1.0, 2.0, limit=5)
    (6, 5)
    >>> workers_for_target(0.0, 1.0, 2.0, limit=20)
    0
    """
    if rate <= 0:
        return 0
    for workers in range(max(1, math.floor(rate * execution_s)), limit + 1):
        if tail_probability(workers, rate, execution_s, target_s) <= P95_TAIL:
            return workers
    return limit


def arrival_rate(arrivals: Sequence[float], now: float) -> float:
    """Arrivals per second: the larger of the rates over the last 10 s and the last 60 s.

    A burst of 20 arrivals in the last 5 s, after 10 in the 55 s before: 20 / 10 = 2/s over
    the short window beats 30 / 60 = 0.5/s over the long one.

    >>> earlier = [40.0 + 5.5 * n for n in range(10)]
    >>> burst = [95.0 + 0.25 * n for n in range(20)]
    >>> arrival_rate(earlier + burst, now=100.0)
    2.0
    """
    rates = []
    for window in RATE_WINDOWS_S:
        since = now - window
        rates.append(sum(1 for at in arrivals if since < at <= now) / window)
    return max(rates)


def slo_workers(
    *,
    now: float,
    arrivals: Sequence[float],
    executions: Sequence[float],
    cold_start_s: float,
    in_queue: int,
    in_progress: int,
    oldest_queued_at: float | None,
    target_s: float,
    limit: int,
) -> tuple[int, int, str]:
    """(steady, backlog, why): the two estimates of the module doc.

    3 queued, 2 running, the oldest queued 1 s ago; 1 s jobs, a 10 s target and a 4 s cold
    start: the budget is 10 - 1 - 4 = 5 s, in which the 2 busy workers clear 2 x 5 = 10 jobs,
    so the backlog needs no new worker: 2. One arrival in the last 10 s (0.1/s) needs 1.

    >>> slo_workers(now=100.0, arrivals=[60.0, 99.0], executions=[1.0], cold_start_s=4,
    ...             in_queue=3, in_progress=2, oldest_queued_at=99.0, target_s=10, limit=10)
    (1, 2, 'p95 target 10s: 0.1 jobs/s x 1s needs 1, queue 3 + 2 running needs 2')

    With the target already missed (waited 12 s) each queued job wants a worker: 2 + 3 = 5.

    >>> slo_workers(now=100.0, arrivals=[60.0, 99.0], executions=[1.0], cold_start_s=4,
    ...             in_queue=3, in_progress=2, oldest_queued_at=88.0, target_s=10, limit=10)[1]
    5

    Raises:
        ValueError: a target that is not a positive number.
    """
    if not (math.isfinite(target_s) and target_s > 0):
        raise ValueError(f"p95_delay_target_s must be a positive number, got {target_s!r}")
    recent = executions[-RECENT_EXECUTIONS:]
    execution_s = max(sum(recent) / len(recent), 1e-3) if recent else DEFAULT_EXECUTION_S
    rate = arrival_rate(arrivals, now)
    steady = workers_for_target(rate, execution_s, target_s, limit)
    waited = now - oldest_queued_at if oldest_queued_at is not None else 0.0
    budget = max(0.0, target_s - waited - cold_start_s)
    per_worker = budget / execution_s
    left = max(0.0, in_queue - in_progress * per_worker)
    # Rounded first so that float noise does not add a whole worker.
    backlog = in_progress + math.ceil(round(left / (1 + per_worker), 9))
    why = (
        f"p95 target {target_s:g}s: {rate:.2g} jobs/s x {execution_s:.2g}s needs {steady}, "
        f"queue {in_queue} + {in_progress} running needs {backlog}"
    )
    return steady, backlog, why
