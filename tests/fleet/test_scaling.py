"""The fleet live: a real `runq serve` scales real worker processes up, down, parks and revives
them, and places them on GPUs declared in its config."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Server, wait_until

pytestmark = pytest.mark.timeout(120)

ENDPOINT = """
name = "{name}"
[worker]
command = ["{python}", "{handlers}/{handler}"]
[compute]
gpu = {gpu}
[scaling]
active_workers = {active}
max_workers = {max}
idle_timeout = "{idle}"
flashboot = {flashboot}
scaler = "{scaler}"
requests_per_worker = 1
queue_delay = "{queue_delay}"
init_timeout = "{init_timeout}"
"""


def endpoint(name: str, **overrides: Any) -> str:
    fields: dict[str, Any] = {
        "handler": "native_env.py",
        "gpu": '["cpu"]',
        "active": 0,
        "max": 3,
        "idle": "1s",
        "flashboot": "false",
        "scaler": "request_count",
        "queue_delay": "4s",
        "init_timeout": "60s",
    }
    fields.update(overrides)
    text = ENDPOINT.replace("{name}", name)
    for key, value in fields.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def live(server: Server, name: str, *states: str) -> list[dict[str, Any]]:
    rows = server.workers(name)
    return [row for row in rows if not states or row["state"] in states]


def states_of(row: dict[str, Any]) -> list[str]:
    return [step["state"] for step in row["transitions"]]


def test_a_burst_scales_from_zero_and_back_down_after_the_idle_timeout(
    server_factory: Any,
) -> None:
    server: Server = server_factory()
    server.add_endpoint_text("burst", endpoint("burst"))
    server.start(wait_workers=False)
    assert live(server, "burst") == []  # active_workers = 0: nothing runs, nothing is billed

    ids = [server.run("burst", {"input": {"seconds": 1.5}}) for _ in range(3)]
    # request_count with 1 request per worker: 3 jobs -> 3 workers
    wait_until(lambda: len(live(server, "burst", "initializing", "idle", "running")) == 3)
    outputs = [server.wait_status("burst", job, {"COMPLETED"})["output"] for job in ids]
    assert len({out["worker"] for out in outputs}) == 3  # each ran on its own worker

    wait_until(lambda: live(server, "burst") == [], timeout=20)  # idle 1s -> stopped
    history = server.get("/admin/workers?endpoint=burst&all=1").json()
    assert len(history) == 3
    for row in history:
        assert states_of(row)[0] == "initializing" and states_of(row)[-1] == "terminated"
        assert "idle" in states_of(row)


def test_active_workers_stay_up_and_answer_without_a_cold_start(server_factory: Any) -> None:
    server: Server = server_factory()
    server.add_endpoint_text("warm", endpoint("warm", active=1, max=1, idle="0.5s"))
    server.start(wait_workers=False)
    wait_until(lambda: len(live(server, "warm", "idle")) == 1)
    worker = live(server, "warm")[0]
    assert worker["active"] is True

    first = server.post("/v2/warm/runsync", json={"input": {}}).json()
    assert first["output"]["worker"] == worker["id"]
    # Well past its idle timeout it is still the same idle worker: active ones never retire.
    wait_until(lambda: live(server, "warm")[0]["idle_s"] > 1.5, timeout=10)
    second = server.post("/v2/warm/runsync", json={"input": {}}).json()
    assert second["output"]["worker"] == worker["id"]
    assert second["delayTime"] < 1000  # no cold start in its delay


def test_a_parked_worker_is_revived_by_the_next_job(server_factory: Any) -> None:
    server: Server = server_factory()
    server.add_endpoint_text("flash", endpoint("flash", max=1, idle="0.5s", flashboot="true"))
    server.start(wait_workers=False)
    first = server.post("/v2/flash/runsync", json={"input": {}}).json()
    assert first["status"] == "COMPLETED"
    wait_until(lambda: len(live(server, "flash", "parked")) == 1, timeout=15)

    second = server.post("/v2/flash/runsync", json={"input": {}}).json()
    assert second["status"] == "COMPLETED"
    assert second["output"]["worker"] == first["output"]["worker"]  # revived, not a new one
    steps = states_of(live(server, "flash")[0])
    assert steps.count("initializing") == 1  # one cold start for both jobs
    parked = steps.index("parked")
    assert steps[parked + 1] == "idle"  # revived
    assert "running" in steps[parked + 1 :]


HOSTS = """
[[hosts]]
name = "box"
gpus = [{ type = "L4", count = 1 }, { type = "A6000", count = 1 }]
"""


def test_gpu_priority_falls_back_then_throttles(server_factory: Any) -> None:
    server: Server = server_factory()
    server.config_extra = HOSTS
    server.add_endpoint_text("gpu", endpoint("gpu", gpu='["24GB", "48GB"]', max=3, idle="30s"))
    server.start(wait_workers=False)
    for _ in range(3):
        server.run("gpu", {"input": {"seconds": 30}})

    def placed() -> bool:
        return len(live(server, "gpu", "running")) == 2 and len(live(server, "gpu")) == 3

    wait_until(placed, timeout=30)
    rows = live(server, "gpu")
    by_state = {row["state"]: row for row in rows if row["state"] == "throttled"}
    assert "throttled" in by_state  # a third worker is wanted, but no GPU is free
    running = sorted((row["gpu_type"], row["gpus"]) for row in live(server, "gpu", "running"))
    assert running == [("A6000", [1]), ("L4", [0])]  # 24GB first, then 48GB; one GPU each
    assert server.health("gpu")["workers"]["throttled"] == 1


def test_queue_delay_scaler_adds_a_worker_when_a_job_waits_too_long(
    server_factory: Any,
) -> None:
    server: Server = server_factory()
    text = endpoint("delay", scaler="queue_delay", queue_delay="0.5s", max=2, idle="30s")
    server.add_endpoint_text("delay", text)
    server.start(wait_workers=False)
    first = server.run("delay", {"input": {"seconds": 20}})
    server.wait_status("delay", first, {"IN_PROGRESS"})
    assert len(live(server, "delay")) == 1  # scale from zero: one worker, at once
    second = server.run("delay", {"input": {"seconds": 0}})
    # The second job waits behind the first; past 0.5 s the scaler adds a worker for it.
    done = server.wait_status("delay", second, {"COMPLETED"})
    assert done["delayTime"] >= 500
    assert len(live(server, "delay")) == 2


def test_a_queued_job_gets_a_start_estimate_while_the_endpoint_scales_from_zero(
    server_factory: Any,
) -> None:
    server: Server = server_factory()
    text = endpoint("slow", handler="native_init_sleep.py", max=1, idle="0.3s")
    server.add_endpoint_text(
        "slow", text.replace("[compute]", 'env = { INIT_SECONDS = "2" }\n[compute]')
    )
    server.start(wait_workers=False)
    first = server.post("/v2/slow/runsync", json={"input": 1}).json()
    assert first["status"] == "COMPLETED" and first["delayTime"] >= 2000  # a measured cold start
    wait_until(lambda: live(server, "slow") == [], timeout=15)

    job_id = server.run("slow", {"input": 2})
    status = server.status("slow", job_id)
    assert status["status"] == "IN_QUEUE"
    assert 0 < status["estimatedStartMs"] <= 3000  # about one cold start (2 s) from now
    assert server.wait_status("slow", job_id, {"COMPLETED"})["output"] == 2


def test_the_cost_ledger_follows_the_worker_timeline(server_factory: Any) -> None:
    server: Server = server_factory()
    server.config_extra = HOSTS
    server.add_endpoint_text("paid", endpoint("paid", gpu='["24GB"]', max=1, idle="0.5s"))
    server.start(wait_workers=False)
    done = server.post("/v2/paid/runsync", json={"input": {"seconds": 0.5}}).json()
    assert done["status"] == "COMPLETED"
    wait_until(lambda: live(server, "paid") == [], timeout=15)

    row = server.get("/admin/workers?endpoint=paid&all=1").json()[0]
    steps = row["transitions"]
    assert steps[-1]["state"] == "terminated"
    billed = steps[-1]["at"] - steps[0]["at"]  # flex: from start to stop, idle included
    assert row["billed_s"] == pytest.approx(billed, abs=1e-3)
    assert row["cost_usd"] == pytest.approx(billed * 0.00019, rel=1e-3)  # one L4, 24GB flex

    endpoint_row = next(r for r in server.get("/admin/endpoints").json() if r["name"] == "paid")
    assert endpoint_row["cost"]["total_usd"] == pytest.approx(row["cost_usd"], rel=1e-6)
    job = server.get(f"/admin/jobs/{done['id']}").json()
    # One job on that worker: it carries all of the worker's cold start and idle time.
    assert job["cost"]["total_usd"] == pytest.approx(row["cost_usd"], rel=1e-2)


ONE_GPU = """
[[hosts]]
name = "box"
cpu_slots = 0
gpus = [{ type = "L4", count = 1 }]
"""


def test_a_parked_worker_gives_its_gpu_to_another_endpoint(server_factory: Any) -> None:
    server: Server = server_factory()
    server.config_extra = ONE_GPU
    for name in ("first", "second"):
        text = endpoint(name, gpu='["24GB"]', max=1, idle="0.3s", flashboot="true")
        server.add_endpoint_text(name, text)
    server.start(wait_workers=False)
    done = server.post("/v2/first/runsync", json={"input": {}}).json()
    assert done["output"]["gpus"] == "0"
    wait_until(lambda: len(live(server, "first", "parked")) == 1, timeout=15)

    # The only GPU is held by first's parked worker: second's worker waits, then takes it.
    other = server.post("/v2/second/runsync", json={"input": {}}).json()
    assert other["status"] == "COMPLETED" and other["output"]["gpus"] == "0"
    history = server.get("/admin/workers?endpoint=first&all=1").json()
    assert history[0]["state"] == "terminated"
    assert "evicted" in history[0]["transitions"][-1]["reason"]
