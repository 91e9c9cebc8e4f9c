"""API keys for clients and admins; per-worker tokens for the worker protocol.

Routes state what they need: `keys.require(request, endpoint=...)` on client routes (the key
may invoke that endpoint, within the rate limit), `keys.require_admin(request)` on admin
routes. The raw-ASGI load balancer, which has only the headers, calls `keys.check` and
`keys.check_admin` on `key_from_headers(...)`.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from starlette.requests import Request

from runq.core.keys import ADMIN, ApiKey, hash_key, new_key
from runq.errors import BadRequest, Forbidden, NotFound, RateLimited, Unauthorized
from runq.policy.ratelimit import Bucket, admit

BOOTSTRAP_ID = "bootstrap"
INVALID = "missing or invalid API key in the Authorization header"


def _strip_bearer(header: str) -> str:
    header = header.strip()
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return header


def presented_key(request: Request) -> str:
    """The key in `Authorization`, as `Bearer <key>` or the raw key (spec 1.1)."""
    return _strip_bearer(request.headers.get("authorization", ""))


def key_from_headers(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """`presented_key` for raw ASGI headers (lower-case names, as ASGI gives them)."""
    for name, value in headers:
        if name == b"authorization":
            return _strip_bearer(value.decode("latin-1"))
    return ""


class KeyStore(Protocol):
    """Where API keys are kept: the job store (runq.store.base.JobStore) has these."""

    async def create_key(self, name: str, key_hash: str, scopes: tuple[str, ...]) -> ApiKey: ...

    async def api_keys(self) -> list[ApiKey]: ...

    async def revoke_key(self, key_id: str) -> ApiKey | None: ...


class ApiKeys:
    """Who may do what. Keys are looked up in memory by the sha256 of the presented key: the
    cache is loaded from the store at start and updated on create and revoke (this process
    is the only writer). The bootstrap key (RUNQ_API_KEY or data_dir/api_key) is an admin key
    that lives only here, never in the store."""

    def __init__(
        self,
        admin_key: str,
        store: KeyStore | None = None,
        rate_limit: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._bootstrap = ApiKey(BOOTSTRAP_ID, BOOTSTRAP_ID, hash_key(admin_key), (ADMIN,), 0.0)
        self._has_bootstrap = bool(admin_key)
        self._by_hash: dict[str, ApiKey] = {}
        self._stored: dict[str, ApiKey] = {}  # by id: what the admin API lists
        self._put_bootstrap()
        self._rate = rate_limit
        self._burst = max(rate_limit, 1.0)
        self._buckets: dict[str, Bucket] = {}
        self._clock = clock

    async def load(self) -> None:
        """Read the stored keys (after the store is open)."""
        for key in await self._writer().api_keys():
            self._remember(key)
        self._put_bootstrap()  # the operator's own key wins over a stored one

    def _remember(self, key: ApiKey) -> None:
        self._by_hash[key.hash] = key
        self._stored[key.id] = key

    def _put_bootstrap(self) -> None:
        if self._has_bootstrap:
            self._by_hash[self._bootstrap.hash] = self._bootstrap

    # --- checks -------------------------------------------------------------------------
    def authenticate(self, key: str) -> ApiKey:
        """The live key whose text is `key`.

        Raises:
            Unauthorized: no key, an unknown one or a revoked one.
        """
        if key:
            digest = hash_key(key)
            found = self._by_hash.get(digest)
            if found is not None and hmac.compare_digest(found.hash, digest):
                if found.revoked_at is None:
                    return found
                raise Unauthorized(f"API key '{found.label}' was revoked")
        raise Unauthorized(INVALID)

    def check(self, key: str, endpoint: str) -> ApiKey:
        """A client call on `endpoint`: the key may invoke it and is within the rate limit.

        Raises:
            Unauthorized: see `authenticate`.
            Forbidden: the key's scopes do not name the endpoint.
            RateLimited: the key is over `rate_limit` requests per second.
        """
        found = self.authenticate(key)
        if not found.may_invoke(endpoint):
            raise Forbidden(f"key '{found.label}' may not invoke endpoint '{endpoint}'")
        if self._rate > 0:
            self._spend(found)
        return found

    def check_admin(self, key: str) -> ApiKey:
        """An admin call: the key has the `admin` scope.

        Raises:
            Unauthorized: see `authenticate`.
            Forbidden: a valid key without the admin scope.
        """
        found = self.authenticate(key)
        if not found.is_admin:
            endpoints = ", ".join(f"'{name}'" for name in found.invokable())
            raise Forbidden(
                f"key '{found.label}' is not an admin key: it may only invoke {endpoints}"
            )
        return found

    def require(self, request: Request, endpoint: str) -> ApiKey:
        """`check` on the request's Authorization header: for client routes."""
        return self.check(presented_key(request), endpoint)

    def require_admin(self, request: Request) -> ApiKey:
        """`check_admin` on the request's Authorization header: for admin routes."""
        return self.check_admin(presented_key(request))

    def _spend(self, key: ApiKey) -> None:
        verdict = admit(self._buckets.get(key.id), self._rate, self._burst, self._clock())
        self._buckets[key.id] = verdict.bucket
        if not verdict.allowed:
            raise RateLimited(
                f"key '{key.label}' is over its rate limit of {self._rate:g} requests per "
                f"second: retry in {verdict.retry_after_s}s",
                verdict.retry_after_s,
            )

    # --- management ---------------------------------------------------------------------
    async def create(self, name: str, scopes: tuple[str, ...]) -> tuple[ApiKey, str]:
        """A new key: its record and its text, which is shown this once and never stored."""
        text = new_key()
        key = await self._writer().create_key(name, hash_key(text), scopes)
        self._remember(key)
        return key, text

    async def revoke(self, key_id: str) -> ApiKey:
        if key_id == BOOTSTRAP_ID:
            raise BadRequest(
                "the bootstrap key comes from RUNQ_API_KEY or data_dir/api_key: change it there "
                "and restart runq serve"
            )
        key = await self._writer().revoke_key(key_id)
        if key is None:
            raise NotFound(f"API key '{key_id}' not found")
        self._remember(key)
        self._put_bootstrap()
        self._buckets.pop(key.id, None)
        return key

    def listed(self) -> list[ApiKey]:
        """The stored keys, revoked ones included, oldest first (not the bootstrap key)."""
        return sorted(self._stored.values(), key=lambda key: key.created_at)

    def _writer(self) -> KeyStore:
        if self._store is None:
            raise RuntimeError("ApiKeys was built without a store")
        return self._store


def load_or_create_secret(data_dir: Path, name: str, env_var: str | None = None) -> str:
    """A secret from the environment, else from `data_dir/name`, else a new one kept there.

    A secret from the environment is never written down, and a file holding another one (a
    stale key from an earlier start) is removed: the file never holds a key the server
    refuses, and a local CLI then says to set RUNQ_API_KEY instead of sending a stale one."""
    path = data_dir / name
    if env_var and os.environ.get(env_var):
        secret = os.environ[env_var]
        with contextlib.suppress(FileNotFoundError):
            if path.read_text().strip() != secret:
                path.unlink()
        return secret
    if path.exists():
        return path.read_text().strip()
    secret = secrets.token_urlsafe(32)
    _write_secret(path, secret)
    return secret


def _write_secret(path: Path, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.new")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    temporary.replace(path)  # atomic: a reader sees the old secret or the new one
