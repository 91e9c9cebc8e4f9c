"""A load-balancing worker: its own HTTP server on $PORT (Starlette + uvicorn).

/ping: 204 for INIT_SECONDS after start, then 200; 500 once the file named by SICK_FILE exists.
/echo/...: any method; answers what it received. /sse?n=&delay=: server-sent events.
"""

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

STARTED = time.monotonic()
INIT_S = float(os.environ.get("INIT_SECONDS", "0"))
SICK = os.environ.get("SICK_FILE", "")


async def ping(request: Request) -> Response:
    if SICK and Path(SICK).exists():
        return Response(status_code=500)
    return Response(status_code=200 if time.monotonic() - STARTED >= INIT_S else 204)


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": dict(request.query_params),
            "body": body.decode(),
            "headers": dict(request.headers),
            "worker": os.environ.get("RUNQ_WORKER_ID"),
        }
    )


async def sse(request: Request) -> Response:
    n = int(request.query_params.get("n", "3"))
    delay = float(request.query_params.get("delay", "0.2"))

    async def events() -> AsyncIterator[bytes]:
        for i in range(n):
            yield f"data: {json.dumps({'i': i, 't': time.time()})}\n\n".encode()
            await asyncio.sleep(delay)

    return StreamingResponse(events(), media_type="text/event-stream")


app = Starlette(
    routes=[
        Route("/ping", ping),
        Route("/sse", sse),
        Route("/echo/{rest:path}", echo, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
