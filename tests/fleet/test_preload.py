"""Preloaded start ([model] preload): workers forked from a template that already holds the
model serve jobs, start much faster than plain ones, are retried when killed, and leave no
process behind; a template that cannot start falls back to plain starts."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server, wait_until

ENDPOINT = """
name = "NAME"
[worker]
command = ["{python}", "{handlers}/HANDLER"]
env = { INIT_SECONDS = "1.5" }
[scaling]
active_workers = 1
max_workers = 2
scaler = "request_count"
requests_per_worker = 1
[model]
preload = PRELOAD
"""


def add(server: Server, name: str, preload: bool, handler: str = "native_preload.py") -> None:
    text = ENDPOINT.replace("NAME", name).replace("HANDLER", handler)
    server.add_endpoint_text(name, text.replace("PRELOAD", str(preload).lower()))


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def second_worker(server: Server, endpoint: str, first: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        return next(
            (
                w
                for w in server.workers(endpoint)
                if w["id"] != first and w["cold_start_s"] is not None
            ),
            None,
        )

    return wait_until(ready, timeout=30)  # type: ignore[no-any-return]


@pytest.mark.timeout(90)
def test_forked_workers_serve_jobs_start_fast_and_are_retried_when_killed(
    server_factory: Any,
) -> None:
    server: Server = server_factory()
    add(server, "plain", preload=False)
    add(server, "pre", preload=True)
    server.start()
    first = {name: server.workers(name)[0]["id"] for name in ("plain", "pre")}
    # A long job holds each endpoint's one worker; a second job makes the scaler add one.
    busy = {name: server.run(name, {"input": {"seconds": 3}}) for name in first}
    for name, job_id in busy.items():
        server.wait_status(name, job_id, {"IN_PROGRESS"})
    queued = {name: server.run(name, {"input": {}}) for name in first}

    plain, forked = (second_worker(server, name, first[name]) for name in ("plain", "pre"))
    assert forked["forked"] and not plain["forked"]
    # The plain start imports the handler and sleeps 1.5 s in its init again; the fork does not.
    assert forked["cold_start_s"] < plain["cold_start_s"] / 2, (forked, plain)
    assert forked["cold_start"]["load_s"] == 0.0
    assert plain["cold_start"]["load_s"] >= 1.4

    outputs = [
        server.wait_status("pre", job_id, {"COMPLETED"})["output"]
        for job_id in (busy["pre"], queued["pre"])
    ]
    template = outputs[0]["loaded_by"]
    # Two forked workers answered, each its own process, both holding the template's model.
    assert {o["worker_id"] for o in outputs} == {first["pre"], forked["id"]}
    assert len({o["pid"] for o in outputs}) == 2 and template not in {o["pid"] for o in outputs}
    assert all(o["loaded_by"] == template and o["model_bytes"] == 1 << 20 for o in outputs)
    assert all(o["cuda"] == "" for o in outputs)  # each child got its own (empty: a CPU pool)

    # Why each queued job waited: split over its worker's phases, adding up to its delay.
    for name in ("plain", "pre"):
        job = server.get(f"/admin/jobs/{queued[name]}").json()
        split = job["delay_breakdown"]
        assert sum(split.values()) == pytest.approx(job["delayTime"] / 1000, abs=0.01)
        if name == "pre":
            assert split["model_load_s"] == 0.0  # its forked worker loaded nothing
    metrics = server.get("/metrics").text
    assert 'runq_worker_cold_start_seconds_count{endpoint="pre",phase="load"}' in metrics

    # Killing a forked worker mid-job is noticed: its job goes back to the queue and completes.
    job_id = server.run("pre", {"input": {"seconds": 1}})
    running = server.wait_status("pre", job_id, {"IN_PROGRESS"})
    victim = next(w for w in server.workers("pre") if w["id"] == running["workerId"])
    os.kill(victim["pid"], signal.SIGKILL)
    final = server.wait_status("pre", job_id, {"COMPLETED", "FAILED"}, timeout=40)
    assert final["status"] == "COMPLETED" and final["retries"] == 1
    assert final["workerId"] != victim["id"]

    pids = [template, *(w["pid"] for w in server.workers("pre"))]
    assert all(alive(pid) for pid in pids)
    server.stop()
    wait_until(lambda: not any(alive(pid) for pid in pids), timeout=10)


@pytest.mark.timeout(60)
def test_a_template_that_dies_in_its_init_falls_back_to_plain_starts(
    server_factory: Any,
) -> None:
    server: Server = server_factory()
    add(server, "fallback", preload=True, handler="native_no_template.py")
    server.start()
    reply = server.post("/v2/fallback/runsync", json={"input": {"x": 1}}).json()
    assert reply["status"] == "COMPLETED" and reply["output"]["echo"] == {"x": 1}
    assert [w["forked"] for w in server.workers("fallback")] == [False]
    log = (server.data_dir / "logs" / "fallback" / "template.log").parent
    assert (log / "template.log").exists()
    serve_log = (server.root / "serve.log").read_text()
    assert "preload of fallback: the template exited with code 3" in serve_log
