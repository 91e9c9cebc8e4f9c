"""Webhook delivery from the durable outbox: signed, retried with backoff, survives restarts."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Callable

import httpx

from runq.core.config import ServerConfig
from runq.store.base import JobStore, Webhook

log = logging.getLogger("runq.webhooks")

SIGNATURE_HEADER = "X-Runq-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (the Stripe scheme).

    A receiver recomputes the HMAC with the shared secret over the timestamp and the raw body,
    compares in constant time, and rejects old timestamps to stop replays.
    """
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: float, tolerance_s: float = 300) -> bool:
    """Check a signature header as a receiver would."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


class WebhookSender:
    def __init__(
        self, config: ServerConfig, store: JobStore, secret: str, clock: Callable[[], float]
    ) -> None:
        self._config = config
        self._store = store
        self._secret = secret
        self._clock = clock
        self._wake = asyncio.Event()
        self._client = httpx.AsyncClient(timeout=config.webhook_timeout_s)

    def poke(self) -> None:
        """A delivery was queued: look now rather than at the next tick."""
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                hooks = await self._store.due_webhooks(self._clock(), 32)
                if hooks:
                    await asyncio.gather(*(self._deliver(hook) for hook in hooks))
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
        finally:
            await self._client.aclose()

    async def _deliver(self, hook: Webhook) -> None:
        body = hook.body.encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, int(time.time()), body),
            "User-Agent": "runq-webhook",
        }
        try:
            response = await self._client.post(hook.url, content=body, headers=headers)
            delivered = 200 <= response.status_code < 300
            problem = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            delivered, problem = False, f"{type(exc).__name__}: {exc}"
        attempts = hook.attempts + 1
        if delivered:
            await self._store.webhook_result(hook.id, True, None)
        elif attempts >= self._config.webhook_attempts:
            log.warning("webhook for %s to %s failed for good: %s", hook.job_id, hook.url, problem)
            await self._store.webhook_result(hook.id, False, None)
        else:
            delay = self._config.webhook_backoff_s * 2 ** (attempts - 1)
            log.info("webhook for %s failed (%s); retry in %.0fs", hook.job_id, problem, delay)
            await self._store.webhook_result(hook.id, False, self._clock() + delay)
