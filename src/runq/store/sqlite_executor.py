"""One writer thread per SQLite database, committing many operations per fsync.

Why: every state change must be durable before we answer, and an fsync per change caps the
store at a few thousand changes per second on a good disk. Operations queue up while the
previous batch syncs; the next batch commits them all with one fsync (group commit). Each
operation runs inside a SAVEPOINT so that one failing operation does not undo its neighbours.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
Operation = Callable[[sqlite3.Connection], Any]

_MAX_BATCH = 512
_STOP = object()


class SqliteExecutor:
    """Runs operations on one connection in a dedicated thread; awaitable from asyncio."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._open_error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="runq-sqlite", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._open_error is not None:
            raise self._open_error

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    async def run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run `operation(conn)` in the next batch; return once that batch has committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((operation, future, loop))
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

    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:  # reported to start()
            self._open_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch = [first]
                stopping = False
                while len(batch) < _MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stopping = True
                        break
                    batch.append(item)
                self._run_batch(conn, batch)
                if stopping:
                    return
        finally:
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        outcomes: list[tuple[asyncio.Future[Any], asyncio.AbstractEventLoop, Any, bool]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for operation, future, loop in batch:
                conn.execute("SAVEPOINT op")
                try:
                    value = operation(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    outcomes.append((future, loop, exc, False))
                else:
                    outcomes.append((future, loop, value, True))
                conn.execute("RELEASE op")
            conn.execute("COMMIT")
        except Exception as exc:
            # The commit itself failed (disk full, I/O error): nothing in the batch happened.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [(future, loop, exc, False) for _, future, loop in batch]
        # One wake-up per event loop, not per operation: waking a loop costs a pipe write.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, bool]]] = {}
        for future, loop, value, ok in outcomes:
            by_loop.setdefault(loop, []).append((future, value, ok))
        for loop, settled in by_loop.items():
            loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list[tuple[asyncio.Future[Any], Any, bool]]) -> None:
    for future, value, ok in settled:
        if future.done():  # the caller was cancelled while we committed
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
