"""Fleet behaviour on a fake clock and a fake provisioner: the real scheduler, reaper, fleet
and job services, no process, no wall-clock wait. Each test is a few ticks of fake time."""

from __future__ import annotations

from pathlib import Path

import pytest

from runq.core.job import JobStatus
from runq.core.worker import WorkerState
from runq.fleet.scheduler import HEALTHY_RUN_S
from tests.fleet.fakes import fake_fleet, gpu_host

pytestmark = pytest.mark.timeout(20)

IDLE, INIT, PARKED, THROTTLED, UNHEALTHY = (
    WorkerState.IDLE,
    WorkerState.INITIALIZING,
    WorkerState.PARKED,
    WorkerState.THROTTLED,
    WorkerState.UNHEALTHY,
)


def toml(name: str, active: int = 0, maximum: int = 1, gpu: str = "cpu", extra: str = "") -> str:
    return (
        f'name = "{name}"\n[worker]\ncommand = ["true"]\n[compute]\ngpu = ["{gpu}"]\n'
        f"[scaling]\nactive_workers = {active}\nmax_workers = {maximum}\n{extra}"
    )


async def test_a_cold_start_past_init_timeout_is_unhealthy_then_replaced(tmp_path: Path) -> None:
    async with fake_fleet(tmp_path) as fleet:
        fleet.deploy(toml("slow", active=1, extra='init_timeout = "10s"\n'))
        await fleet.tick()
        [first] = fleet.workers()
        assert first.state == INIT

        await fleet.tick(9.9)
        assert first.state == INIT  # within its init timeout
        await fleet.tick(0.2)  # unhealthy, so stopped, and the active worker replaced
        assert UNHEALTHY in [t.state for t in first.transitions]
        assert "init_timeout of 10s" in (first.unhealthy_reason or "")
        assert first.id in fleet.provisioner.actions("stop")
        [second] = fleet.workers()
        assert second.id != first.id and second.state == INIT


@pytest.mark.parametrize(
    ("crashes", "hold_s"),
    [pytest.param(1, 0.5, id="first crash"), pytest.param(3, 2.0, id="third in a row")],
)
async def test_workers_that_keep_dying_young_are_restarted_after_a_growing_hold(
    tmp_path: Path, crashes: int, hold_s: float
) -> None:
    async with fake_fleet(tmp_path) as fleet:
        fleet.deploy(toml("crashy", active=1))
        await fleet.tick()
        for _ in range(crashes):
            [worker] = fleet.workers()
            await fleet.provisioner.exit(worker.id, 1)  # young, unexpected
            await fleet.tick(hold_s * 2)  # past any earlier hold: the next one starts
        starts = len(fleet.provisioner.actions("start"))
        assert starts == crashes + 1

        [worker] = fleet.workers()
        await fleet.provisioner.exit(worker.id, 1)
        await fleet.tick(hold_s * 2 - 0.01)  # the hold doubled with this crash
        assert fleet.workers() == []
        await fleet.tick(0.02)
        assert len(fleet.workers()) == 1


async def test_a_worker_that_lived_long_resets_the_back_off(tmp_path: Path) -> None:
    async with fake_fleet(tmp_path) as fleet:
        fleet.deploy(toml("steady", active=1))
        await fleet.tick()
        [worker] = fleet.workers()
        await fleet.tick(HEALTHY_RUN_S)
        await fleet.provisioner.exit(worker.id, 1)
        await fleet.tick()  # replaced at once: it was not crash looping
        assert len(fleet.workers()) == 1 and fleet.workers()[0].id != worker.id


async def test_a_worker_without_a_free_gpu_waits_throttled_and_starts_when_one_frees(
    tmp_path: Path,
) -> None:
    async with fake_fleet(tmp_path, hosts=(gpu_host(count=1),)) as fleet:
        fleet.deploy(toml("gpu", active=2, maximum=2, gpu="24GB"))
        await fleet.tick()
        assert fleet.states() == [INIT, THROTTLED]
        started = fleet.provisioner.actions("start")
        [waiting] = [w for w in fleet.workers() if w.state == THROTTLED]
        assert len(started) == 1 and waiting.placement is None

        await fleet.provisioner.exit(started[0], 0, expected=True)
        await fleet.tick()  # the waiting one gets the GPU; the exited one's successor waits
        assert waiting.state == INIT and waiting.placement is not None
        assert waiting.placement.gpu_indices == (0,)
        assert fleet.states() == [INIT, THROTTLED]


