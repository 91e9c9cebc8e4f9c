"""Load-balancing endpoints: /lb/{endpoint}/{path} goes straight to a worker's HTTP server.

Every method, path, query and header passes through (less hop-by-hop headers and the runq API
key, which the worker must not see); bodies stream both ways, so server-sent events arrive as
the worker writes them. The endpoint's execution_timeout bounds the whole exchange (504).

A raw ASGI app, not a Starlette or FastAPI endpoint, with runq's own upstream client: the proxy
is on the path of every request, and each layer of request/response objects showed up in its
per-request cost.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from starlette.routing import Route

from runq.api.auth import ApiKeys, key_from_headers
from runq.api.statuses import headers_of, status_of
from runq.errors import RunqError
from runq.fleet.endpoints import Endpoints
from runq.fleet.fleet import Fleet
from runq.fleet.lb import HOLD_LIMIT_S, LoadBalancer, NoWorker
from runq.fleet.upstream import Headers, UpstreamError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Not forwarded: hop-by-hop headers, the framing (set again for the next hop) and runq's key.
DROPPED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
        b"authorization",
    }
)
DROPPED_BACK = DROPPED - {b"content-length", b"authorization"}
BUFFER_BELOW = 64 * 1024  # smaller request bodies are read whole before forwarding
BODY_LIMIT = 30 * 1024 * 1024  # RunPod's load balancer payload limit (spec 1.10)
DEFAULT_TIMEOUT_S = 600.0
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


async def _error(
    send: Send, status: int, message: str, extra: dict[str, str] | None = None
) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [(name.lower().encode(), value.encode()) for name, value in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    """A streamed request body passed BODY_LIMIT while it was being forwarded."""


def _declared_length(headers: Headers) -> int | None:
    length = next((v for n, v in headers if n == b"content-length"), None)
    return int(length) if length is not None and length.isdigit() else None


async def _request_body(receive: Receive, headers: Headers) -> bytes | AsyncIterator[bytes]:
    length = next((v for n, v in headers if n == b"content-length"), None)
    if length is not None and length.isdigit() and int(length) < BUFFER_BELOW:
        parts = []
        while True:
            message = await receive()
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                return b"".join(parts)

    async def stream() -> AsyncIterator[bytes]:
        # A chunked body declares no length: it is counted as it passes.
        seen = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > BODY_LIMIT:
                raise BodyTooLarge(f"body passed the limit of {BODY_LIMIT} bytes")
            yield chunk
            if not message.get("more_body"):
                return

    if length is None and not any(n == b"transfer-encoding" for n, _ in headers):
        return b""  # no body at all (a GET)
    return stream()


class Proxy:
    """The ASGI app behind /lb/{endpoint}/{path}."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope["app"]
        headers: Headers = scope["headers"]
        endpoint = scope["path_params"]["endpoint"]
        keys: ApiKeys = app.state.keys
        try:
            keys.check(key_from_headers(headers), endpoint)  # 401, 403 or 429
        except RunqError as exc:
            await _error(send, status_of(exc), str(exc), headers_of(exc))
            return
        endpoints: Endpoints = app.state.endpoints
        spec = endpoints.get(endpoint)
        try:
            if spec is None:
                raise endpoints.not_served(endpoint)
            endpoints.check_open(endpoint)  # draining before an undeploy
        except RunqError as exc:
            await _error(send, status_of(exc), str(exc))
            return
        if spec.type != "load_balancer":
            await _error(
                send, 404, f"endpoint '{endpoint}' is a queue endpoint: use /v2/{endpoint}/run"
            )
            return
        declared = _declared_length(headers)
        if declared is not None and declared > BODY_LIMIT:
            await _error(send, 413, f"body is {declared} bytes; the limit is {BODY_LIMIT} bytes")
            return
        timeout = spec.jobs.execution_timeout_s or DEFAULT_TIMEOUT_S
        body = await _request_body(receive, headers)
        hold = min(spec.scaling.init_timeout_s, HOLD_LIMIT_S)
        balancer: LoadBalancer = app.state.balancer
        fleet: Fleet = app.state.fleet
        try:
            worker = await balancer.acquire(endpoint, hold, fleet.want_worker)
        except NoWorker as exc:
            await _error(send, 503, str(exc))
            return
        try:
            await self._forward(scope, send, balancer, worker, headers, body, timeout)
        finally:
            balancer.release(worker)

    async def _forward(
        self,
        scope: Scope,
        send: Send,
        balancer: LoadBalancer,
        worker: Any,
        headers: Headers,
        body: bytes | AsyncIterator[bytes],
        timeout: float,
    ) -> None:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        rest = raw_path.split(b"/", 3)[3] if raw_path.count(b"/") >= 3 else b""
        query: bytes = scope.get("query_string", b"")
        target = "/" + rest.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        forwarded = [(n, v) for n, v in headers if n not in DROPPED]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pool = balancer.pool(worker)
        try:
            async with asyncio.timeout(timeout):
                answer = await pool.request(scope["method"], target, forwarded, body)
        except TimeoutError:
            await _error(send, 504, f"the worker did not answer within {timeout:g}s")
            return
        except UpstreamError as exc:
            await _error(send, 502, f"worker {worker.id} failed: {exc}")
            return
        except BodyTooLarge as exc:
            await _error(send, 413, str(exc))
            return
        back = [(n, v) for n, v in answer.headers if n.lower() not in DROPPED_BACK]
        length = next((v for n, v in answer.headers if n.lower() == b"content-length"), None)
        started = False
        try:
            async with asyncio.timeout(max(deadline - loop.time(), 0.001)):
                if length is not None and length.isdigit() and int(length) < BUFFER_BELOW:
                    content = await answer.read()
                    started = True
                    await send(_start(answer.status, back))
                    await send({"type": "http.response.body", "body": content})
                    return
                started = True
                await send(_start(answer.status, back))
                async for chunk in answer.body():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
        except (TimeoutError, UpstreamError, OSError) as exc:
            answer.close()
            if not started:
                status = 504 if isinstance(exc, TimeoutError) else 502
                await _error(send, status, f"worker {worker.id} failed mid-answer: {exc!r}")
            else:  # the status is out: end the body early, the client sees it cut short
                await send({"type": "http.response.body", "body": b""})
        finally:
            answer.close()


def _start(status: int, headers: Headers) -> Message:
    return {"type": "http.response.start", "status": status, "headers": headers}


routes = [Route("/lb/{endpoint}/{path:path}", Proxy(), methods=METHODS)]
