"""API keys and their scopes. A key is kept only as the sha256 of its text.

Scopes: `admin` (everything) or `invoke:ENDPOINT` (that endpoint's client routes: /v2/ENDPOINT/*
and /lb/ENDPOINT/*). A key may hold several.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from runq.core.spec import NAME_PATTERN
from runq.errors import BadRequest

ADMIN = "admin"
INVOKE = "invoke:"
MAX_NAME = 64
KEY_PREFIX = "rq_"  # lets secret scanners and people tell a runq key at a glance


@dataclass(frozen=True)
class ApiKey:
    """A key as stored: never its text, only `hash` (sha256 hex of the text)."""

    id: str
    name: str
    hash: str
    scopes: tuple[str, ...]
    created_at: float
    revoked_at: float | None = None

    @property
    def label(self) -> str:
        """How messages name the key: its name, else its id."""
        return self.name or self.id

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.scopes

    def may_invoke(self, endpoint: str) -> bool:
        return self.is_admin or INVOKE + endpoint in self.scopes

    def invokable(self) -> list[str]:
        """The endpoints named by its invoke scopes."""
        return [scope[len(INVOKE) :] for scope in self.scopes if scope.startswith(INVOKE)]

    def public(self) -> dict[str, object]:
        """What the admin API shows: never the key or its hash."""
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def hash_key(key: str) -> str:
    """The stored form of a key: the hex sha256 of its UTF-8 text."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh key's text: 256 random bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    return "key_" + secrets.token_hex(6)


def parse_scopes(raw: Iterable[object]) -> tuple[str, ...]:
    """Validate scopes, dropping repeats, in the order given.

    Raises:
        BadRequest: none given, or one is neither `admin` nor `invoke:<endpoint name>`.
    """
    scopes: list[str] = []
    for scope in raw:
        if not isinstance(scope, str):
            raise BadRequest(f"field 'scopes': expected strings, got {scope!r}")
        ok = scope == ADMIN or (
            scope.startswith(INVOKE) and NAME_PATTERN.fullmatch(scope[len(INVOKE) :]) is not None
        )
        if not ok:
            raise BadRequest(
                f"field 'scopes': {scope!r} is not a scope: use 'admin' or 'invoke:ENDPOINT'"
            )
        if scope not in scopes:
            scopes.append(scope)
    if not scopes:
        raise BadRequest("field 'scopes': give at least one ('admin' or 'invoke:ENDPOINT')")
    return tuple(scopes)


def parse_name(raw: object) -> str:
    """A key's name: free text up to 64 printable characters ('' when none)."""
    if raw is None:
        return ""
    if not isinstance(raw, str) or len(raw) > MAX_NAME or not raw.isprintable():
        raise BadRequest(f"field 'name': expected up to {MAX_NAME} printable characters")
    return raw.strip()
