"""The scheduler counts this machine's model cache as the models of the host it is, so that
placement (tests/policy/test_placement.py covers the rule itself) prefers it."""

from __future__ import annotations

import pytest

from runq.core.hosts import Gpu, Host
from runq.core.spec import ComputeSection
from runq.fleet.scheduler import with_cached_models
from runq.policy.placement import HostUsage, place

L4 = (Gpu("L4", 24, 2),)


@pytest.mark.parametrize(
    ("hosts", "cached", "expected"),
    [
        # The detected machine (no [[hosts]]) is one host named "local".
        ((Host("local"),), ("hf://m",), {"local": ("hf://m",)}),
        # One declared host is this machine, whatever its name.
        ((Host("box", models=("hf://x",)),), ("hf://m",), {"box": ("hf://x", "hf://m")}),
        # Several: only the one named "local"; the others' models are what they declare.
        (
            (Host("local"), Host("far", models=("hf://m",))),
            ("hf://m", "hf://n"),
            {"local": ("hf://m", "hf://n"), "far": ("hf://m",)},
        ),
        ((Host("a"), Host("b")), ("hf://m",), {"a": (), "b": ()}),
        ((Host("local", models=("hf://m",)),), (), {"local": ("hf://m",)}),
    ],
    ids=[
        "the detected local host gets the cache",
        "a single declared host is this machine",
        "of several hosts only local gets it",
        "several hosts, none named local: no host gets it",
        "an empty cache changes nothing",
    ],
)
def test_which_host_the_cache_counts_for(
    hosts: tuple[Host, ...], cached: tuple[str, ...], expected: dict[str, tuple[str, ...]]
) -> None:
    got = {host.name: with_cached_models(host, hosts, cached).models for host in hosts}
    assert got == expected


def test_placement_prefers_the_host_whose_cache_holds_the_model() -> None:
    # Packing alone would pick "far" (1 free L4 fits tighter than local's 2); the model cached
    # on "local" wins over packing.
    hosts = (Host("far", gpus=L4), Host("local", gpus=L4))
    usage = [
        HostUsage(with_cached_models(hosts[0], hosts, ("hf://m",)), frozenset({0})),
        HostUsage(with_cached_models(hosts[1], hosts, ("hf://m",))),
    ]
    compute = ComputeSection(gpu=("24GB",))

    chosen = place(compute, "hf://m", usage)
    assert chosen is not None and chosen.host == "local"
    other = place(compute, "hf://other", usage)
    assert other is not None and other.host == "far"
