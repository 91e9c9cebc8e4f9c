"""Group commit: operations queued in one loop iteration share a transaction, yet one failing
operation neither undoes nor fails its neighbours."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from runq.store.sqlite_executor import SYNC_WINDOW_S, SqliteExecutor


@pytest.fixture
async def executor(tmp_path: Path) -> AsyncIterator[SqliteExecutor]:
    db = SqliteExecutor(tmp_path / "t.db")
    db.start()
    await db.run(lambda c: c.execute("CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER)"))
    yield db
    await db.stop()


def _insert(key: str, n: int = 0) -> Callable[[sqlite3.Connection], int]:
    def op(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t (k, n) VALUES (?, ?)", (key, n))
        conn.execute("UPDATE t SET n = n + 1 WHERE k = ?", (key,))  # two statements: atomic
        return n + 1

    return op


async def _rows(db: SqliteExecutor) -> dict[str, int]:
    rows = await db.run(lambda c: c.execute("SELECT k, n FROM t").fetchall(), durable=False)
    return {k: n for k, n in rows}


@pytest.mark.timeout(10)
async def test_a_failing_operation_leaves_its_batch_neighbours_committed(
    executor: SqliteExecutor,
) -> None:
    await executor.run(_insert("taken", 5))
    results = await asyncio.gather(
        executor.run(_insert("a", 1)),
        executor.run(_insert("taken", 9)),  # primary key clash
        executor.run(_insert("b", 2)),
        return_exceptions=True,
    )
    assert results[0] == 2 and results[2] == 3
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert await _rows(executor) == {"taken": 6, "a": 2, "b": 3}


@pytest.mark.timeout(10)
async def test_a_failing_operation_alone_leaves_no_partial_change(
    executor: SqliteExecutor,
) -> None:
    def half_done(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (k, n) VALUES ('half', 1)")
        raise ValueError("second step failed")

    with pytest.raises(ValueError, match="second step"):
        await executor.run(half_done)
    assert await _rows(executor) == {}
    assert await executor.run(_insert("after", 0)) == 1


@pytest.mark.timeout(10)
async def test_a_relaxed_change_is_synced_to_disk_within_the_window(
    executor: SqliteExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    await executor.run(_insert("relaxed", 0), durable=False)
    assert await _rows(executor) == {"relaxed": 1}  # committed: visible at once

    deadline = asyncio.get_running_loop().time() + 5 * SYNC_WINDOW_S + 1
    while not synced and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(SYNC_WINDOW_S / 5)
    assert synced == [str(tmp_path / "t.db-wal")]


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, to be filled by the test (mounting needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounts a tmpfs: needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.timeout(10)
async def test_a_write_that_finds_the_disk_full_fails_alone_and_its_batch_reads_still_answer(
    full_disk: Path,
) -> None:
    db = SqliteExecutor(full_disk / "t.db")
    db.start()
    try:
        await db.run(lambda c: c.execute("CREATE TABLE t (k TEXT PRIMARY KEY, n BLOB)"))
        await db.run(lambda c: c.execute("INSERT INTO t VALUES ('kept', x'00')"))
        with contextlib.suppress(OSError), open(full_disk / "filler", "wb") as filler:
            while True:  # to the last byte
                filler.write(b"\0" * 4096)
                filler.flush()

        def big_write(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO t VALUES ('big', zeroblob(1000000))")

        def read(conn: sqlite3.Connection) -> list[str]:
            return [row[0] for row in conn.execute("SELECT k FROM t")]

        results = await asyncio.gather(
            db.run(big_write, durable=False), db.run(read, durable=False), return_exceptions=True
        )
        assert isinstance(results[0], sqlite3.OperationalError), results
        assert "full" in str(results[0])
        assert results[1] == ["kept"]
    finally:
        await db.stop()
