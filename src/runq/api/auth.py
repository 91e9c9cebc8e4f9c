"""API keys for clients and admins; per-worker tokens for the worker protocol."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from starlette.requests import Request

from runq.errors import Unauthorized


def presented_key(request: Request) -> str:
    """The key in `Authorization`, as `Bearer <key>` or the raw key (spec 1.1)."""
    header = request.headers.get("authorization", "").strip()
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return header


class ApiKeys:
    def __init__(self, admin_key: str) -> None:
        self._admin = admin_key

    def is_admin(self, key: str) -> bool:
        return bool(key) and hmac.compare_digest(key.encode(), self._admin.encode())

    def require(self, request: Request) -> None:
        if not self.is_admin(presented_key(request)):
            raise Unauthorized("missing or invalid API key in the Authorization header")


def load_or_create_secret(data_dir: Path, name: str, env_var: str | None = None) -> str:
    """A secret from the environment, else from `data_dir/name`, else a new one kept there."""
    if env_var and os.environ.get(env_var):
        return os.environ[env_var]
    path = data_dir / name
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret
