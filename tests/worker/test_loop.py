"""The worker loop against a fake control plane: real worker processes, real HTTP."""

from __future__ import annotations

import json
import signal
import socket
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from runq.worker.settings import VERSION
from tests.worker.fakeplane import API_KEY, DEADLINE_S, HANDLERS, FakePlane, WorkerProc, worker_env

Start = Callable[..., WorkerProc]
pytestmark = pytest.mark.timeout(60)


def _write_handler(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "handler.py"
    path.write_text("from runq import worker\n" + textwrap.dedent(body))
    return path


def test_echo_round_trip(plane: FakePlane, start_worker: Start) -> None:
    start_worker("native_echo.py")
    plane.submit("j1", {"x": 1})
    done = plane.done("j1")
    assert done.body == {"output": {"echo": {"x": 1}}}
    assert {k: v for k, v in done.query.items() if k != "take"} == {
        "gpu": "cpu",
        "isStream": "false",
    }
    assert int(done.query["take"]) >= 1  # runq's extension: the next jobs come with the answer
    assert done.headers["Authorization"] == API_KEY
    take = plane.of_kind("job-take")[0]
    # runq's extension: the cold-start marks (SDK imported, worker.start called), epoch s.
    imported, loaded = map(float, take.query.pop("boot").split(","))
    assert 0 <= loaded - imported < 60
    assert take.query == {"gpu": "cpu", "job_in_progress": "0"}
    assert take.headers["Authorization"] == API_KEY


def test_queued_jobs_ride_on_the_previous_result_post(
    plane: FakePlane, start_worker: Start
) -> None:
    for name in ("q1", "q2", "q3"):
        plane.submit(name, {"n": name})
    start_worker("native_echo.py")
    assert plane.done("q3").body == {"output": {"echo": {"n": "q3"}}}
    calls = list(plane.calls)
    last = next(i for i, c in enumerate(calls) if c.kind == "job-done" and c.job_id == "q3")
    # One take for q1; q2 came with q1's result post, q3 with q2's.
    assert [c.kind for c in calls[:last] if c.kind.startswith("job-take")] == ["job-take"]
    assert [c.job_id for c in calls[:last] if c.kind == "job-done"] == ["q1", "q2"]


def test_results_of_short_jobs_go_in_groups_with_more_jobs_asked_for(
    plane: FakePlane, start_worker: Start
) -> None:
    for i in range(40):
        plane.submit(f"g{i}", {"n": i})
    start_worker("native_echo.py")
    for i in range(40):
        assert plane.done(f"g{i}").body == {"output": {"echo": {"n": i}}}
    posts = [c for c in plane.calls if c.kind == "job-done-batch"]
    assert posts, "no grouped result post"
    assert all(int(c.query["take"]) >= 0 for c in posts)
    grouped = sum(len(c.body) for c in posts)
    assert len(posts) < grouped  # several results per post
    ids = [c.job_id for c in plane.calls if c.kind == "job-done"]
    assert sorted(ids) == sorted(f"g{i}" for i in range(40))  # each job reported once


def test_a_runpod_server_gets_one_plain_post_per_result(
    plane: FakePlane, start_worker: Start
) -> None:
    plane.runq = False
    for i in range(10):
        plane.submit(f"p{i}", {"n": i})
    start_worker("native_echo.py")
    for i in range(10):
        assert plane.done(f"p{i}").body == {"output": {"echo": {"n": i}}}
    assert not [c for c in plane.calls if c.kind == "job-done-batch"]
    assert len([c for c in plane.calls if c.kind == "job-done"]) == 10


def test_long_jobs_get_no_reserve(plane: FakePlane, start_worker: Start) -> None:
    for name in ("l1", "l2", "l3"):
        plane.submit(name, {"seconds": 0.1})
    start_worker("native_sleep.py")
    posts = [plane.done(name) for name in ("l1", "l2", "l3")]
    # One handler, no reserve: each post asks for exactly the place it frees.
    assert [c.query["take"] for c in posts] == ["1", "1", "1"]


def test_pings_list_running_jobs(plane: FakePlane, start_worker: Start) -> None:
    start_worker("native_sleep.py")
    plane.submit("slow", {"seconds": 1})
    ping = plane.wait_for(lambda calls: [c for c in calls if c.query.get("job_id") == "slow"])
    assert ping[0].path == "/v2/ep/ping/w1"
    assert ping[0].query["runpod_version"] == VERSION
    assert plane.done("slow").body == {"output": {"slept": 1}}


def test_stream_posts_chunks_in_order(plane: FakePlane, start_worker: Start) -> None:
    start_worker("native_stream.py")
    plane.submit("s1", {"n": 3})
    done = plane.done("s1")
    chunks = plane.of_kind("job-stream")
    assert [c.body for c in chunks] == [{"output": {"i": i}} for i in range(3)]
    assert {c.query["isStream"] for c in chunks} == {"false"}
    assert done.query["isStream"] == "true"
    assert done.body == {"output": [{"i": 0}, {"i": 1}, {"i": 2}]}


def test_handler_exception_is_reported(plane: FakePlane, start_worker: Start) -> None:
    start_worker("native_fail.py", RUNPOD_POD_HOSTNAME="host-9")
    plane.submit("f1", {})
    report = json.loads(plane.done("f1").body["error"])
    assert report["error_type"] == "<class 'ValueError'>"
    assert report["error_message"] == "boom"
    assert (report["hostname"], report["worker_id"]) == ("host-9", "w1")


def test_progress_arrives_before_the_result(plane: FakePlane, start_worker: Start) -> None:
    start_worker("native_progress.py")
    plane.submit("p1", {})
    plane.done("p1")
    posts = [c for c in plane.of_kind("job-done") if c.job_id == "p1"]
    assert [c.body for c in posts] == [
        {"status": "IN_PROGRESS", "output": {"step": 1}},
        {"output": {"done": True}},
    ]
    assert posts[0].query["isStream"] == "false"


def test_concurrent_async_jobs_use_batch_take(plane: FakePlane, start_worker: Start) -> None:
    for i in range(3):
        plane.submit(f"c{i}", {"seconds": 1})
    start_worker("native_async_sleep.py", NATIVE_CONCURRENCY="3")
    dones = [plane.done(f"c{i}") for i in range(3)]
    batch = plane.of_kind("job-take-batch")[0]
    assert batch.query["batch_size"] == "3"
    # the three one-second sleeps overlapped
    assert max(d.at for d in dones) - min(d.at for d in dones) < 0.9


def test_stop_cancels_an_async_job_without_a_result(plane: FakePlane, start_worker: Start) -> None:
    start_worker("native_async_sleep.py")
    plane.submit("long", {"seconds": 60})
    plane.wait_for(lambda calls: [c for c in calls if c.query.get("job_id") == "long"])
    plane.stops.put("long")
    # the slot frees at once (a stopped job posts nothing) and the next job runs
    plane.submit("next", {"seconds": 0})
    assert plane.done("next").body == {"output": {"slept": 0}}
    assert [c for c in plane.of_kind("job-done") if c.job_id == "long"] == []


def test_stopped_sync_job_result_is_dropped(plane: FakePlane, start_worker: Start) -> None:
    start_worker("native_sleep.py")
    plane.submit("sync", {"seconds": 2})
    plane.wait_for(lambda calls: [c for c in calls if c.query.get("job_id") == "sync"])
    plane.stops.put("sync")
    plane.submit("after", {"seconds": 0})
    plane.done("after")
    assert [c for c in plane.of_kind("job-done") if c.job_id == "sync"] == []


def test_sigterm_lets_the_running_job_finish(plane: FakePlane, start_worker: Start) -> None:
    worker = start_worker("native_sleep.py")
    plane.submit("t1", {"seconds": 1})
    plane.wait_for(lambda calls: [c for c in calls if c.query.get("job_id") == "t1"])
    worker.proc.send_signal(signal.SIGTERM)
    rc, out = worker.wait()
    assert rc == 0, out
    assert plane.done("t1", timeout=0).body == {"output": {"slept": 1}}


def test_sigint_when_idle_abandons_the_long_poll(plane: FakePlane, start_worker: Start) -> None:
    plane.hold = 30.0  # both long polls would hold far longer than the wait below
    worker = start_worker("native_echo.py")
    plane.wait_for(lambda calls: [c for c in calls if c.kind == "job-take"])
    worker.proc.send_signal(signal.SIGINT)
    rc, out = worker.wait(timeout=5)
    assert rc == 0, out


def test_job_done_retried_on_5xx(plane: FakePlane, start_worker: Start) -> None:
    plane.done_failures = 2
    start_worker("native_echo.py")
    plane.submit("r1", "x")
    plane.wait_for(lambda calls: len([c for c in calls if c.kind == "job-done"]) == 3)
    assert [c.body for c in plane.of_kind("job-done")] == [{"output": {"echo": "x"}}] * 3


def test_worker_waits_for_the_control_plane() -> None:
    with socket.socket() as sock:  # a port nobody listens on yet
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    worker = WorkerProc(HANDLERS / "native_echo.py", worker_env(port))
    try:
        plane = FakePlane(port=port)  # comes up after the worker started polling
        try:
            plane.submit("late", 1)
            assert plane.done("late").body == {"output": {"echo": 1}}
        finally:
            plane.close()
    finally:
        worker.kill()


def test_config_refresh_worker_exits_after_one_job(
    plane: FakePlane, start_worker: Start, tmp_path: Path
) -> None:
    script = _write_handler(
        tmp_path,
        """
        worker.start({"handler": lambda job: job["input"], "refresh_worker": True})
        """,
    )
    worker = start_worker(script)
    plane.submit("once", 5)
    rc, out = worker.wait()
    assert rc == 0, out
    assert plane.done("once", timeout=0).body == {"output": 5, "stopPod": True}


def test_handler_refresh_worker_exits_too(
    plane: FakePlane, start_worker: Start, tmp_path: Path
) -> None:
    script = _write_handler(
        tmp_path,
        """
        worker.start({"handler": lambda job: {"ok": 1, "refresh_worker": True}})
        """,
    )
    worker = start_worker(script)
    plane.submit("once", 5)
    rc, out = worker.wait()
    assert rc == 0, out
    assert plane.done("once", timeout=0).body == {"output": {"ok": 1}, "stopPod": True}


def test_json_logs_with_endpoint_id(plane: FakePlane, tmp_path: Path) -> None:
    env = {**plane.env(), "RUNPOD_ENDPOINT_ID": "ep", "RUNPOD_LOG_LEVEL": "INFO"}
    script = _write_handler(
        tmp_path,
        """
        worker.start({"handler": lambda job: 1, "refresh_worker": True})
        """,
    )
    worker = WorkerProc(script, env)
    plane.submit("lg", 1)
    rc, out = worker.wait()
    assert rc == 0, out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert {"requestId": "lg", "message": "Started.", "level": "INFO"} in lines
    assert {"requestId": "lg", "message": "Finished.", "level": "INFO"} in lines


def test_async_generator_with_progress(
    plane: FakePlane, start_worker: Start, tmp_path: Path
) -> None:
    script = _write_handler(
        tmp_path,
        """
        async def handler(job):
            worker.progress_update(job, "half")  # blocking call from the event loop thread
            yield "a"
            yield "b"

        worker.start({"handler": handler})
        """,
    )
    start_worker(script)
    plane.submit("ag", None)
    done = plane.done("ag")
    assert (done.body, done.query["isStream"]) == ({"output": []}, "true")
    assert [c.body for c in plane.of_kind("job-stream")] == [{"output": "a"}, {"output": "b"}]
    progress = [c.body for c in plane.of_kind("job-done") if c.body.get("status")]
    assert progress == [{"status": "IN_PROGRESS", "output": "half"}]


def test_stop_ends_a_sync_generator_between_chunks(
    plane: FakePlane, start_worker: Start, tmp_path: Path
) -> None:
    script = _write_handler(
        tmp_path,
        """
        import itertools, time

        def handler(job):
            for i in itertools.count():
                yield i
                time.sleep(0.05)

        worker.start({"handler": handler})
        """,
    )
    start_worker(script)
    plane.submit("endless", None)
    plane.wait_for(lambda calls: [c for c in calls if c.kind == "job-stream"])
    plane.stops.put("endless")
    plane.submit("then", None)
    plane.wait_for(lambda calls: [c for c in calls if c.path.endswith("/then")])
    assert [c for c in plane.of_kind("job-done") if c.job_id == "endless"] == []


def test_job_done_survives_a_control_plane_restart() -> None:
    first = FakePlane()
    port = first.port
    worker = WorkerProc(HANDLERS / "native_sleep.py", worker_env(port))
    try:
        first.submit("r", {"seconds": 0.5})
        first.wait_for(lambda calls: [c for c in calls if c.query.get("job_id") == "r"])
        first.close()
        # While "restarting", the port accepts connections and drops them unanswered.
        with socket.socket() as down:
            down.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            down.bind(("127.0.0.1", port))
            down.listen()
            down.settimeout(DEADLINE_S)
            dropped_done = 0
            while dropped_done < 2:
                conn, _ = down.accept()
                with conn:
                    conn.settimeout(DEADLINE_S)
                    dropped_done += b"/job-done/" in conn.recv(65536)
        second = FakePlane(port=port)
        try:
            assert second.done("r").body == {"output": {"slept": 0.5}}
        finally:
            second.close()
    finally:
        worker.kill()
