"""Keep-alive HTTP/1.1 to the control plane with `http.client`, and lanes for asyncio.

Each concurrent purpose (take loop, stop loop, result posts, pings, progress in a handler
thread) owns one `Conn`, used by one thread only: `http.client` is not thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import queue
import select
import socket
import threading
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from runq.worker.settings import VERSION

# What a failed exchange can raise; callers treat all of them as "control plane unreachable".
NETWORK_ERRORS: tuple[type[Exception], ...] = (OSError, http.client.HTTPException)


class Reply(NamedTuple):
    """A complete HTTP response."""

    status: int
    body: bytes


class Conn:
    """One persistent connection, reopened when the server closed it.

    Args:
        timeout: socket timeout in seconds (long polls need more than the server's hold).
        api_key: sent raw as `Authorization`, like runpod; empty sends no header.
    """

    def __init__(self, timeout: float, api_key: str = "") -> None:
        self.timeout = timeout
        self.headers = {"User-Agent": f"{VERSION} Python", "Accept": "application/json"}
        if api_key:
            self.headers["Authorization"] = api_key
        self._conn: http.client.HTTPConnection | None = None
        self._origin = ("", "")
        self._lock = threading.Lock()
        self._aborted = False

    def request(self, method: str, url: str, body: bytes | None = None) -> Reply:
        """Sends one request and reads the whole response.

        A reused connection that the server had closed (keep-alive timeout) is retried once on
        a fresh one; the request never reached the server in that case.

        Raises:
            OSError, http.client.HTTPException: the exchange failed.
        """
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            conn, reused = self._connection(parts.scheme, parts.netloc)
            try:
                conn.request(method, target or "/", body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except NETWORK_ERRORS:
                self.close()
                if self._aborted or not reused or attempt == 2:
                    raise
                continue
            if response.will_close:
                self.close()
            return Reply(response.status, data)
        raise AssertionError("unreachable")

    def abort(self) -> None:
        """Fails the request in flight from another thread, and every later one."""
        with self._lock:
            self._aborted = True
            sock = self._conn.sock if self._conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a recv() blocked in a long poll

    def close(self) -> None:
        """Closes the socket; the next request opens a new one."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self, scheme: str, netloc: str) -> tuple[http.client.HTTPConnection, bool]:
        if self._aborted:
            raise ConnectionAbortedError("worker is shutting down")
        conn = self._conn
        if conn is not None and (self._origin != (scheme, netloc) or _stale(conn)):
            self.close()
            conn = None
        reused = conn is not None
        if conn is None:
            cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            conn = cls(netloc, timeout=self.timeout)
            conn.connect()
            self._conn, self._origin = conn, (scheme, netloc)
        with self._lock:
            # Checked after connecting so abort() either sees this socket or we see the flag.
            if self._aborted:
                self.close()
                raise ConnectionAbortedError("worker is shutting down")
        return conn, reused


def _stale(conn: http.client.HTTPConnection) -> bool:
    """An idle keep-alive socket that is readable was closed (or poisoned) by the server."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


_Job = tuple[Callable[[], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class Lane:
    """A daemon thread that owns one `Conn` and runs its requests for the event loop.

    Daemon, so a long poll still blocked at exit never holds the process up.
    """

    def __init__(self, name: str, conn: Conn) -> None:
        self.conn = conn
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    async def request(self, method: str, url: str, body: bytes | None = None) -> Reply:
        """Runs `Conn.request` on the lane's thread and awaits its reply."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        self._queue.put((lambda: self.conn.request(method, url, body), loop, future))
        return await future

    def close(self) -> None:
        """Aborts the request in flight and ends the thread."""
        self.conn.abort()
        self._queue.put(None)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            call, loop, future = job
            try:
                outcome: tuple[Any, BaseException | None] = (call(), None)
            except BaseException as exc:
                outcome = (None, exc)
            # RuntimeError: the loop is closed, so nobody waits for this reply any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, outcome)


def _settle(future: asyncio.Future[Any], outcome: tuple[Any, BaseException | None]) -> None:
    if future.done():  # the awaiting task was cancelled
        return
    value, exc = outcome
    if exc is None:
        future.set_result(value)
    else:
        future.set_exception(exc)


_local = threading.local()


def thread_conn(api_key: str, timeout: float = 30.0) -> Conn:
    """This thread's own `Conn`, for calls made from handler threads (progress updates)."""
    conn: Conn | None = getattr(_local, "conn", None)
    if conn is None:
        conn = Conn(timeout, api_key)
        _local.conn = conn
    return conn
