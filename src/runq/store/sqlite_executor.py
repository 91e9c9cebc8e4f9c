"""Runs SQLite operations for one database in batches: many operations per fsync.

Why: state changes must reach the disk, and an fsync per change caps the store at a few
thousand changes per second (and blocks the loop for 0.2-0.3 ms each on this kind of disk).
Operations that arrive while the event loop is busy are committed together by one transaction
and one fsync (group commit). When one operation fails, the batch is rolled back and run again
with a SAVEPOINT per operation, so that the failure does not undo its neighbours (savepoints on
every batch would double the statements).

Two kinds of durability. A durable operation (accepting a job, a client's cancel) is synced
before its caller resumes. A relaxed one (a worker's result, a take) is committed at once,
safe against a crash of the process, and synced within SYNC_WINDOW_S: by the next durable batch,
which syncs the whole WAL, or by an fsync of the WAL when that window runs out. A power cut
inside the window can undo such changes; the job is then run again (at-least-once), while no
accepted job can be lost.

Why on the event loop thread and not a thread of its own: a batch costs a few hundred
microseconds (mostly the fsync), while handing work to another thread and back costs as much in
wake-ups and GIL hand-offs; under load the GIL convoy made every request slower. Measured again
with only the COMMIT (the fsync) on a thread, the loop free meanwhile: no gain in throughput and
about 0.1 ms more CPU per job, so it stays inline.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
Operation = Callable[[sqlite3.Connection], Any]
Batch = list[tuple[Operation, "asyncio.Future[Any]"]]
Outcomes = list[tuple["asyncio.Future[Any]", Any, bool]]  # (future, value or error, ok)
SYNC_WINDOW_S = 0.05  # relaxed changes reach the disk within this long


class SqliteExecutor:
    """Queues operations and commits them in batches on the running event loop."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._pending: Batch = []
        self._scheduled = False
        self._durable = False  # does the pending batch hold a change that must be synced?
        self._synchronous = "FULL"
        self._unsynced = False  # relaxed changes committed since the last sync
        self._sync_timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._conn = self._connect()

    async def stop(self) -> None:
        """Commits what is queued and closes the database."""
        if self._pending:
            self._flush()
        self._sync_wal()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def run(self, operation: Callable[[sqlite3.Connection], T], durable: bool = True) -> T:
        """Run `operation(conn)` in the next batch; return once that batch has committed.

        `durable=False` is for changes whose loss in a power cut costs only a re-run (a take, a
        worker's result): they are synced within SYNC_WINDOW_S, not before the caller resumes.
        """
        if self._conn is None:
            raise RuntimeError("the store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((operation, future))
        self._durable = self._durable or durable
        if not self._scheduled:
            self._scheduled = True
            # call_soon runs after the callbacks already ready: whatever else this loop
            # iteration enqueues joins the same batch.
            loop.call_soon(self._flush)
        return await future

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is fsynced at every commit, so an acknowledged change survives a crash
        # of the machine, not only of the process. Group commit keeps that affordable.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        durable, self._durable = self._durable, False
        conn = self._conn
        if not batch:
            return
        if conn is None:
            _settle([(future, RuntimeError("the store is closed"), False) for _, future in batch])
            return
        try:
            synchronous = "FULL" if durable else "NORMAL"
            if synchronous != self._synchronous:
                conn.execute(f"PRAGMA synchronous={synchronous}")
                self._synchronous = synchronous
            changes = conn.total_changes
            outcomes = _execute(conn, batch, isolate=False) or _execute(conn, batch, isolate=True)
            conn.execute("COMMIT")
        except Exception as exc:
            # The commit itself failed (disk full, I/O error): nothing in the batch happened.
            # Run each operation alone, so that one write that finds no room does not fail
            # the reads and the smaller writes that shared its batch.
            _rollback(conn)
            outcomes = (
                [_alone(conn, item) for item in batch]
                if len(batch) > 1
                else [(batch[0][1], exc, False)]
            )
            if any(ok for _, _, ok in outcomes):  # some committed, each synced as the batch's
                self._after_commit(durable, wrote=True)
        else:
            self._after_commit(durable, wrote=conn.total_changes != changes)
        _settle(outcomes)

    def _after_commit(self, durable: bool, wrote: bool) -> None:
        if durable:
            # FULL synced the WAL, and with it every relaxed change before this batch.
            self._unsynced = False
            if self._sync_timer is not None:
                self._sync_timer.cancel()
                self._sync_timer = None
        elif wrote:
            self._unsynced = True
            if self._sync_timer is None:
                loop = asyncio.get_running_loop()
                self._sync_timer = loop.call_later(SYNC_WINDOW_S, self._sync_wal)

    def _sync_wal(self) -> None:
        """fsync the WAL file: the relaxed commits in it become durable, as FULL would make them."""
        self._sync_timer = None
        if not self._unsynced or self._conn is None:
            return
        self._unsynced = False
        fd = os.open(f"{self._path}-wal", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _execute(conn: sqlite3.Connection, batch: Batch, isolate: bool) -> Outcomes:
    """Runs the batch in one transaction, left open for the caller to commit.

    Optimistic (`isolate=False`): no savepoints, which would cost two statements per operation;
    if an operation raises, everything is rolled back and [] says "run it again isolated".
    Operations are closures over their arguments and the connection, so running one twice, the
    first time undone, is the same as running it once. Isolated: each operation in a SAVEPOINT,
    so a failing one does not undo its neighbours. A batch of one needs no savepoint: its
    failure rolls back the transaction (which is then committed empty).
    """
    outcomes: Outcomes = []
    conn.execute("BEGIN IMMEDIATE")
    if not isolate or len(batch) == 1:
        try:
            for operation, future in batch:
                outcomes.append((future, operation(conn), True))
        except Exception as exc:
            conn.execute("ROLLBACK")
            if len(batch) == 1:
                conn.execute("BEGIN IMMEDIATE")
                return [(batch[0][1], exc, False)]
            return []
        return outcomes
    for operation, future in batch:
        conn.execute("SAVEPOINT op")
        try:
            value = operation(conn)
        except Exception as exc:
            conn.execute("ROLLBACK TO op")
            outcomes.append((future, exc, False))
        else:
            outcomes.append((future, value, True))
        conn.execute("RELEASE op")
    return outcomes


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _alone(
    conn: sqlite3.Connection, item: tuple[Operation, asyncio.Future[Any]]
) -> tuple[asyncio.Future[Any], Any, bool]:
    """Runs one operation in a transaction of its own and commits it."""
    operation, future = item
    try:
        conn.execute("BEGIN IMMEDIATE")
        value = operation(conn)
        conn.execute("COMMIT")
    except Exception as exc:
        _rollback(conn)
        return (future, exc, False)
    return (future, value, True)


def _settle(outcomes: Outcomes) -> None:
    for future, value, ok in outcomes:
        if future.done():  # the caller was cancelled meanwhile
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
