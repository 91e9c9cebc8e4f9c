"""A minimal keep-alive HTTP/1.1 client on asyncio streams, for the event loop's calls.

The take loop, stop loop and result posts each own one `AsyncConn`. Doing HTTP on the
loop itself, instead of `http.client` in a helper thread, saves two thread hand-offs and
`http.client`'s header parsing per request: about 150 us per exchange, i.e. half the
worker's own overhead on a no-op job (measured: 115 vs 260-300 us per POST round trip).
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from runq.worker.settings import VERSION
from runq.worker.transport import Reply

NO_BODY_STATUSES = (204, 304)


class _Stale(ConnectionResetError):
    """The server had closed the idle connection before our request reached it."""


class AsyncConn:
    """One persistent connection; concurrent callers take turns (no pipelining).

    Args:
        timeout: limit for one whole exchange, in seconds.
        api_key: sent raw as `Authorization`, like runpod; empty sends no header.
    """

    def __init__(self, timeout: float, api_key: str = "") -> None:
        self.timeout = timeout
        auth = f"Authorization: {api_key}\r\n" if api_key else ""
        self._fixed_headers = f"User-Agent: {VERSION} Python\r\nAccept: application/json\r\n{auth}"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._origin: tuple[str, str, int] = ("", "", 0)
        self._lock = asyncio.Lock()
        self._aborted = False

    async def request(self, method: str, url: str, body: bytes | None = None) -> Reply:
        """Sends one request and reads the whole response.

        A reused connection the server had closed (keep-alive timeout) is retried once on a
        fresh one: the request never reached the server then.

        Raises:
            OSError: the exchange failed (ConnectionError, TimeoutError ...).
        """
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = f"{method} {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n{self._fixed_headers}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        data = (head + "\r\n").encode("latin-1") + (body or b"")
        async with self._lock:
            for attempt in (1, 2):
                reused = await self._connect(parts.scheme, parts.hostname or "", parts.port)
                try:
                    async with asyncio.timeout(self.timeout):
                        return await self._exchange(method, data)
                except _Stale:
                    self.close()
                    if self._aborted or not reused or attempt == 2:
                        raise
                except (ValueError, EOFError) as exc:  # over-long line, cut-short body
                    self.close()
                    raise ConnectionError(f"bad HTTP response: {exc!r}") from exc
                except BaseException:
                    self.close()  # mid-exchange: the connection's state is unknown
                    raise
        raise AssertionError("unreachable")

    def abort(self) -> None:
        """Fails the exchange in flight and every later one.

        A reply that already sits in the read buffer is still returned, so a job the server
        handed over just before a SIGTERM is run rather than lost.
        """
        self._aborted = True
        self.close()

    def close(self) -> None:
        """Closes the socket; the next request opens a new one."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def _connect(self, scheme: str, host: str, port: int | None) -> bool:
        """Makes sure a usable connection is open; True when an open one is reused."""
        if self._aborted:
            raise ConnectionAbortedError("worker is shutting down")
        secure = scheme == "https"
        origin = (scheme, host, port or (443 if secure else 80))
        reader, writer = self._reader, self._writer
        if reader is not None and writer is not None:
            # A server that closed an idle keep-alive connection has left EOF in the reader.
            usable = not (reader.at_eof() or writer.is_closing() or reader.exception())
            if usable and self._origin == origin:
                return True
            self.close()
        context = None
        if secure:
            import ssl  # ~10 ms: only for https control planes

            context = ssl.create_default_context()
        self._reader, self._writer = await asyncio.open_connection(host, origin[2], ssl=context)
        self._origin = origin
        return False

    async def _exchange(self, method: str, data: bytes) -> Reply:
        reader, writer = self._reader, self._writer
        if reader is None or writer is None:
            raise ConnectionAbortedError("connection closed")
        try:
            writer.write(data)
            await writer.drain()  # no-op for small bodies; flow control for big results
            status_line = await reader.readline()
        except ConnectionError as exc:
            raise _Stale(str(exc)) from exc
        if not status_line:
            raise _Stale("server closed the connection")
        while True:
            status, headers = await _read_head(reader, status_line)
            if status >= 200:
                break
            status_line = await reader.readline()  # skip an interim 1xx reply
        if method == "HEAD" or status in NO_BODY_STATUSES:
            payload = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            payload = await _read_chunked(reader)
        elif "content-length" in headers:
            payload = await _read_exactly(reader, int(headers["content-length"]))
        else:
            payload = await reader.read()  # delimited by the server closing
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close" or status_line.startswith(b"HTTP/1.0"):
            self.close()
        return Reply(status, payload)


async def _read_head(
    reader: asyncio.StreamReader, status_line: bytes
) -> tuple[int, dict[str, str]]:
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ConnectionError(f"bad HTTP status line: {status_line[:100]!r}")
    headers: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed inside the response headers")
        if line in (b"\r\n", b"\n"):
            return int(parts[1]), headers
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size_line = await reader.readline()
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ConnectionError(f"bad chunk size line: {size_line[:100]!r}") from None
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        chunks.append(await _read_exactly(reader, size))
        await _read_exactly(reader, 2)  # CRLF after each chunk


async def _read_exactly(reader: asyncio.StreamReader, size: int) -> bytes:
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise ConnectionError(f"response body cut short ({len(exc.partial)}/{size})") from exc
