"""The FastAPI application: api routers and the dashboard, error mapping, and the control
plane's lifespan. Here, above both, so that `runq.api` never imports `runq.web`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from runq import __version__
from runq.api import admin, client, lb, logs, metrics, openai_route, secrets, worker
from runq.api.auth import ApiKeys
from runq.api.contain import RunqApp
from runq.api.metrics import MetricSources
from runq.api.responses import error_response
from runq.api.statuses import headers_of, status_of
from runq.core.spec import EndpointSpec
from runq.errors import RunqError
from runq.fleet.diskguard import DiskGuard
from runq.server.services import Services
from runq.store.diskfull import is_disk_full
from runq.web.history import Sources
from runq.web.routes import install as install_dashboard
from runq.web.routes import router as dashboard_router

log = logging.getLogger("runq.api")
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


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
        disk: DiskGuard = request.app.state.disk
        disk.note_error(exc)
        return error_response(disk.message, 507)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response("internal error (see the server log)", 500)


def create_app(plane: Services, keys: ApiKeys, specs: list[EndpointSpec]) -> FastAPI:
    """The app of `runq serve`: routes, the dashboard, and the services they use."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await plane.start(specs)
        app.state.replication = plane.replication  # made at start, with a shared store
        sampling = dashboard.sample_forever()  # queue length over time, for its chart
        try:
            await keys.load()  # the stored API keys, once the store is open
            yield
        finally:
            sampling.cancel()
            await plane.stop()

    app = routed_app(lifespan)
    # Each route takes the services it needs from here (runq.api.services), never `plane`.
    state = app.state
    state.config, state.clock, state.disk = plane.config, plane.clock, plane.disk
    state.endpoints, state.jobs, state.fleet = plane.endpoints, plane.jobs, plane.fleet
    state.deployments, state.ledger, state.balancer = plane.deployments, plane.ledger, plane.lb
    state.leading = lambda: plane.leading
    state.replication = None
    state.keys = keys
    sources = MetricSources(plane.endpoints, plane.jobs, plane.fleet, plane.ledger, plane.clock)
    state.metrics = metrics.MetricsExporter(sources)  # its own registry, never the global one
    sampled = Sources(plane.endpoints, plane.jobs, plane.fleet, plane.clock)
    dashboard = install_dashboard(app, sampled, keys)  # pages at /, behind the admin key
    return app


def routed_app(lifespan: Lifespan | None = None) -> FastAPI:
    """The routes and error mapping, without services: enough for the OpenAPI document."""
    app = RunqApp(  # an unexpected error answers a 500 and keeps the connection (api.contain)
        title="runq",
        version=__version__,
        description="Self-hosted serverless endpoints, wire-compatible with RunPod.",
        lifespan=lifespan,
    )
    # Worker routes first: they are matched on every job, twice.
    app.router.routes[0:0] = worker.routes
    app.router.routes.extend(lb.routes)
    app.router.routes.extend(openai_route.routes)  # /v2/{endpoint}/openai/v1/...
    app.include_router(client.router)
    app.include_router(admin.router)
    app.include_router(logs.router)
    app.include_router(secrets.router)
    app.include_router(metrics.router)
    app.include_router(dashboard_router)
    app.add_exception_handler(RunqError, _runq_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
    return app
