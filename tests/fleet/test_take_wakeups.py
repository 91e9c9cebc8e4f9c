"""Held job-take polls: a queued job wakes one of them, not every worker of the endpoint (with
1,000 idle workers that was ten store takes per job, nine finding nothing); a wake is never
lost, and a drain or park still answers every held poll."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runq.core.config import ServerConfig
from runq.core.job import Job, JobRequest
from runq.fleet.signals import Signals
from runq.server.services import Services
from runq.store.sqlite import SqliteJobStore

pytestmark = pytest.mark.timeout(30)

EP = "echo"


@pytest.mark.parametrize(
    ("queued", "leaving", "acted", "woken_after"),
    [
        pytest.param(1, None, False, [True, False, False], id="one job wakes the oldest poll"),
        pytest.param(2, None, False, [True, True, False], id="two jobs wake the two oldest"),
        pytest.param(
            1, 0, False, [True, True, False], id="a poll leaving with an unused wake passes it on"
        ),
        pytest.param(
            1, 0, True, [True, False, False], id="a poll that read the queue after it passes none"
        ),
        pytest.param(0, 1, False, [False, False, False], id="a poll leaving unwoken wakes nobody"),
        pytest.param(5, None, False, [True, True, True], id="more jobs than polls wake them all"),
    ],
)
def test_queued_jobs_wake_held_polls_oldest_first(
    queued: int, leaving: int | None, acted: bool, woken_after: list[bool]
) -> None:
    signals = Signals()
    tickets = [signals.ticket(EP) for _ in range(3)]
    signals.job_queued(EP, queued)
    if leaving is not None:
        signals.leave(EP, tickets[leaving], acted)
    assert [t.is_set() for t in tickets] == woken_after


def test_a_drain_or_park_answers_every_held_poll() -> None:
    signals = Signals()
    tickets = [signals.ticket(EP) for _ in range(3)]
    other = signals.ticket("other")
    signals.work_available(EP)
    assert [t.is_set() for t in tickets] == [True, True, True]
    assert not other.is_set()
    assert signals.waiting_polls(EP) == 0 and signals.waiting_polls("other") == 1


class CountingStore(SqliteJobStore):
    """The real store, counting the takes it is asked for."""

    takes = 0

    async def take(self, endpoint: str, worker_id: str, limit: int) -> list[Job]:
        self.takes += 1
        return await super().take(endpoint, worker_id, limit)


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[Services]:
    store = CountingStore(tmp_path / "runq.db")
    await store.open()
    yield Services(ServerConfig(data_dir=tmp_path), store, "secret")
    await store.close()


async def test_each_job_goes_to_one_held_poll_and_costs_one_take(plane: Services) -> None:
    store = plane.store
    assert isinstance(store, CountingStore)
    workers = [plane.registry.register(EP) for _ in range(10)]
    polls = [asyncio.create_task(plane.fleet.take(w, 1, False)) for w in workers]
    deadline = asyncio.get_running_loop().time() + 5
    while plane.signals.waiting_polls(EP) < len(workers):  # all ten read the empty queue
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    takes_before = store.takes

    first = await plane.jobs.submit(JobRequest(endpoint=EP, input=1))
    done, held = await asyncio.wait(polls, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    assert [[j.id for j in task.result()] for task in done] == [[first.id]]
    second = await plane.jobs.submit(JobRequest(endpoint=EP, input=2))
    done, held = await asyncio.wait(held, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    assert [[j.id for j in task.result()] for task in done] == [[second.id]]

    assert store.takes - takes_before == 2  # not one per held poll
    assert len(held) == 8 and plane.signals.waiting_polls(EP) == 8
    plane.signals.close()
    assert await asyncio.gather(*held) == [[]] * 8
