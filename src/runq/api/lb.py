"""Load-balancing endpoints: /lb/{endpoint}/{path} goes straight to a worker's HTTP server.

Every method, path, query and header passes through (less hop-by-hop headers and the runq API
key, which the worker must not see); bodies stream both ways, so server-sent events arrive as
the worker writes them. The endpoint's execution_timeout bounds the whole exchange (504).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from runq.api.responses import error_response
from runq.errors import NotFound
from runq.fleet.controlplane import ControlPlane
from runq.fleet.lb import NoWorker

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
BUFFER_BELOW = 64 * 1024  # bodies smaller than this are read whole: fewer, cheaper messages
DEFAULT_TIMEOUT_S = 600.0
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def _forward_headers(request: Request) -> list[tuple[bytes, bytes]]:
    return [
        (name, value)
        for name, value in request.headers.raw
        if name.decode("latin-1").lower() not in HOP_BY_HOP and name.lower() != b"authorization"
    ]


async def proxy(request: Request) -> Response:
    plane: ControlPlane = request.app.state.plane
    request.app.state.keys.require(request)
    endpoint = request.path_params["endpoint"]
    spec = plane.spec(endpoint)
    if spec.type != "load_balancer":
        raise NotFound(f"endpoint '{endpoint}' is a queue endpoint: use /v2/{endpoint}/run")
    timeout = spec.jobs.execution_timeout_s or DEFAULT_TIMEOUT_S
    hold = min(spec.scaling.init_timeout_s, plane.lb_hold_s)
    try:
        worker = await plane.lb.acquire(endpoint, hold, plane.scheduler.poke)
    except NoWorker as exc:
        return error_response(str(exc), 503)
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            plane.lb.release(worker)

    path = request.path_params["path"]
    query = request.url.query
    url = f"http://127.0.0.1:{worker.port}/{path}" + (f"?{query}" if query else "")
    declared = request.headers.get("content-length")
    body: bytes | AsyncIterator[bytes]
    if declared is not None and declared.isdigit() and int(declared) < BUFFER_BELOW:
        body = await request.body()
    else:
        body = request.stream()
    upstream_request = plane.lb.client.build_request(
        request.method, url, headers=_forward_headers(request), content=body
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        async with asyncio.timeout(timeout):
            upstream = await plane.lb.client.send(upstream_request, stream=True)
    except TimeoutError:
        release()
        return error_response(f"the worker did not answer within {timeout:g}s", 504)
    except httpx.HTTPError as exc:
        release()
        return error_response(f"worker {worker.id} failed: {type(exc).__name__}: {exc}", 502)
    headers = [
        (name, value)
        for name, value in upstream.headers.raw
        if name.decode("latin-1").lower() not in HOP_BY_HOP
    ]
    length = upstream.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) < BUFFER_BELOW:
        try:
            async with asyncio.timeout(max(deadline - loop.time(), 0.001)):
                content = await upstream.aread()
        except (TimeoutError, httpx.HTTPError) as exc:
            return error_response(f"worker {worker.id} failed mid-answer: {exc!r}", 502)
        finally:
            await upstream.aclose()
            release()
        response = Response(content, status_code=upstream.status_code)
        response.raw_headers = headers
        return response

    async def relay() -> AsyncIterator[bytes]:
        try:
            async with asyncio.timeout(max(deadline - loop.time(), 0.001)):
                async for chunk in upstream.aiter_raw():
                    yield chunk
        except (TimeoutError, httpx.HTTPError):
            return  # the client sees the stream end early; the status was already sent
        finally:
            with contextlib.suppress(Exception):
                await upstream.aclose()
            release()

    async def cleanup() -> None:
        await upstream.aclose()
        release()

    streamed = StreamingResponse(
        relay(), status_code=upstream.status_code, background=BackgroundTask(cleanup)
    )
    streamed.raw_headers = headers
    return streamed


routes = [Route("/lb/{endpoint}/{path:path}", proxy, methods=METHODS)]
