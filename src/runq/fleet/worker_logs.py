"""A worker's log, capped: what it prints is read from a pipe and written here, rotated at a
size, so that no handler can fill the disk the database lives on.

A worker writes into a pipe, never into the file: runq copies each chunk, rotates the file at
`max_bytes` (keeping `backups` old ones, `NAME.log.1` the newest) and, when the disk is full,
drops the chunk and counts it rather than block the worker. Each line is written with the time
runq read it, `2026-12-05T07:50:22.123456Z <line>` (as `docker logs -t` shows), so that the
lines a worker printed while it ran a job can be found again (`runq.fleet.logread`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("runq.fleet")

CHUNK = 64 * 1024
MAX_LINE = 64 * 1024  # a longer line is cut into pieces of this size
FILE_MODE = 0o600  # worker logs hold inputs and outputs: the data dir's owner only


def stamp(at: float) -> bytes:
    """The prefix of a line read at `at` (epoch seconds), UTC with microseconds.

    >>> stamp(0.5)
    b'1970-01-01T00:00:00.500000Z '
    """
    moment = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ ").encode()


class CappedLog:
    """An append-only file rotated at `max_bytes`: `path`, `path.1` ... `path.<backups>`.

    `write_lines` stamps each line; `write` appends bytes as they are."""

    def __init__(
        self,
        path: Path,
        max_bytes: int,
        backups: int,
        clock: Callable[[], float] = time.time,
        on_write: Callable[[bytes], None] | None = None,
    ) -> None:
        self.path = path
        self.on_write = on_write  # also given every stamped chunk (a Ray node ships them)
        self.max_bytes = max_bytes
        self.backups = backups
        self.dropped = 0  # bytes lost to a full disk
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._file: BinaryIO | None = None
        self._size = 0
        self._partial = b""  # the start of a line whose end has not come yet
        self._clock = clock

    def write_lines(self, chunk: bytes) -> None:
        """Appends the complete lines of `chunk` (after what was left of the previous one),
        each with the time it was read. A line that grows past MAX_LINE without its newline
        is written as it is, so a worker printing no newline still shows in its log."""
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()  # after the last newline: b"" if the chunk ended a line
        if len(self._partial) > MAX_LINE:
            lines.append(self._partial)
            self._partial = b""
        if lines:
            prefix = stamp(self._clock())
            self.write(b"".join(prefix + line + b"\n" for line in lines))

    def flush_partial(self) -> None:
        """Writes a last line that never got its newline (the worker has exited)."""
        if self._partial:
            self._partial, rest = b"", self._partial
            self.write(stamp(self._clock()) + rest + b"\n")

    def write(self, data: bytes) -> None:
        """Appends `data`, rotating first if it would pass the cap. Never raises on a full
        disk: the bytes are dropped and counted, and the next write tries again."""
        try:
            if self._file is None:
                self._open()
            if self._size and self._size + len(data) > self.max_bytes:
                self._rotate()
            assert self._file is not None
            if len(data) > self.max_bytes:  # one chunk larger than the cap: keep its tail
                data = data[-self.max_bytes :]
            self._file.write(data)
            self._file.flush()
            self._size += len(data)
            if self.on_write is not None:
                self.on_write(data)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            self.dropped += len(data)
            self._close_file()  # a half-written buffer must not be flushed later

    def close(self) -> None:
        self.flush_partial()
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def _close_file(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def _open(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        self._file = os.fdopen(fd, "ab", buffering=0)
        self._size = os.fstat(fd).st_size

    def _rotate(self) -> None:
        self._close_file()
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            for index in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
            if self.path.exists():
                self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._open()


async def pump(reader: asyncio.StreamReader, sink: CappedLog) -> None:
    """Copies what a worker prints into its capped log until the pipe closes (every process
    holding its write end, the worker's children too, has exited)."""
    try:
        while chunk := await reader.read(CHUNK):
            sink.write_lines(chunk)
    except (OSError, ValueError) as exc:  # ValueError: the pipe was closed under us
        log.warning("log of %s: %s", sink.path, exc)
    finally:
        sink.close()
        if sink.dropped:
            log.warning("log of %s: %d bytes dropped (disk full)", sink.path, sink.dropped)


class LogFifo:
    """A named pipe a process outside runq's reach writes its log into (a worker forked by a
    preload template opens the path it is given, as a file): runq copies it into a capped log.

    runq holds the pipe open for writing as well as reading, so that it never reads an early
    end of file before the writer has opened it; the copy therefore ends with `close()`,
    once every process of the worker is gone, after what is still buffered is copied.
    """

    def __init__(self, path: Path, sink: CappedLog) -> None:
        self.path = path
        self.sink = sink
        path.unlink(missing_ok=True)
        os.mkfifo(path, 0o600)
        self._fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        asyncio.get_running_loop().add_reader(self._fd, self._copy)

    def _copy(self) -> None:
        while True:
            try:
                chunk = os.read(self._fd, CHUNK)
            except BlockingIOError:
                return
            if not chunk:
                return
            self.sink.write_lines(chunk)

    def close(self) -> None:
        if self._fd < 0:
            return
        asyncio.get_running_loop().remove_reader(self._fd)
        self._copy()
        os.close(self._fd)
        self._fd = -1
        self.sink.close()
        self.path.unlink(missing_ok=True)


def pump_blocking(fd: int, sink: CappedLog) -> None:
    """`pump` for a thread (the Ray actor on its node has no event loop of its own)."""
    try:
        while chunk := os.read(fd, CHUNK):
            sink.write_lines(chunk)
    except OSError as exc:
        log.warning("log of %s: %s", sink.path, exc)
    finally:
        os.close(fd)
        sink.close()


def prune_logs(
    log_dir: Path, now: float, retention_s: float, max_total: int, live: set[str]
) -> int:
    """Deletes the logs of ended workers older than `retention_s` (by their last write), then,
    oldest first, more of them while all logs take more than `max_total` bytes. A live
    worker's log is never deleted (its size is capped anyway). Returns how many files went."""
    files: list[tuple[float, int, Path]] = []
    for path in log_dir.glob("*/*.log*"):
        try:
            stat = path.stat()
        except OSError:
            continue
        files.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in files)
    removed = 0
    for mtime, size, path in sorted(files):
        worker = path.name.split(".log")[0]
        if worker in live or worker == "template":
            continue
        if now - mtime <= retention_s and total <= max_total:
            break
        with contextlib.suppress(OSError):
            path.unlink()
            total -= size
            removed += 1
    return removed


class ShipBuffer:
    """What a worker on a Ray node printed since the control plane last asked (thread-safe,
    bounded: past `max_bytes` the oldest chunks are dropped and counted)."""

    def __init__(self, max_bytes: int = 4 * 2**20) -> None:
        self._chunks: collections.deque[bytes] = collections.deque()
        self._bytes = 0
        self._max = max_bytes
        self._lock = threading.Lock()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        with self._lock:
            self._chunks.append(data)
            self._bytes += len(data)
            while self._bytes > self._max and len(self._chunks) > 1:
                old = self._chunks.popleft()
                self._bytes -= len(old)
                self.dropped += len(old)

    def take(self) -> bytes:
        with self._lock:
            data = b"".join(self._chunks)
            self._chunks.clear()
            self._bytes = 0
        return data
