"""`runq serve` with `store = "postgresql://..."`: jobs run, and survive a kill -9 of the
control plane, with PostgreSQL holding them instead of the SQLite file."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import Server
from tests.postgres import PostgresServer

pytestmark = pytest.mark.timeout(120)


def test_serve_on_postgres_runs_jobs_and_keeps_them_across_a_crash(
    server_factory: Callable[[], Server], postgres_server: PostgresServer
) -> None:
    server = server_factory()
    server.config_extra = f'store = "{postgres_server.new_database()}"\n'
    server.add_endpoint("sleepy", "native_sleep.py")
    server.start()

    done = server.run("sleepy", {"input": {"seconds": 0}})
    assert server.wait_status("sleepy", done, {"COMPLETED"})["status"] == "COMPLETED"
    busy = server.run("sleepy", {"input": {"seconds": 2}})
    server.wait_status("sleepy", busy, {"IN_PROGRESS"})
    queued = [server.run("sleepy", {"input": {"seconds": 0}}) for _ in range(3)]

    server.kill9()
    server.start()

    assert server.status("sleepy", done)["status"] == "COMPLETED"
    for job_id in [busy, *queued]:
        final = server.wait_status("sleepy", job_id, {"COMPLETED", "FAILED"}, timeout=40)
        assert final["status"] == "COMPLETED", final
    assert server.health("sleepy")["jobs"]["completed"] == 5


def test_serve_refuses_an_unknown_store_naming_the_field(
    server_factory: Callable[[], Server],
) -> None:
    server = server_factory()
    server.config_extra = 'store = "mysql://nope"\n'
    with pytest.raises(AssertionError, match=r"(?s)server\.store.*mysql://nope"):
        server.start()
