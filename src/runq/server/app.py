"""The FastAPI application: api routers and the dashboard, error mapping, and the control
plane's lifespan. Here, above both, so that `runq.api` never imports `runq.web`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from runq import __version__
from runq.api import admin, client, lb, logs, metrics, openai_route, secrets, worker
from runq.api.auth import ApiKeys
from runq.api.contain import RunqApp
from runq.api.responses import error_response
from runq.api.statuses import headers_of, status_of
from runq.core.spec import EndpointSpec
from runq.errors import RunqError
from runq.fleet.controlplane import ControlPlane
from runq.store.diskfull import is_disk_full
from runq.web.routes import install as install_dashboard

log = logging.getLogger("runq.api")


async def _runq_error(request: Request, exc: Exception) -> Response:
    response = error_response(str(exc), status_of(exc))
    response.headers.update(headers_of(exc))
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    response = error_response(str(exc.detail), exc.status_code)
    response.headers.update(exc.headers or {})  # e.g. Allow on a 405 (RFC 9110)
    return response


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(f"invalid request: {exc.errors()}", 400)


async def _unexpected(request: Request, exc: Exception) -> Response:
    if is_disk_full(exc):
        plane: ControlPlane = request.app.state.plane
        plane.disk.note_error(exc)
        return error_response(plane.disk.message, 507)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response("internal error (see the server log)", 500)


def create_app(plane: ControlPlane, keys: ApiKeys, specs: list[EndpointSpec]) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await plane.start(specs)
        sampling = dashboard.sample_forever()  # queue length over time, for its chart
        try:
            await keys.load()  # the stored API keys, once the store is open
            yield
        finally:
            sampling.cancel()
            await plane.stop()

    app = RunqApp(  # an unexpected error answers a 500 and keeps the connection (api.contain)
        title="runq",
        version=__version__,
        description="Self-hosted serverless endpoints, wire-compatible with RunPod.",
        lifespan=lifespan,
    )
    app.state.plane = plane
    app.state.keys = keys
    app.state.metrics = metrics.MetricsExporter(plane)  # its own registry, never the global one
    # Worker routes first: they are matched on every job, twice.
    app.router.routes[0:0] = worker.routes
    app.router.routes.extend(lb.routes)
    app.router.routes.extend(openai_route.routes)  # /v2/{endpoint}/openai/v1/...
    app.include_router(client.router)
    app.include_router(admin.router)
    app.include_router(logs.router)
    app.include_router(secrets.router)
    app.include_router(metrics.router)
    dashboard = install_dashboard(app, plane, keys)  # pages at /, behind the admin key
    app.add_exception_handler(RunqError, _runq_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
    return app
