"""Secrets over the admin API: set, list (names only), delete. A value goes in and never
comes out: workers get it in their environment where an endpoint's env refers to it as
`"{{ RUNPOD_SECRET_NAME }}"`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from runq.api import services
from runq.api.responses import json_response, read_json
from runq.errors import BadRequest
from runq.fleet.secrets import SECRETS_FILE, Secrets

router = APIRouter(prefix="/admin", tags=["admin"])
BODY_LIMIT = 128 * 1024


def _secrets(request: Request) -> Secrets:
    request.app.state.keys.require_admin(request)
    return Secrets(services.config(request).data_dir / SECRETS_FILE)


@router.get("/secrets", summary="The secrets' names and when each was set (never a value)")
async def list_secrets(request: Request) -> Response:
    return json_response(_secrets(request).listing())


@router.put("/secrets/{name}", summary='Set a secret: body {"value": "..."}')
async def set_secret(request: Request, name: str) -> Response:
    secrets = _secrets(request)
    body = await read_json(request, BODY_LIMIT)
    value = body.get("value") if isinstance(body, dict) else None
    if not isinstance(value, str):
        raise BadRequest("field 'value': expected a string")
    secrets.set(name, value)
    return json_response({"name": name, "set": True})


@router.delete("/secrets/{name}", summary="Delete a secret")
async def delete_secret(request: Request, name: str) -> Response:
    _secrets(request).delete(name)
    return json_response({"name": name, "deleted": True})
