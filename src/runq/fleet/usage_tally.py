"""Each endpoint's worker usage since the process started, for Prometheus counters, which
must never go down although the worker registry keeps only a bounded history."""

from __future__ import annotations

from collections.abc import Mapping

from runq.policy.usage import Usage, total


class UsageTally:
    """Sums the workers known now with the last figures of those the history has dropped.

    Example: workers a (3 s) and b (5 s) of one endpoint make 8 s; once a drops out of the
    history and b reaches 6 s, the endpoint shows 3 + 6 = 9 s, not 6.
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[str, Usage]] = {}  # worker id -> (endpoint, usage)
        self._retired: dict[str, Usage] = {}  # endpoint -> usage of forgotten workers

    def update(self, current: Mapping[str, tuple[str, Usage]]) -> dict[str, Usage]:
        """`current`: worker id -> (endpoint, its whole-life usage now), for every worker still
        known. Returns each endpoint's total, forgotten workers included."""
        for worker_id, (endpoint, used) in self._last.items():
            if worker_id not in current:
                self._retired[endpoint] = total([self._retired.get(endpoint, Usage()), used])
        self._last = dict(current)
        parts: dict[str, list[Usage]] = {name: [used] for name, used in self._retired.items()}
        for endpoint, used in current.values():
            parts.setdefault(endpoint, []).append(used)
        return {name: total(usages) for name, usages in parts.items()}
