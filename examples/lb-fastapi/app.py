"""A load-balancing endpoint worker: a plain FastAPI app that runq proxies requests to.

No runq SDK: runq starts ``python app.py`` with ``PORT`` (the port to serve on) and
``PORT_HEALTH`` (where ``GET /ping`` must answer: 204 while initializing, 200 when ready), and
forwards ``/lb/lb-fastapi/{path}`` to ``/{path}`` here. Run it alone with ``python app.py``
(port 8080, or ``PORT``).

Environment:
    PORT: the HTTP port (default 8080), on 127.0.0.1.
    PORT_HEALTH: where ``/ping`` is served; unset or equal to PORT: the same server. Otherwise a
        small second server answers ``/ping`` there.
    INIT_SECONDS: a simulated model load (default 0); ``/ping`` answers 204 and ``/generate``
        503 until it is over.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError

HOST = "127.0.0.1"
READY = threading.Event()
# The fake model's words, beside those of the prompt.
WORDS = "the quick brown fox jumps over a lazy dog while runq keeps every worker busy and"
VOCABULARY = tuple(WORDS.split())


def init_seconds() -> float:
    return float(os.environ.get("INIT_SECONDS", "0") or 0)


def load_model(seconds: float) -> None:
    """Stands in for loading weights: sleeps, then marks the worker ready."""
    time.sleep(seconds)
    READY.set()


def generate_text(prompt: str, max_tokens: int) -> list[str]:
    """Fake generation: ``max_tokens`` words, a pure function of the prompt.

    Token k is a word of the prompt or the vocabulary, picked by a hash of (prompt, k), so the
    same prompt always gives the same text: ``generate_text("hi", 3)`` is the same three words
    on every call and every machine.
    """
    words = prompt.split() + list(VOCABULARY)
    seed = hashlib.blake2b(prompt.encode(), digest_size=8).digest()
    out: list[str] = []
    for k in range(max_tokens):
        digest = hashlib.blake2b(k.to_bytes(4, "little"), key=seed, digest_size=4).digest()
        out.append(words[int.from_bytes(digest, "little") % len(words)])
    return out


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Load in a thread, so that /ping can answer 204 meanwhile.
    threading.Thread(target=load_model, args=(init_seconds(),), daemon=True).start()
    yield


app = FastAPI(title="lb-fastapi", lifespan=lifespan)


@app.get("/ping")
async def ping() -> Response:
    """Health for runq: 200 when ready, 204 while initializing."""
    if READY.is_set():
        return Response(b'{"status":"healthy"}', media_type="application/json")
    return Response(status_code=204)


class GenerateRequest(BaseModel):
    prompt: str = Field(min_length=1, max_length=100_000)
    max_tokens: int = Field(16, ge=1, le=4096)


@app.post(
    "/generate",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": GenerateRequest.model_json_schema()}},
        }
    },
)
async def generate(request: Request) -> dict[str, Any]:
    """``{"prompt": str, "max_tokens": int = 16}`` -> ``{"text": str, "tokens": n}``.

    The body is JSON whatever its content type (``curl -d`` sends a form type). 400 when it is
    not JSON, 422 when a field is wrong, 503 while the model loads.
    """
    try:
        raw = json.loads(await request.body())
    except ValueError:
        raise HTTPException(400, "the body is not valid JSON") from None
    try:
        body = GenerateRequest.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None
    if not READY.is_set():
        raise HTTPException(503, "initializing")
    words = generate_text(body.prompt, body.max_tokens)
    return {"text": " ".join(words), "tokens": len(words)}


async def events(n: int, delay: float) -> AsyncIterator[bytes]:
    for i in range(n):
        if i and delay:
            await asyncio.sleep(delay)
        yield f"data: {json.dumps({'i': i})}\n\n".encode()


@app.get("/stream")
async def stream(
    n: int = Query(5, ge=0, le=10_000), delay: float = Query(0.05, ge=0.0, le=10.0)
) -> StreamingResponse:
    """Server-sent events ``data: {"i": k}``, k = 0..n-1, ``delay`` seconds apart."""
    return StreamingResponse(
        events(n, delay),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


ECHO_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]


async def echo(request: Request) -> dict[str, Any]:
    """What arrived: method, path, query (raw and parsed) and body (as text)."""
    body = await request.body()
    return {
        "method": request.method,
        "path": request.url.path,
        "raw_path": request.scope["raw_path"].decode("latin-1"),
        "query": request.url.query,
        "query_params": [list(item) for item in request.query_params.multi_items()],
        "body": body.decode("utf-8", errors="replace"),
        "body_len": len(body),
    }


# One route per method and path, so that each gets its own OpenAPI operation id.
for _method in ECHO_METHODS:
    for _path in ("/echo", "/echo/{rest:path}"):
        app.add_api_route(_path, echo, methods=[_method], name=f"echo_{_method.lower()}")


@app.get("/headers")
async def headers(request: Request) -> dict[str, str]:
    """The request headers, lower-case names; repeated ones joined with ", "."""
    return {name: ", ".join(request.headers.getlist(name)) for name in request.headers}


class _PingHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/ping":
            self.send_error(404)
            return
        body = b'{"status":"healthy"}' if READY.is_set() else b""
        self.send_response(200 if body else 204)
        if body:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet, like uvicorn at warning
        pass


def serve_health(port: int) -> None:
    """``/ping`` alone on its own port, in a daemon thread (only when PORT_HEALTH != PORT)."""
    server = ThreadingHTTPServer((HOST, port), _PingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


if __name__ == "__main__":
    port = int(os.environ.get("PORT", 8080))
    health_port = int(os.environ.get("PORT_HEALTH", port))
    if health_port != port:
        serve_health(health_port)
    uvicorn.run(app, host=HOST, port=port, log_level="warning")
