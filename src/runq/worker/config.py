"""The `start(config)` dict, validated once into a typed object."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runq.worker.execute import Handler, Kind, kind_of

# Keys runpod.serverless.start accepts. The local-test hooks (jobs_fetcher ...) and the
# debugger keys are accepted so runpod handler files start unchanged, and then ignored.
KNOWN_KEYS = frozenset(
    {
        "handler",
        "return_aggregate_stream",
        "refresh_worker",
        "concurrency_modifier",
        "rp_args",
        "reference_counter_start",
        "jobs_fetcher",
        "jobs_fetcher_timeout",
        "jobs_handler",
        "stop_signals_fetcher",
        "stop_signals_fetcher_timeout",
    }
)


def _same_concurrency(current: int) -> int:
    return current


@dataclass(frozen=True)
class WorkerConfig:
    """What the handler file asked for.

    Attributes:
        handler: called with each job dict.
        kind: sync, async, generator or async generator.
        aggregate: a generator's chunks also form the final output.
        refresh_worker: add `stopPod: true` to every result and exit after the first job.
        concurrency_modifier: maps the current concurrency to the wanted one, before each take.
    """

    handler: Handler
    kind: Kind
    aggregate: bool = False
    refresh_worker: bool = False
    concurrency_modifier: Callable[[int], int] = _same_concurrency

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> WorkerConfig:
        """Validates a `start()` config.

        Raises:
            ValueError: an unknown key (named), or no callable `handler`.
        """
        unknown = sorted(set(config) - KNOWN_KEYS)
        if unknown:
            raise ValueError(f"unknown worker config key(s): {', '.join(map(repr, unknown))}")
        handler = config.get("handler")
        if not callable(handler):
            raise ValueError("worker config needs a callable 'handler'")
        modifier = config.get("concurrency_modifier") or _same_concurrency
        if not callable(modifier):
            raise ValueError("worker config 'concurrency_modifier' must be callable")
        return cls(
            handler=handler,
            kind=kind_of(handler),
            aggregate=bool(config.get("return_aggregate_stream", False)),
            refresh_worker=bool(config.get("refresh_worker", False)),
            concurrency_modifier=modifier,
        )
