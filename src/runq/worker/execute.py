"""Runs one job through the user's handler and turns what happened into a result body.

Sync code (plain handlers and each step of a sync generator) runs in a thread via
`asyncio.to_thread`, so the event loop keeps polling for stops while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import traceback
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from typing import Any

from runq.worker import results
from runq.worker.results import Body, ErrorMeta

Handler = Callable[[dict[str, Any]], Any]
Sink = Callable[[Any], Awaitable[None]]


class Kind(enum.Enum):
    """How a handler produces its result."""

    SYNC = "sync"
    ASYNC = "async"
    GENERATOR = "generator"
    ASYNC_GENERATOR = "async generator"

    @property
    def streams(self) -> bool:
        """Whether results go out chunk by chunk (job-done then has isStream=true)."""
        return self in (Kind.GENERATOR, Kind.ASYNC_GENERATOR)

    @property
    def cancellable(self) -> bool:
        """Whether a stop can interrupt it: only code running on the event loop can be."""
        return self in (Kind.ASYNC, Kind.ASYNC_GENERATOR)


def kind_of(handler: Handler) -> Kind:
    """Classifies a handler function, partial, or object whose `__call__` is one."""
    kind = _kind(handler)
    if kind is Kind.SYNC and not inspect.isroutine(handler):
        kind = _kind(getattr(handler, "__call__", handler))  # noqa: B004
    return kind


def _kind(call: object) -> Kind:
    if inspect.isasyncgenfunction(call):
        return Kind.ASYNC_GENERATOR
    if inspect.isgeneratorfunction(call):
        return Kind.GENERATOR
    if inspect.iscoroutinefunction(call):
        return Kind.ASYNC
    return Kind.SYNC


async def run_call(handler: Handler, kind: Kind, job: dict[str, Any], meta: ErrorMeta) -> Body:
    """Runs a non-generator handler to its job-done body.

    Raises:
        asyncio.CancelledError: an async handler was stopped.
    """
    if kind is Kind.ASYNC:
        try:
            value = await handler(job)
        except Exception as exc:
            return results.error_body(exc, traceback.format_exc(), meta)
        return results.result_body(value)
    ok, value = await asyncio.to_thread(_call_sync, handler, job, meta)
    if not ok:
        return value  # type: ignore[no-any-return]
    if inspect.isawaitable(value):  # a sync function that returned a coroutine, as runpod allows
        try:
            value = await value
        except Exception as exc:
            return results.error_body(exc, traceback.format_exc(), meta)
    return results.result_body(value)


def _call_sync(handler: Handler, job: dict[str, Any], meta: ErrorMeta) -> tuple[bool, Any]:
    # Formats the traceback in the handler's thread so it shows the handler, not asyncio.
    try:
        return True, handler(job)
    except Exception as exc:
        return False, results.error_body(exc, traceback.format_exc(), meta)


async def run_stream(
    handler: Handler,
    kind: Kind,
    job: dict[str, Any],
    sink: Sink | None,
    aggregate: bool,
    stopped: Callable[[], bool],
) -> Body | None:
    """Iterates a generator handler, sending each chunk to `sink` in order.

    Args:
        sink: awaited with each chunk before the next is produced; None sends nothing.
        aggregate: return all chunks as the final output (`return_aggregate_stream`).
        stopped: polled between chunks; a sync generator cannot be cancelled otherwise.

    Returns:
        The final job-done body, or None when the job was stopped.
    """
    chunks: list[Any] = []
    try:
        # aclosing: an early return must close the handler's generator now, not at GC time.
        async with contextlib.aclosing(_chunks(handler, kind, job)) as stream:
            async for chunk in stream:
                if stopped():
                    return None
                error = results.chunk_error(chunk)
                if error is not None:
                    return error  # runpod neither streams this chunk nor keeps the aggregate
                if aggregate:
                    chunks.append(chunk)
                if sink is not None:
                    await sink(chunk)
    except _HandlerFailed as failed:
        return results.stream_error_body(failed.exc, failed.traceback_text)
    return results.stream_final_body(chunks if aggregate else None)


class _HandlerFailed(Exception):
    def __init__(self, exc: Exception, traceback_text: str) -> None:
        super().__init__(str(exc))
        self.exc, self.traceback_text = exc, traceback_text


async def _chunks(handler: Handler, kind: Kind, job: dict[str, Any]) -> AsyncGenerator[Any, None]:
    """Yields the handler's chunks; its own exceptions come out as `_HandlerFailed`."""
    if kind is Kind.ASYNC_GENERATOR:
        agen = handler(job)
        try:
            while True:
                try:
                    chunk = await agen.__anext__()
                except StopAsyncIteration:
                    return
                except Exception as exc:
                    raise _HandlerFailed(exc, traceback.format_exc()) from exc
                yield chunk
        finally:
            with contextlib.suppress(Exception):
                await agen.aclose()
    gen: Iterator[Any] = handler(job)
    try:
        while True:
            done, chunk = await asyncio.to_thread(_next_chunk, gen)
            if done:
                return
            if isinstance(chunk, _HandlerFailed):
                raise chunk
            yield chunk
    finally:
        with contextlib.suppress(Exception):
            gen.close()  # type: ignore[attr-defined]


def _next_chunk(gen: Iterator[Any]) -> tuple[bool, Any]:
    try:
        return False, next(gen)
    except StopIteration:
        return True, None
    except Exception as exc:
        return False, _HandlerFailed(exc, traceback.format_exc())