async def test_a_parked_worker_gives_its_gpu_to_another_endpoint(tmp_path: Path) -> None:
    async with fake_fleet(tmp_path, hosts=(gpu_host(count=1),)) as fleet:
        fleet.deploy(toml("idle", active=0, gpu="24GB", extra='idle_timeout = "5s"\n'))
        await fleet.submit("idle")
        await fleet.tick()
        [parked] = fleet.workers("idle")
        await fleet.ready(parked)
        job = (await fleet.services.fleet.take(parked, 1, False))[0]
        await fleet.services.fleet.report(parked, job.id, {"output": 1})
        await fleet.tick(6)
        assert parked.state == PARKED and parked.id in fleet.provisioner.actions("park")

        fleet.deploy(toml("busy", active=1, gpu="24GB"))
        await fleet.tick()  # no GPU free: it waits
        assert fleet.states("busy") == [THROTTLED]
        await fleet.tick()  # still none: the parked worker is evicted
        assert parked.id in fleet.provisioner.actions("stop")
        await fleet.tick()
        assert fleet.states("busy") == [INIT]


async def test_an_idle_worker_is_parked_then_revived_by_a_job(tmp_path: Path) -> None:
    async with fake_fleet(tmp_path) as fleet:
        fleet.deploy(toml("flash", extra='idle_timeout = "5s"\n'))
        await fleet.submit("flash")
        await fleet.tick()
        [worker] = fleet.workers()
        await fleet.ready(worker)
        [job] = await fleet.services.fleet.take(worker, 1, False)
        await fleet.services.fleet.report(worker, job.id, {"output": "done"})
        await fleet.tick(4)
        assert worker.state == IDLE  # within its idle timeout
        await fleet.tick(2)
        assert worker.state == PARKED

        await fleet.submit("flash")
        await fleet.tick()
        assert worker.state == IDLE and fleet.provisioner.actions("revive") == [worker.id]
        assert len(fleet.provisioner.actions("start")) == 1  # revived, not cold started


async def test_a_silent_worker_is_lost_and_its_job_runs_again(tmp_path: Path) -> None:
    async with fake_fleet(tmp_path, heartbeat_timeout_s=15.0) as fleet:
        fleet.deploy(toml("lossy", extra="[jobs]\nmax_retries = 1\n"))
        [job] = await fleet.submit("lossy")
        await fleet.tick()
        [worker] = fleet.workers()
        await fleet.ready(worker)
        await fleet.services.fleet.take(worker, 1, False)

        await fleet.tick(10)
        assert worker in fleet.workers()  # 10 s silent: not yet lost
        await fleet.tick(10)
        assert worker not in fleet.workers()
        assert worker.id in fleet.provisioner.actions("kill")
        again = await fleet.services.jobs.get(job.id)
        assert again is not None and again.status == JobStatus.IN_QUEUE and again.retries == 1


async def test_a_worker_stopped_while_it_is_prepared_is_cut_short_and_forgotten(
    tmp_path: Path,
) -> None:
    async with fake_fleet(tmp_path) as fleet:
        fleet.provisioner.prepare_first = True  # say, its image is being pulled: no process
        fleet.deploy(toml("pulling", active=1, extra='init_timeout = "10s"\n'))
        await fleet.tick()
        [first] = fleet.workers()
        assert fleet.provisioner.pid(first.id) is None

        await fleet.tick(11)  # past its init timeout: unhealthy, stopped, replaced
        assert first.id in fleet.provisioner.actions("stop")
        assert first.id not in fleet.provisioner.preparing  # the preparation was cut short
        assert first not in fleet.workers()
        [second] = fleet.workers()
        assert second.id in fleet.provisioner.preparing
