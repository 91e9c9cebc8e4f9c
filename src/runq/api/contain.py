"""An unexpected exception answers a JSON 500 and leaves the client's connection usable.

Starlette's ServerErrorMiddleware sends the 500 from runq's handler and then re-raises the
exception, "so that servers can log it". Uvicorn, seeing an exception after the response
started, closes the connection: a client that pooled it (every HTTP client does) had its next
request on that connection fail too, a valid one included. `ContainErrors` sits outside it and
keeps the exception from reaching the server once a whole answer went out.
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("runq.api")

_BODY = json.dumps({"error": "internal error (see the server log)"}).encode()


class ContainErrors:
    """Pure ASGI: after a complete response, an exception is logged and dropped (the handler
    that answered logged it already); before any response, it answers a JSON 500; in the middle
    of one, it goes on to the server, which must close the connection (the body is cut)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = complete = False

        async def watched_send(message: Message) -> None:
            nonlocal started, complete
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                complete = True
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception:
            if complete:
                return
            if started:
                raise
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            await _answer_500(send)


async def _answer_500(send: Send) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(_BODY))]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": _BODY})


class RunqApp(FastAPI):
    """FastAPI with `ContainErrors` outside Starlette's outermost middleware."""

    def build_middleware_stack(self) -> ASGIApp:
        return ContainErrors(super().build_middleware_stack())
