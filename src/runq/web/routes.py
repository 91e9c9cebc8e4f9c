"""Dashboard routes: pages, the fragments the page script refreshes, and the actions.

Pages answer the login form (401) until the browser has a session; fragments and actions
answer 401 without one. Actions call the same services as the API does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote

import jinja2
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from runq.api import logs, services
from runq.api.auth import ApiKeys
from runq.api.statuses import status_of
from runq.core.keys import ApiKey
from runq.errors import BadRequest, Forbidden, NotFound, RunqError, Unauthorized
from runq.web import format as fmt
from runq.web import history, views
from runq.web.session import Sessions, same_origin, set_cookie

router = APIRouter(include_in_schema=False)

STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
NOTICES = {"cancelled": "Job cancelled.", "purged": "Queue purged.", "scaled": "Workers changed."}
FORM_LIMIT = 16 * 1024
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",  # the action buttons must not be framed (clickjacking)
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "same-origin",
}


class Dashboard:
    """What the routes share: templates, sessions, the queue-length history."""

    def __init__(self, sources: history.Sources, keys: ApiKeys) -> None:
        self._sources = sources
        self.keys = keys
        self.sessions = Sessions(keys)
        self.history = history.History()
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("runq.web", "templates"),
            autoescape=True,  # endpoint names, job errors and TOML are user-controlled
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters.update(
            secs=fmt.seconds, usd=fmt.usd, urlpart=lambda v: quote(str(v), safe="")
        )

    def sample_forever(self) -> asyncio.Task[None]:
        return asyncio.create_task(history.run(self._sources, self.history), name="runq-dashboard")

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("signed_in", True)
        html = self.templates.get_template(template).render(**context)
        return HTMLResponse(html, status, headers=SECURITY_HEADERS)

    def login(self, error: str = "", next_path: str = "/", status: int = 401) -> HTMLResponse:
        return self.render("login.html", status, error=error, next_path=next_path, signed_in=False)


def install(app: FastAPI, sources: history.Sources, keys: ApiKeys) -> Dashboard:
    """The dashboard's state on `app`; its routes are in `router`, included with the API's."""
    dashboard = Dashboard(sources, keys)
    app.state.dashboard = dashboard
    return dashboard


def _dash(request: Request) -> Dashboard:
    dashboard: Dashboard = request.app.state.dashboard
    return dashboard


def _safe_next(raw: str) -> str:
    """A local path to go to after sign-in; anything else (another site) becomes `/`."""
    if raw.startswith("/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return "/"


async def _gate(request: Request) -> ApiKey | Response:
    """The signed-in admin key, or the response to send instead: a redirect that trades
    `?token=` for a session cookie, or the login form."""
    dash = _dash(request)
    token = request.query_params.get("token")
    if token is not None:
        try:
            key = dash.keys.check_admin(token)
        except (Unauthorized, Forbidden) as exc:
            return dash.login(str(exc), request.url.path)
        response = RedirectResponse(request.url.path, 303)  # the token leaves the address bar
        set_cookie(response, request, dash.sessions.open(key))
        return response
    signed_in = dash.sessions.key(request)
    if signed_in is None:
        return dash.login("", request.url.path)
    return signed_in


def _unauthorized() -> Response:
    return PlainTextResponse("sign in to the dashboard first", 401)


@router.get("/")
async def index(request: Request) -> Response:
    gate = await _gate(request)
    if isinstance(gate, Response):
        return gate
    rows = await views.endpoint_rows(request)
    return _dash(request).render("index.html", rows=rows)


@router.get("/fragments/endpoints")
async def endpoints_fragment(request: Request) -> Response:
    dash = _dash(request)
    if dash.sessions.key(request) is None:
        return _unauthorized()
    return dash.render("_endpoints.html", rows=await views.endpoint_rows(request))


async def _endpoint_page(
    request: Request, name: str, error: str = "", status: int = 200
) -> Response:
    dash = _dash(request)
    try:
        live = await views.endpoint_live(request, dash.history, name)
    except NotFound as exc:
        return dash.render("error.html", 404, message=str(exc))
    return dash.render(
        "endpoint.html",
        status,
        name=name,
        live=live,
        config=await views.endpoint_config(request, name),
        error=error,
        notice=NOTICES.get(request.query_params.get("notice", ""), ""),
    )


@router.get("/endpoints/{name}")
async def endpoint_page(name: str, request: Request) -> Response:
    gate = await _gate(request)
    if isinstance(gate, Response):
        return gate
    return await _endpoint_page(request, name)


@router.get("/endpoints/{name}/live")
async def endpoint_fragment(name: str, request: Request) -> Response:
    dash = _dash(request)
    if dash.sessions.key(request) is None:
        return _unauthorized()
    try:
        live = await views.endpoint_live(request, dash.history, name)
    except NotFound as exc:
        return PlainTextResponse(str(exc), 404)
    return dash.render("_endpoint_live.html", name=name, live=live)


@router.get("/workers/{worker_id}/log")
async def worker_log_page(worker_id: str, request: Request) -> Response:
    gate = await _gate(request)
    if isinstance(gate, Response):
        return gate
    dash = _dash(request)
    known = services.fleet(request).history()
    worker = next((w for w in known if w.id == worker_id), None)
    endpoint = worker.endpoint if worker is not None else ""
    return dash.render("worker_log.html", worker_id=worker_id, endpoint=endpoint)


@router.get("/workers/{worker_id}/log/stream")
async def worker_log_stream(worker_id: str, request: Request) -> Response:
    dash = _dash(request)
    if dash.sessions.key(request) is None:
        return _unauthorized()
    try:
        return await logs.follow_worker(request, worker_id)
    except RunqError as exc:
        return PlainTextResponse(str(exc), status_of(exc))


@router.get("/login")
async def login_form(request: Request) -> Response:
    return _dash(request).login("", _safe_next(request.query_params.get("next", "/")), 200)


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > FORM_LIMIT:
        raise BadRequest(f"form over {FORM_LIMIT} bytes")
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[-1] for name, values in fields.items()}


@router.post("/login")
async def login(request: Request) -> Response:
    dash = _dash(request)
    if not same_origin(request):
        return PlainTextResponse("cross-origin POST refused", 403)
    form = await _form(request)
    next_path = _safe_next(form.get("next", "/"))
    try:
        key = dash.keys.check_admin(form.get("key", "").strip())
    except (Unauthorized, Forbidden) as exc:
        return dash.login(str(exc), next_path)
    response = RedirectResponse(next_path, 303)
    set_cookie(response, request, dash.sessions.open(key))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    dash = _dash(request)
    if not same_origin(request):
        return PlainTextResponse("cross-origin POST refused", 403)
    dash.sessions.close(request)
    response = RedirectResponse("/login", 303)
    response.delete_cookie("runq_session", path="/")
    return response


async def _action(
    request: Request, name: str, notice: str, act: Callable[[dict[str, str]], Awaitable[None]]
) -> Response:
    """Run a page action: same origin and a session, else 403/401; a refused action shows the
    endpoint page with the error; done, back to the page (303: a reload does not repeat it)."""
    dash = _dash(request)
    if not same_origin(request):
        return PlainTextResponse("cross-origin POST refused", 403)
    if dash.sessions.key(request) is None:
        return _unauthorized()
    try:
        services.endpoints(request).spec(name)
        await act(await _form(request))
    except RunqError as exc:
        return await _endpoint_page(request, name, str(exc), status_of(exc))
    return RedirectResponse(f"/endpoints/{quote(name, safe='')}?notice={notice}", 303)


@router.post("/endpoints/{name}/jobs/{job_id}/cancel")
async def cancel_job(name: str, job_id: str, request: Request) -> Response:
    jobs = services.jobs(request)

    async def act(form: dict[str, str]) -> None:
        job = await jobs.get(job_id)
        if job is None or job.endpoint != name:
            raise NotFound(f"job '{job_id}' not found on endpoint '{name}'")
        await jobs.cancel(job_id)

    return await _action(request, name, "cancelled", act)


@router.post("/endpoints/{name}/purge")
async def purge(name: str, request: Request) -> Response:
    jobs = services.jobs(request)

    async def act(form: dict[str, str]) -> None:
        await jobs.purge(name)

    return await _action(request, name, "purged", act)


def _count(form: dict[str, str], field: str, label: str) -> int:
    raw = form.get(field, "").strip()
    if not (raw.isascii() and raw.lstrip("-").isdigit()):
        raise BadRequest(f"{label}: expected a whole number, got {raw!r}")
    return int(raw)


@router.post("/endpoints/{name}/workers")
async def set_workers(name: str, request: Request) -> Response:
    deployments = services.deployments(request)

    async def act(form: dict[str, str]) -> None:
        active = _count(form, "active_workers", "active workers")
        maximum = _count(form, "max_workers", "max workers")
        await deployments.set_workers(name, active, maximum)

    return await _action(request, name, "scaled", act)


@router.get("/dashboard-static/{file}")
async def static(file: str) -> Response:
    kind = STATIC.get(file)
    if kind is None:
        return PlainTextResponse("not found", 404)
    text = resources.files("runq.web").joinpath("static", file).read_text("utf-8")
    return Response(text, media_type=kind, headers={"Cache-Control": "max-age=300"})
