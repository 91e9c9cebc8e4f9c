"""SQLite migrations: a database made by an older runq is brought up to date in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from runq.core.job import JobStatus
from runq.store.sqlite import SqliteJobStore
from runq.store.sqlite_schema import MIGRATIONS


def make_version_1(path: Path) -> None:
    """The schema as runq made it before API keys (migration 1 only), with one queued job."""
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO jobs (id, endpoint, status, input, ttl_s, created_at) "
        "VALUES ('old-job', 'echo', 'IN_QUEUE', '{\"v\": 1}', 86400, 1000)"
    )
    conn.commit()
    conn.close()


async def test_a_version_1_database_gains_the_api_keys_table_and_keeps_its_jobs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runq.db"
    make_version_1(path)

    store = SqliteJobStore(path, clock=lambda: 2000.0)
    await store.open()
    try:
        old = await store.get("old-job")
        assert old is not None and (old.status, old.input) == (JobStatus.IN_QUEUE, {"v": 1})
        key = await store.create_key("ci", "a" * 64, ("admin",))
        assert await store.api_keys() == [key]
    finally:
        await store.close()

    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    finally:
        conn.close()


async def test_a_version_2_database_gains_job_times_from_its_ended_jobs(tmp_path: Path) -> None:
    path = tmp_path / "runq.db"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:2]:
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute(
        "INSERT INTO jobs (id, endpoint, status, input, ttl_s, created_at, started_at, "
        "finished_at) VALUES ('done', 'echo', 'COMPLETED', '{}', 86400, 1000, 1002, 1007)"
    )
    conn.execute(
        "INSERT INTO jobs (id, endpoint, status, input, ttl_s, created_at) "
        "VALUES ('waiting', 'echo', 'IN_QUEUE', '{}', 86400, 1000)"
    )
    conn.commit()
    conn.close()

    store = SqliteJobStore(path, clock=lambda: 2000.0)
    await store.open()
    try:
        window = await store.job_window("echo", 0, 2000)
        # The ended job came across with its times (2 s waiting, 5 s running); the queued not.
        assert (window.ended, window.delay.p50, window.execution.p50) == (1, 2.0, 5.0)
    finally:
        await store.close()
