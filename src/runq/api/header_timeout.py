"""Uvicorn's HTTP protocols with a deadline on a request's headers.

Uvicorn times out only a keep-alive connection that is idle after a response
(`timeout_keep_alive`, 75 s in runq: server/serve.py says why). A connection that never sends a
request, or sends half of its headers and stops, stays open for ever: a few thousand of them
(a port scan, a slow-loris client) hold as many file descriptors. Here a new connection must
send a whole request head within `header_timeout_s`, and so must a request that has begun on
a kept-alive one; otherwise the connection is closed.

Both of uvicorn's parsers are covered: httptools (installed with uvicorn[standard], what
"auto" picks) and h11. `protocol_class()` returns the one uvicorn would have chosen.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class _HeaderDeadline(asyncio.Protocol):
    """The deadline itself: armed when a connection opens and while a request head is partly
    read; disarmed once a head is complete (then the request and uvicorn's keep-alive timeout
    take over)."""

    header_timeout_s: float = 20.0
    _header_timer: asyncio.TimerHandle | None = None
    # Uvicorn's protocols set these (the base class here only declares them for mypy).
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any

    def _headers_pending(self) -> bool:
        raise NotImplementedError

    def _arm(self) -> None:
        if self._header_timer is None and not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _after_data(self) -> None:
        if self._headers_pending():
            self._arm()  # the deadline runs from the head's first bytes, not its latest
        else:
            self._disarm()

    def _expired(self) -> None:
        self._header_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            # Still answering an earlier request: a pipelined head waits on us, not the client.
            self._arm()
        elif not self.transport.is_closing():
            self.transport.close()


def _with_deadline(base: type[Any]) -> type[Any]:
    """`base` (one of uvicorn's HTTP protocols) with the header deadline."""

    class Protocol(_HeaderDeadline, base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self._arm()  # a new connection owes us a request head

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._after_data()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    Protocol.__name__ = Protocol.__qualname__ = f"HeaderTimeout{base.__name__}"
    return Protocol


def _httptools_class() -> type[Any]:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HttpTools(_with_deadline(HttpToolsProtocol)):  # type: ignore[misc]
        _reading_head = False

        def _headers_pending(self) -> bool:
            return self._reading_head

        def on_message_begin(self) -> None:
            self._reading_head = True
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._reading_head = False
            super().on_headers_complete()

    return HttpTools


class _H11(_with_deadline(H11Protocol)):  # type: ignore[misc]
    def _headers_pending(self) -> bool:
        # Bytes of a request that h11 cannot yet make a Request event of.
        conn: h11.Connection = self.conn
        return conn.their_state is h11.IDLE and bool(conn.trailing_data[0])


def protocol_class(header_timeout_s: float, parser: str = "auto") -> type[asyncio.Protocol]:
    """The HTTP protocol class for uvicorn.Config(http=...): httptools where it is installed
    (uvicorn's "auto"), else h11, with a `header_timeout_s` deadline on each request head."""
    use_httptools = parser == "httptools" or (
        parser == "auto" and importlib.util.find_spec("httptools") is not None
    )
    base = _httptools_class() if use_httptools else _H11
    configured: type[asyncio.Protocol] = type(
        base.__name__, (base,), {"header_timeout_s": header_timeout_s}
    )
    return configured
