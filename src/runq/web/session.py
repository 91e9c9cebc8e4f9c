"""Dashboard sign-in, the way Jupyter does it: `/?token=KEY` (or the login form) trades an
admin key for a session cookie.

The cookie holds a random session id, never the key; the id maps, in this process's memory,
to the key's record, which is checked again on every request (a revoked key ends its
sessions). The cookie is HttpOnly and SameSite=Strict, and every POST must come from this
origin (its Origin header, else its Referer), so another site cannot drive the dashboard.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from runq.api.auth import BOOTSTRAP_ID, ApiKeys
from runq.core.keys import ApiKey

COOKIE = "runq_session"
LIFETIME_S = 12 * 3600.0
MAX_SESSIONS = 1000  # the oldest are dropped past this: a bound on memory


@dataclass(frozen=True)
class Session:
    key: ApiKey
    expires_at: float


class Sessions:
    def __init__(self, keys: ApiKeys, clock: Callable[[], float] = time.monotonic) -> None:
        self._keys = keys
        self._clock = clock
        self._by_id: dict[str, Session] = {}

    def open(self, key: ApiKey) -> str:
        """A new session for an admin key that was just checked; returns its id."""
        while len(self._by_id) >= MAX_SESSIONS:
            del self._by_id[next(iter(self._by_id))]
        session_id = secrets.token_urlsafe(32)
        self._by_id[session_id] = Session(key, self._clock() + LIFETIME_S)
        return session_id

    def key(self, request: Request) -> ApiKey | None:
        """The admin key behind the request's session cookie, if it is live."""
        session_id = request.cookies.get(COOKIE, "")
        found = self._by_id.get(session_id)
        if found is None:
            return None
        if found.expires_at <= self._clock() or not self._still_valid(found.key):
            del self._by_id[session_id]
            return None
        return found.key

    def close(self, request: Request) -> None:
        self._by_id.pop(request.cookies.get(COOKIE, ""), None)

    def _still_valid(self, key: ApiKey) -> bool:
        if key.id == BOOTSTRAP_ID:
            return True
        current = next((k for k in self._keys.listed() if k.id == key.id), None)
        return current is not None and current.revoked_at is None and current.is_admin


def set_cookie(response: Response, request: Request, session_id: str) -> None:
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(LIFETIME_S),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def same_origin(request: Request) -> bool:
    """Whether a POST comes from a page of this server: its Origin (or, lacking one, its
    Referer) names the scheme, host and port the request was sent to."""
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    origin = request.headers.get("origin")
    if origin is None:
        referer = urlsplit(request.headers.get("referer", ""))
        origin = f"{referer.scheme}://{referer.netloc}" if referer.netloc else ""
    return bool(origin) and secrets.compare_digest(origin.lower(), own.lower())
