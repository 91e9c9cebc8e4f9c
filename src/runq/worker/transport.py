"""Keep-alive HTTP/1.1 with `http.client`, for calls made from threads.

The ping thread and `progress_update` (called from handler threads) each use their own
`Conn`: `http.client` is not thread-safe. The event loop uses `aioconn` instead.
`http.client` (with `email` and `ssl`, ~20 ms) is imported on first use, off the path to
the worker's first job-take.
"""

from __future__ import annotations

import select
import threading
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from runq.worker.settings import VERSION

if TYPE_CHECKING:
    import http.client

# Every failed exchange surfaces as OSError (ConnectionError, TimeoutError ...), from here and
# from `aioconn`: callers treat it as "control plane unreachable".
NETWORK_ERRORS: tuple[type[Exception], ...] = (OSError,)


class Reply(NamedTuple):
    """A complete HTTP response."""

    status: int
    body: bytes


class Conn:
    """One persistent connection, reopened when the server closed it; one thread only.

    Args:
        timeout: socket timeout in seconds.
        api_key: sent raw as `Authorization`, like runpod; empty sends no header.
    """

    def __init__(self, timeout: float, api_key: str = "") -> None:
        self.timeout = timeout
        self.headers = {"User-Agent": f"{VERSION} Python", "Accept": "application/json"}
        if api_key:
            self.headers["Authorization"] = api_key
        self._conn: http.client.HTTPConnection | None = None
        self._origin = ("", "")

    def request(self, method: str, url: str, body: bytes | None = None) -> Reply:
        """Sends one request and reads the whole response.

        A reused connection that the server had closed (keep-alive timeout) is retried once on
        a fresh one; the request never reached the server in that case.

        Raises:
            OSError: the exchange failed.
        """
        import http.client

        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            reused = self._connect(parts.scheme, parts.netloc)
            conn = self._conn
            assert conn is not None
            try:
                conn.request(method, target, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if not reused or attempt == 2:
                    if isinstance(exc, OSError):
                        raise
                    raise ConnectionError(f"bad HTTP exchange: {exc!r}") from exc
                continue
            if response.will_close:
                self.close()
            return Reply(response.status, data)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Closes the socket; the next request opens a new one."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connect(self, scheme: str, netloc: str) -> bool:
        """Makes sure a usable connection is open; True when an open one is reused."""
        import http.client

        if self._conn is not None:
            if self._origin == (scheme, netloc) and not _stale(self._conn):
                return True
            self.close()
        cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        self._conn = cls(netloc, timeout=self.timeout)
        self._origin = (scheme, netloc)
        return False


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


_local = threading.local()
_thread_conns: list[Conn] = []  # every thread's Conn, so shutdown can close them
_thread_conns_lock = threading.Lock()


def thread_conn(api_key: str, timeout: float = 30.0) -> Conn:
    """This thread's own `Conn`, for calls made from handler threads (progress updates)."""
    conn: Conn | None = getattr(_local, "conn", None)
    if conn is None:
        conn = Conn(timeout, api_key)
        _local.conn = conn
        with _thread_conns_lock:
            _thread_conns.append(conn)
    return conn


def close_thread_conns() -> None:
    """Closes every thread's `Conn`; call once no handler thread can run any more."""
    with _thread_conns_lock:
        conns, _thread_conns[:] = list(_thread_conns), []
    for conn in conns:
        conn.close()
