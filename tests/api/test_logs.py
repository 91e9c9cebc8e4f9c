"""Workers' logs through the CLI and the admin API against a live `runq serve`: a worker's
lines, an endpoint's, the lines of one job, followed live while a job prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from runq.fleet.logread import Follower, read_lines
from runq.fleet.worker_logs import CappedLog, prune_logs
from tests.conftest import Server
from tests.web.conftest import signed_in

pytestmark = pytest.mark.timeout(120)


def runq(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runq.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", **env},
    )


def test_stamped_lines_read_back_by_time(tmp_path: Path) -> None:
    clock = iter([100.0, 101.0, 102.0])
    log = CappedLog(tmp_path / "e" / "w1.log", 10_000, 1, clock=lambda: next(clock))
    log.write_lines(b"first\nsec")  # the second line is not complete yet
    log.write_lines(b"ond\nthird\n")
    log.write_lines(b"no newline at the end")
    log.close()  # the last piece is written at the end
    lines = read_lines(tmp_path, "e", ["w1"])
    assert [(line.at, line.line) for line in lines] == [
        (100.0, "first"),
        (101.0, "second"),
        (101.0, "third"),
        (102.0, "no newline at the end"),
    ]
    assert [line.line for line in read_lines(tmp_path, "e", ["w1"], since=101, until=101)] == [
        "second",
        "third",
    ]
    assert [line.line for line in read_lines(tmp_path, "e", ["w1"], tail=1)] == [
        "no newline at the end"
    ]


def test_a_follower_reads_across_a_rotation(tmp_path: Path) -> None:
    log = CappedLog(tmp_path / "e" / "w1.log", 4096, 1)
    follower = Follower(tmp_path / "e" / "w1.log", "w1")
    log.write_lines(b"a\n")
    assert [line.line for line in follower.poll()] == ["a"]
    log.write_lines(b"x" * 5000 + b"\n")  # past the cap: the next line starts a new file
    log.write_lines(b"b\n")
    assert [line.line for line in follower.poll()][-1] == "b"
    log.close()


@pytest.mark.slow
def test_logs_of_a_worker_a_job_and_followed_live(server_factory: Any) -> None:
    server: Server = server_factory()
    server.add_endpoint("talk", "native_talk.py")
    server.start()
    env = {"RUNQ_URL": server.url, "RUNQ_API_KEY": server.key}
    (worker,) = [w["id"] for w in server.workers("talk")]

    # Follow the endpoint's logs while a job prints.
    seen: list[dict[str, Any]] = []
    following = threading.Event()

    def follow() -> None:
        with httpx.stream(
            "GET",
            f"{server.url}/admin/endpoints/talk/logs",
            params={"follow": "true", "tail": "0"},
            headers=server.headers,
            timeout=httpx.Timeout(10, read=60),
        ) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for raw in response.iter_lines():
                if raw.startswith(": following"):
                    following.set()
                elif raw.startswith("data: "):
                    seen.append(json.loads(raw[6:]))
                    if any("step 3 of 3" in s["line"] for s in seen):
                        return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    assert following.wait(20)
    job = server.run("talk", {"input": {"steps": 3, "seconds": 0.3}})
    server.wait_status("talk", job, {"COMPLETED"})
    thread.join(30)
    assert not thread.is_alive(), "the followed stream never showed the job's last line"
    lines = [s["line"] for s in seen]
    assert any("step 1 of 3" in line for line in lines), lines
    assert all(s["worker"] == worker and isinstance(s["at"], float) for s in seen)

    # The job's own lines: what its worker printed while it ran it, nothing from before.
    job_lines = server.get(f"/admin/jobs/{job}/logs").json()
    assert job_lines["worker"] == worker
    texts = [line["line"] for line in job_lines["lines"]]
    assert [t for t in texts if "step" in t and "of 3" in t][:3] == [
        f"step {i} of 3" for i in (1, 2, 3)
    ]
    before = server.get(f"/admin/workers/{worker}/logs").json()["lines"]
    assert len(texts) < len(before)  # the worker's start-up lines are not the job's

    # Through the CLI: a worker's log, a job's, and JSON for scripts.
    by_worker = runq("logs", "talk", "--worker", worker, env=env)
    assert by_worker.returncode == 0, by_worker.stderr
    assert "step 2 of 3" in by_worker.stdout
    by_job = runq("logs", "talk", "--job", job, "--json", env=env)
    assert by_job.returncode == 0, by_job.stderr
    rows = [json.loads(line) for line in by_job.stdout.splitlines()]
    assert any(row["line"] == "step 3 of 3" for row in rows)
    recent = runq("logs", "talk", "--since", "1h", "--tail", "1", "--json", env=env)
    assert len(recent.stdout.splitlines()) == 1

    # Bad input: 400 naming the field; unknown ids: 404.
    assert server.get("/admin/endpoints/talk/logs?since=yesterday").status_code == 400
    assert "since" in server.get("/admin/endpoints/talk/logs?since=x").json()["error"]
    assert server.get("/admin/endpoints/talk/logs?tail=-1").status_code == 400
    assert server.get("/admin/workers/nope-123/logs").status_code == 404
    assert server.get("/admin/workers/..%2F..%2Fetc/logs").status_code == 404
    assert server.get("/admin/jobs/no-such-job/logs").status_code == 404

    # The dashboard's worker page follows the same log, signed in by its session cookie.
    with signed_in(server) as browser:
        page = browser.get(f"/workers/{worker}/log")
        assert page.status_code == 200 and "data-follow" in page.text
        assert browser.get("/endpoints/talk/live").text.count(f"/workers/{worker}/log") == 1
        with browser.stream("GET", f"/workers/{worker}/log/stream?tail=50") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for raw in stream.iter_lines():
                if raw.startswith("data: ") and "step 3 of 3" in raw:
                    break
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.get(f"/workers/{worker}/log/stream").status_code == 401

    # Kept after the worker ends.
    server.stop()
    assert (server.data_dir / "logs" / "talk" / f"{worker}.log").read_text().count("step") >= 3


def test_ended_workers_logs_go_after_their_retention_and_past_the_total(tmp_path: Path) -> None:
    folder = tmp_path / "e"
    folder.mkdir()
    ages = {"old.log": 9_000, "old.log.1": 9_500, "live.log": 9_999, "new.log": 10, "mid.log": 500}
    for name, age in ages.items():
        path = folder / name
        path.write_bytes(b"x" * 100)
        os.utime(path, (10_000 - age, 10_000 - age))
    # 1 h retention: the old worker's two files go; the live worker's stays however old.
    assert prune_logs(tmp_path, 10_000, 3600, 10**9, live={"live"}) == 2
    assert sorted(p.name for p in folder.iterdir()) == ["live.log", "mid.log", "new.log"]
    # Past the total (300 bytes held, 200 allowed): the oldest ended one goes first.
    assert prune_logs(tmp_path, 10_000, 3600, 200, live={"live"}) == 1
    assert sorted(p.name for p in folder.iterdir()) == ["live.log", "new.log"]
