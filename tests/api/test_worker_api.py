"""The worker routes of a live `runq serve`, called the way a remote worker would (admin key)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import Server, free_port

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module. Its own worker is kept busy with a long job, so that jobs
    stay queued for the remote workers the tests play (each test uses its own worker id)."""
    s = Server(root=tmp_path_factory.mktemp("worker-api"), port=free_port())
    s.add_endpoint("sleepy", "native_sleep.py")
    s.start()
    hog = s.run("sleepy", {"input": {"seconds": 300}})
    s.wait_status("sleepy", hog, {"IN_PROGRESS"})
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(autouse=True)
def empty_queue(server: Server) -> None:
    """Each test starts with nothing queued (a test may leave jobs behind on purpose)."""
    assert server.post("/v2/sleepy/purge-queue").status_code == 200


def test_a_result_post_asking_for_more_gets_the_next_job_once(server: Server) -> None:
    base = "/v2/sleepy"
    first = server.run("sleepy", {"input": {"seconds": 0}})
    taken = server.get(f"{base}/job-take/remote-1?job_in_progress=0")
    assert taken.status_code == 200 and taken.json()["id"] == first
    second = server.run("sleepy", {"input": {"seconds": 0}})

    done = server.post(
        f"{base}/job-done/remote-1/{first}?isStream=false&take=1", json={"output": 1}
    )
    assert done.status_code == 200
    jobs = done.json()["jobs"]
    assert [job["id"] for job in jobs] == [second]
    assert jobs[0]["input"] == {"seconds": 0}
    assert server.status("sleepy", second)["status"] == "IN_PROGRESS"

    # The same post again (a retry after a lost answer) takes nothing more.
    third = server.run("sleepy", {"input": {"seconds": 0}})
    again = server.post(f"{base}/job-done/remote-1/{first}?take=1", json={"output": 1})
    assert again.json() == {"jobs": []}
    assert server.status("sleepy", third)["status"] == "IN_QUEUE"

    # Without `take` (the runpod SDK) the answer is the plain empty object.
    plain = server.post(f"{base}/job-done/remote-1/{second}?isStream=false", json={"output": 2})
    assert plain.json() == {}
    assert server.status("sleepy", first)["output"] == 1
    assert server.status("sleepy", second)["output"] == 2


def test_a_bad_take_count_is_refused_and_the_result_kept(server: Server) -> None:
    job_id = server.run("sleepy", {"input": {"seconds": 0}})
    assert server.get("/v2/sleepy/job-take/remote-2").json()["id"] == job_id
    bad = server.post(f"/v2/sleepy/job-done/remote-2/{job_id}?take=many", json={"output": 3})
    assert bad.status_code == 400
    assert "take" in bad.json()["error"]
    good = server.post(f"/v2/sleepy/job-done/remote-2/{job_id}", json={"output": 3})
    assert good.status_code == 200
    assert server.status("sleepy", job_id)["status"] == "COMPLETED"


def test_a_group_of_results_is_recorded_together_and_brings_the_next_job(server: Server) -> None:
    base = "/v2/sleepy"
    first, second = (server.run("sleepy", {"input": {"seconds": 0}}) for _ in range(2))
    taken = server.get(f"{base}/job-take-batch/remote-3?batch_size=2").json()
    assert sorted(job["id"] for job in taken) == sorted([first, second])
    waiting = server.run("sleepy", {"input": {"seconds": 0}})

    group = [
        {"id": first, "result": {"output": "one"}},
        {"id": second, "result": {"error": "two failed"}},
    ]
    reply = server.post(f"{base}/job-done-batch/remote-3?take=4", json=group)
    assert reply.status_code == 200
    assert [job["id"] for job in reply.json()["jobs"]] == [waiting]
    assert server.status("sleepy", first)["output"] == "one"
    failed = server.status("sleepy", second)
    assert (failed["status"], failed["error"]) == ("FAILED", "two failed")


@pytest.mark.parametrize(
    "body",
    [b'{"id": "x"}', b'[{"result": 1}]', b"[1]", b"not json"],
    ids=["not-a-list", "no-id", "not-an-object", "malformed"],
)
def test_a_malformed_group_is_refused_whole(server: Server, body: bytes) -> None:
    worker = f"remote-{uuid.uuid4().hex[:8]}"
    job_id = server.run("sleepy", {"input": {"seconds": 0}})
    assert server.get(f"/v2/sleepy/job-take/{worker}").json()["id"] == job_id
    reply = server.post(f"/v2/sleepy/job-done-batch/{worker}", content=body)
    assert reply.status_code == 400
    assert reply.json()["error"]
    assert server.status("sleepy", job_id)["status"] == "IN_PROGRESS"
