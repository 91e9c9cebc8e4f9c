"""`JobStore.record_host_model` / `host_models`: which host caches which model, on every backend
(the contract suite's fixtures), kept across a restart of the control plane."""

from __future__ import annotations

import pytest

from runq.store.base import JobStore
from tests.store import test_contract as contract
from tests.store.test_contract import Backend

backend, clock, store = contract.backend, contract.clock, contract.store

pytestmark = pytest.mark.timeout(30)


async def test_hosts_keep_their_models_once_each_across_a_restart(
    store: JobStore, backend: Backend
) -> None:
    assert await store.host_models() == {}
    await store.record_host_model("node-b", "hf://org/m")
    await store.record_host_model("node-a", "file:///w.bin")
    await store.record_host_model("node-b", "hf://org/m")  # again: no duplicate
    await store.record_host_model("node-b", "file:///w.bin")

    expected = {"node-a": ("file:///w.bin",), "node-b": ("file:///w.bin", "hf://org/m")}
    assert await store.host_models() == expected
    restarted = await backend.open()
    try:
        assert await restarted.host_models() == expected
    finally:
        await restarted.close()
