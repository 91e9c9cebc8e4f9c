"""The control plane's side of image workers on Ray, pure parts: which reference a node pulls
once the deploy is pinned, and the store's table of hosts' models read as models and images."""

from __future__ import annotations

from pathlib import Path

import pytest

from runq.core.spec import loads_spec
from runq.fleet.images import Acquired, ImageInfo
from runq.fleet.ray_images import node_ref, split_index

DIGEST = "sha256:" + "d" * 64


def acquired(digest: str) -> Acquired:
    return Acquired(ImageInfo("reg.example/w:1", "sha256:id", digest, 10, 0.0), True, 1.0)


@pytest.mark.parametrize(
    ("container", "pinned", "expected"),
    [
        pytest.param("", None, ("reg.example/w:1", "missing"), id="first worker: as written"),
        pytest.param(
            'pull = "always"', None, ("reg.example/w:1", "always"), id="its pull policy kept"
        ),
        pytest.param(
            'pull = "always"',
            acquired(DIGEST),
            (f"reg.example/w@{DIGEST}", "missing"),
            id="pinned: every node pulls the deploy's digest, once",
        ),
        pytest.param(
            "", acquired(""), ("reg.example/w:1", "missing"), id="pinned to a local image: as is"
        ),
    ],
)
def test_node_ref(container: str, pinned: Acquired | None, expected: tuple[str, str]) -> None:
    spec = loads_spec(
        f'name = "e"\n[worker]\nimage = "reg.example/w:1"\n[worker.container]\n{container}\n',
        Path("e.toml"),
    )

    assert node_ref(spec, pinned) == expected


def test_the_hosts_table_holds_models_and_images_apart() -> None:
    held = {"n1": ("hf://m", "image:reg.example/w:1"), "n2": ("image:x/y@" + DIGEST,)}

    models, images = split_index(held)

    assert models == {"n1": {"hf://m"}, "n2": set()}
    assert images == {"n1": {"reg.example/w:1"}, "n2": {"x/y@" + DIGEST}}
