"""An endpoint's figures over a window of time, as the admin API gives them: jobs ended by
status, delay and execution percentiles (from the store), cold starts, revivals, billed
worker-seconds and cost (from the worker registry, priced by the ledger)."""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import HTTPConnection

from runq.api import services
from runq.core.reads import TIMES_KEEP_S, JobWindow
from runq.core.stats import Percentiles
from runq.errors import BadRequest
from runq.fleet.fleet import Fleet
from runq.fleet.ledger import Ledger
from runq.policy.usage import Timeline, Usage, endpoint_usage

DEFAULT_WINDOW_S = 3600.0
MAX_WINDOW_S = TIMES_KEEP_S  # what the store keeps of ended jobs (the registry: 500 workers)


def parse_window(raw: str | None, default: float = DEFAULT_WINDOW_S) -> float:
    """The `window` query parameter: seconds, a number in (0, MAX_WINDOW_S].

    Raises:
        BadRequest: anything else, naming the value.
    """
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_WINDOW_S):
        raise BadRequest(
            f"query parameter 'window' must be a number of seconds in (0, {MAX_WINDOW_S:g}], "
            f"not {raw!r}"
        )
    return value


def timelines(fleet: Fleet, ledger: Ledger, endpoint: str | None) -> list[Timeline]:
    """Every worker the registry still knows (terminated ones included), with its price."""
    return [(w.transitions, ledger.rate(w), w.active) for w in fleet.history(endpoint)]


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def percentiles_body(p: Percentiles) -> dict[str, Any]:
    return {
        "count": p.count,
        "p50": _seconds(p.p50),
        "p90": _seconds(p.p90),
        "p95": _seconds(p.p95),
        "p99": _seconds(p.p99),
    }


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "cold_starts": usage.cold_starts,
        "revivals": usage.revivals,
        "billed_s": round(usage.billed_s, 3),
        "cold_start_s": round(usage.cold_start_s, 3),
        "idle_s": round(usage.idle_s, 3),
        "running_s": round(usage.running_s, 3),
        "other_s": round(usage.other_s, 3),
        "cost_usd": usage.cost,
    }


def latency_body(window: JobWindow) -> dict[str, Any]:
    """The short summary in each row of GET /admin/endpoints."""
    return {
        "window_s": round(window.until - window.since, 3),
        "jobs": window.ended,
        "delay_p50_s": _seconds(window.delay.p50),
        "delay_p95_s": _seconds(window.delay.p95),
        "execution_p50_s": _seconds(window.execution.p50),
        "execution_p95_s": _seconds(window.execution.p95),
    }


async def window_metrics(request: HTTPConnection, endpoint: str, window_s: float) -> dict[str, Any]:
    """GET /admin/endpoints/{name}/metrics: the window (now - window_s, now].

    Raises:
        NotFound: the endpoint is not deployed.
    """
    services.endpoints(request).spec(endpoint)
    until = services.clock(request)()
    since = until - window_s
    jobs = await services.jobs(request).window(endpoint, since, until)
    lines = timelines(services.fleet(request), services.ledger(request), endpoint)
    usage = endpoint_usage(lines, since, until)
    return {
        "endpoint": endpoint,
        "window_s": window_s,
        "since": since,
        "until": until,
        "jobs": {
            "ended": jobs.ended,
            "completed": jobs.completed,
            "failed": jobs.failed,
            "cancelled": jobs.cancelled,
            "timed_out": jobs.timed_out,
        },
        "delay_s": percentiles_body(jobs.delay),
        "execution_s": percentiles_body(jobs.execution),
        "workers": usage_body(usage),
    }
