"""An endpoint's recorded history, fetched from a running `runq serve`, and distributions
fitted to it for the simulator.

* cold starts: from each worker's transitions (`/admin/workers?all=1`), the time from its first
  INITIALIZING to its first IDLE or RUNNING, as `runq.policy.cost` defines a cold start;
* revivals: PARKED -> IDLE moves. The local fleet revives a parked worker with one signal and
  records no time for it, so revivals are counted; a PARKED -> INITIALIZING -> ready revival
  (a fleet that records one) gives its INITIALIZING time as a sample;
* execution and delay times, and the arrival times as a trace: the most recent finished jobs
  (`/admin/endpoints/{name}/jobs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import httpx

from runq.bench.dists import Dist, fit
from runq.bench.traces import Trace
from runq.core.spec import ScalingSection
from runq.core.worker import WorkerState
from runq.errors import RunqError

_READY = (WorkerState.IDLE.value, WorkerState.RUNNING.value)
_INITIALIZING = WorkerState.INITIALIZING.value
_PARKED = WorkerState.PARKED.value
_THROTTLED = WorkerState.THROTTLED.value


class HistoryUnavailable(RunqError):
    """The server could not be reached or answered with an error."""


@dataclass(frozen=True)
class JobRecord:
    created_at: float  # epoch seconds
    delay_s: float
    execution_s: float


@dataclass(frozen=True)
class History:
    endpoint: str
    scaling: ScalingSection  # the endpoint's configuration now
    cold_starts_s: tuple[float, ...]
    revivals: int
    revivals_s: tuple[float, ...]  # revivals whose duration was recorded
    jobs: tuple[JobRecord, ...]  # oldest first

    @property
    def executions_s(self) -> tuple[float, ...]:
        return tuple(job.execution_s for job in self.jobs)

    @property
    def delays_s(self) -> tuple[float, ...]:
        return tuple(job.delay_s for job in self.jobs)

    def trace(self) -> Trace:
        """The recorded jobs as a trace: arrivals and their execution times."""
        first = self.jobs[0].created_at if self.jobs else 0.0
        ordered = sorted(self.jobs, key=lambda job: job.created_at)
        return Trace(
            f"{self.endpoint}-history",
            tuple(job.created_at - first for job in ordered),
            tuple(job.execution_s for job in ordered),
        )

    def cold_start(self) -> Dist | None:
        return fit(self.cold_starts_s) if self.cold_starts_s else None

    def revival(self) -> Dist | None:
        return fit(self.revivals_s) if self.revivals_s else None

    def execution(self) -> Dist | None:
        return fit(self.executions_s) if self.jobs else None


def cold_starts(transitions: Sequence[dict[str, Any]]) -> tuple[list[float], int, list[float]]:
    """(cold start seconds, revival count, revival seconds) of one worker's transitions.

    >>> steps = [{"at": 0, "state": "initializing"}, {"at": 7.5, "state": "idle"},
    ...          {"at": 20, "state": "parked"}, {"at": 30, "state": "idle"}]
    >>> cold_starts(steps)  # ready after 7.5 s; one revival, instantaneous (no time recorded)
    ([7.5], 1, [])
    """
    cold: list[float] = []
    revivals: list[float] = []
    count = 0
    began: float | None = None  # start of the cold start or revival being timed
    reviving = False
    for i, step in enumerate(transitions):
        state, at = step["state"], float(step["at"])
        came_from = transitions[i - 1]["state"] if i else None
        if state == _INITIALIZING:
            # A worker starts once (maybe after waiting for a GPU); later INITIALIZING is a
            # revival from PARKED.
            if came_from == _PARKED:
                count, began, reviving = count + 1, at, True
            elif came_from in (None, _THROTTLED):
                began, reviving = at, False
        elif state in _READY:
            if came_from == _PARKED:
                count += 1  # revived at once: no time recorded
            elif began is not None:
                (revivals if reviving else cold).append(at - began)
            began = None
    return cold, count, revivals


def from_payloads(workers: list[dict[str, Any]], jobs_body: dict[str, Any]) -> History:
    """A `History` from the bodies of `/admin/workers?all=1` and `/admin/endpoints/{name}/jobs`."""
    cold: list[float] = []
    revivals: list[float] = []
    count = 0
    for worker in workers:
        c, n, r = cold_starts(worker.get("transitions", []))
        cold += c
        count += n
        revivals += r
    known = {f.name for f in fields(ScalingSection)}
    scaling = ScalingSection(**{k: v for k, v in jobs_body["scaling"].items() if k in known})
    jobs = sorted(
        (
            JobRecord(float(j["created_at"]), float(j["delay_s"]), float(j["execution_s"]))
            for j in jobs_body["jobs"]
        ),
        key=lambda job: job.created_at,
    )
    return History(jobs_body["endpoint"], scaling, tuple(cold), count, tuple(revivals), tuple(jobs))


def fetch_history(url: str, api_key: str, endpoint: str, limit: int = 1000) -> History:
    """Reads the endpoint's history from the control plane at `url` with an admin key.

    Raises:
        HistoryUnavailable: the server cannot be reached, or answers an error (its message is
            kept, e.g. "endpoint 'x' is not deployed").
    """
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=30) as client:
        workers = _get(client, "/admin/workers", {"all": "1", "endpoint": endpoint})
        jobs = _get(client, f"/admin/endpoints/{endpoint}/jobs", {"limit": str(limit)})
    return from_payloads(workers, jobs)


def _get(client: httpx.Client, path: str, params: dict[str, str]) -> Any:
    try:
        response = client.get(path, params=params)
    except httpx.HTTPError as exc:
        raise HistoryUnavailable(f"cannot reach runq at {client.base_url}: {exc}") from None
    if response.status_code >= 400:
        try:
            message = response.json().get("error", response.text)
        except ValueError:
            message = response.text
        raise HistoryUnavailable(f"{path}: {response.status_code}: {message}")
    return response.json()
