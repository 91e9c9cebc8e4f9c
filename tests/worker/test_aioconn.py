"""The asyncio HTTP/1.1 client against a scripted raw-socket server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from runq.worker.aioconn import AsyncConn

pytestmark = pytest.mark.timeout(30)

Reply = Callable[[bytes], bytes | None]  # request head -> raw response (None: hang up)


def ok(body: bytes = b"{}", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


class Server:
    """Answers each request on a connection with the next scripted reply."""

    def __init__(self, replies: list[bytes | None], close_after_each: bool = False) -> None:
        self.replies = replies
        self.close_after_each = close_after_each
        self.connections = 0
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.heads.append(head)
                self.bodies.append(await reader.readexactly(length))
                reply = self.replies.pop(0)
                if reply is None:
                    await asyncio.sleep(3600)  # a long poll that never answers
                    break
                writer.write(reply)
                await writer.drain()
                if self.close_after_each:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def run(server: Server, scenario: Callable[[str], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        try:
            return await scenario(f"http://127.0.0.1:{port}/v2/ep/job-take/w1?gpu=cpu")
        finally:
            srv.close()

    return asyncio.run(main())


def test_keep_alive_reuses_one_connection() -> None:
    server = Server([ok(b'{"a": 1}'), ok(b"[]")])

    async def scenario(url: str) -> Any:
        conn = AsyncConn(5, api_key="raw-key")
        first = await conn.request("GET", url)
        second = await conn.request("POST", url, b'{"x": 1}')
        conn.close()
        return first, second

    first, second = run(server, scenario)
    assert (first.status, first.body, second.body) == (200, b'{"a": 1}', b"[]")
    assert server.connections == 1
    assert server.heads[0].startswith(b"GET /v2/ep/job-take/w1?gpu=cpu HTTP/1.1\r\n")
    assert b"\r\nAuthorization: raw-key\r\n" in server.heads[0]
    assert b"\r\nContent-Type: application/json\r\n" in server.heads[1]
    assert server.bodies[1] == b'{"x": 1}'


@pytest.mark.parametrize(
    ("raw", "status", "body"),
    [
        pytest.param(b"HTTP/1.1 204 No Content\r\n\r\n", 204, b"", id="204 has no body"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
            200,
            b"abcde",
            id="chunked body with an extension",
        ),
        pytest.param(
            b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"x"), 200, b"x", id="interim 100 is skipped"
        ),
        pytest.param(ok(b"", b"Content-Type: text/plain\r\n"), 200, b"", id="empty length body"),
    ],
)
def test_response_framing(raw: bytes, status: int, body: bytes) -> None:
    server = Server([raw, ok(b"next")])

    async def scenario(url: str) -> Any:
        conn = AsyncConn(5)
        reply = await conn.request("GET", url)
        after = await conn.request("GET", url)  # framing left the connection usable
        conn.close()
        return reply, after

    reply, after = run(server, scenario)
    assert (reply.status, reply.body, after.body) == (status, body, b"next")
    assert server.connections == 1


def test_connection_close_opens_a_new_connection() -> None:
    server = Server([ok(b"1", b"Connection: close\r\n"), ok(b"2")], close_after_each=True)

    async def scenario(url: str) -> Any:
        conn = AsyncConn(5)
        bodies = [(await conn.request("GET", url)).body for _ in range(2)]
        conn.close()
        return bodies

    assert run(server, scenario) == [b"1", b"2"]
    assert server.connections == 2


def test_server_closing_an_idle_connection_is_retried_transparently() -> None:
    server = Server([ok(b"1"), ok(b"2")], close_after_each=True)  # no Connection: close header

    async def scenario(url: str) -> Any:
        conn = AsyncConn(5)
        first = await conn.request("GET", url)
        # Whether or not the server's FIN has arrived yet, the second request must succeed:
        # either the idle check sees EOF or the failed exchange is retried once.
        second = await conn.request("GET", url)
        conn.close()
        return first.body, second.body

    assert run(server, scenario) == (b"1", b"2")
    assert server.connections == 2


def test_body_delimited_by_close() -> None:
    server = Server([b"HTTP/1.1 200 OK\r\n\r\nuntil-eof"], close_after_each=True)

    async def scenario(url: str) -> Any:
        conn = AsyncConn(5)
        return (await conn.request("GET", url)).body

    assert run(server, scenario) == b"until-eof"


def test_abort_ends_a_long_poll_and_refuses_later_requests() -> None:
    server = Server([None])

    async def scenario(url: str) -> Any:
        conn = AsyncConn(60)
        poll = asyncio.create_task(conn.request("GET", url))
        while not server.heads:
            await asyncio.sleep(0.01)
        conn.abort()
        with pytest.raises(ConnectionError):
            await poll
        with pytest.raises(ConnectionAbortedError):
            await conn.request("GET", url)

    run(server, scenario)


def test_timeout_raises_timeout_error() -> None:
    server = Server([None])

    async def scenario(url: str) -> Any:
        conn = AsyncConn(0.2)
        with pytest.raises(TimeoutError):
            await conn.request("GET", url)

    run(server, scenario)


def test_refused_connection_raises_oserror() -> None:
    async def scenario() -> None:
        srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        srv.close()
        await srv.wait_closed()
        with pytest.raises(OSError):
            await AsyncConn(5).request("GET", f"http://127.0.0.1:{port}/x")

    asyncio.run(scenario())
