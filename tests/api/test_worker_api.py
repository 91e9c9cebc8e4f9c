"""The worker routes of a live `runq serve`, called the way a remote worker would (admin key)."""

from __future__ import annotations

import pytest

from tests.conftest import Server

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def server(server_factory) -> Server:  # type: ignore[no-untyped-def]
    s = server_factory()
    s.add_endpoint("sleepy", "native_sleep.py")
    return s.start()


def _busy_managed_worker(server: Server) -> str:
    """Occupies the endpoint's own worker so that jobs stay queued for the remote one."""
    job_id = server.run("sleepy", {"input": {"seconds": 60}})
    server.wait_status("sleepy", job_id, {"IN_PROGRESS"})
    return job_id


def test_a_result_post_asking_for_more_gets_the_next_job_once(server: Server) -> None:
    hog = _busy_managed_worker(server)
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
    server.post(f"{base}/cancel/{hog}")


def test_a_bad_take_count_is_refused_and_the_result_kept(server: Server) -> None:
    hog = _busy_managed_worker(server)
    job_id = server.run("sleepy", {"input": {"seconds": 0}})
    assert server.get("/v2/sleepy/job-take/remote-2").json()["id"] == job_id
    bad = server.post(f"/v2/sleepy/job-done/remote-2/{job_id}?take=many", json={"output": 3})
    assert bad.status_code == 400
    assert "take" in bad.json()["error"]
    good = server.post(f"/v2/sleepy/job-done/remote-2/{job_id}", json={"output": 3})
    assert good.status_code == 200
    assert server.status("sleepy", job_id)["status"] == "COMPLETED"
    server.post(f"/v2/sleepy/cancel/{hog}")
