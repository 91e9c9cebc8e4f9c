"""Two `runq serve` replicas on one PostgreSQL: both serve the client and worker APIs, one runs
the fleet, and the other takes over when it dies."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.conftest import Server, endpoint_toml, wait_until
from tests.postgres import PostgresServer

pytestmark = [pytest.mark.multinode, pytest.mark.timeout(150)]


def workers_of(server: Server, endpoint: str) -> int:
    workers = server.health(endpoint)["workers"]
    return int(workers["idle"] + workers["running"])


def test_a_standby_serves_clients_and_takes_over_the_fleet_when_the_leader_dies(
    server_factory: Callable[[], Server], postgres_server: PostgresServer
) -> None:
    dsn = postgres_server.new_database()
    leader, standby = server_factory(), server_factory()
    for server in (leader, standby):
        server.config_extra = f'store = "{dsn}"\n'
        server.add_endpoint("sleepy", "native_sleep.py")
    # The leader's workers call the standby (as through a load balancer in front of both): the
    # standby forwards every worker call to the leader.
    leader.config_extra += f'worker_url = "{standby.url}"\n'
    leader.start(wait_workers=False)
    wait_until(lambda: "holds the scheduler lock" in (leader.root / "serve.log").read_text())
    standby.start(wait_workers=False)
    leader.wait_workers("sleepy", 1)  # ready: its first calls went through the standby
    assert workers_of(standby, "sleepy") == 0  # standing by: no fleet of its own

    # A job queued through the standby is run by the leader's worker, and both see it.
    through_standby = standby.run("sleepy", {"input": {"seconds": 0}})
    done = standby.wait_status("sleepy", through_standby, {"COMPLETED"}, timeout=30)
    assert done["status"] == "COMPLETED"
    assert leader.status("sleepy", through_standby)["status"] == "COMPLETED"
    sync = standby.post("/v2/sleepy/runsync", json={"input": {"seconds": 0}}).json()
    assert sync["status"] == "COMPLETED"

    # A running job cancelled through the standby stops on the leader's only worker at once
    # (NOTIFY), so the next job need not wait out the 60 s sleep.
    long = leader.run("sleepy", {"input": {"seconds": 60}})
    leader.wait_status("sleepy", long, {"IN_PROGRESS"})
    assert standby.post(f"/v2/sleepy/cancel/{long}").json()["status"] == "CANCELLED"
    quick = standby.run("sleepy", {"input": {"seconds": 0}})
    assert standby.wait_status("sleepy", quick, {"COMPLETED"}, timeout=20)["status"] == "COMPLETED"

    # An endpoint deployed through the standby is served by the leader's fleet, and a worker
    # count changed through the standby is the leader's at once.
    extra = standby.root / "echo.toml"
    text = endpoint_toml("echo2", "native_echo.py", workers=0)
    extra.write_text(text.replace("max_workers = 1", "max_workers = 2"))
    deployed = standby.post("/admin/endpoints", json={"path": str(extra)})
    assert deployed.status_code == 200, deployed.text
    echoed = standby.post("/v2/echo2/runsync", json={"input": {"x": 1}}, timeout=60).json()
    assert echoed["status"] == "COMPLETED", echoed
    changed = standby.post(
        "/admin/endpoints/echo2/workers", json={"active_workers": 2, "max_workers": 2}
    )
    assert changed.status_code == 200, changed.text
    wait_until(lambda: workers_of(leader, "echo2") == 2, timeout=30)

    # An endpoint undeployed through the standby stops on the leader's fleet too (NOTIFY), and
    # neither replica takes its jobs any more.
    gone = httpx.delete(f"{standby.url}/admin/endpoints/echo2", headers=standby.headers)
    assert gone.status_code == 200, gone.text
    wait_until(lambda: leader.workers("echo2") == [], timeout=30)
    for server in (leader, standby):
        refused = server.post("/v2/echo2/run", json={"input": {"x": 2}})
        assert refused.status_code == 410, refused.text

    running = leader.run("sleepy", {"input": {"seconds": 2}})
    leader.wait_status("sleepy", running, {"IN_PROGRESS"})
    leader.kill9()

    # The standby takes the lock, starts workers, and every job ends.
    wait_until(lambda: workers_of(standby, "sleepy") >= 1, timeout=30)
    after = standby.run("sleepy", {"input": {"seconds": 0}})
    for job_id in (running, after):
        final = standby.wait_status("sleepy", job_id, {"COMPLETED", "FAILED"}, timeout=60)
        assert final["status"] == "COMPLETED", final
    assert "holds the scheduler lock" in (standby.root / "serve.log").read_text()
