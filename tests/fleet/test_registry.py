"""The worker registry answers one endpoint's workers from its own index: they must always be
the same workers a pass over the whole fleet finds."""

from __future__ import annotations

from runq.core.worker import WorkerState
from runq.fleet.registry import WorkerRegistry


def test_workers_of_an_endpoint_follow_registers_and_removals() -> None:
    registry = WorkerRegistry(clock=lambda: 100.0)
    a1 = registry.register("a")
    b1 = registry.register("b")
    a2 = registry.register("a", worker_id="a-fixed")

    assert registry.all("a") == [a1, a2]
    assert registry.all("b") == [b1]
    assert registry.all() == [a1, b1, a2]

    registry.remove(a1.id, "stopped")
    assert registry.all("a") == [a2]
    assert registry.all("missing") == []
    assert [w.id for w in registry.history("a")] == [a1.id, a2.id]
    assert registry.history("a")[0].state is WorkerState.TERMINATED

    again = registry.register("a", worker_id="a-fixed")  # a worker that joins again
    assert registry.all("a") == [again]
    registry.remove("a-fixed")
    assert registry.all("a") == []
    assert registry.all() == [b1]
    assert registry.counts("b")["initializing"] == 1
