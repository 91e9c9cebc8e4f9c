"""Which images leave a host over its image-store budget: least recently used first, never one
in use. A pure function, one row per case."""

from __future__ import annotations

import pytest

from runq.fleet.images import ImageInfo, choose_evictions

GB = 10**9


def held(*rows: tuple[str, int, float]) -> dict[str, ImageInfo]:
    """(name, GB, last used) -> the index; the image id is the name's."""
    return {name: ImageInfo(name, f"id-{name}", "", size * GB, used) for name, size, used in rows}


THREE = held(("a", 3, 10.0), ("b", 2, 20.0), ("c", 4, 30.0))  # 9 GB


@pytest.mark.parametrize(
    ("images", "budget", "in_use", "expected"),
    [
        pytest.param(THREE, 0, set(), [], id="no budget: nothing is evicted"),
        pytest.param(THREE, 9 * GB, set(), [], id="within the budget: nothing"),
        # 9 GB - a (3) = 6 > 5, - b (2) = 4 <= 5
        pytest.param(THREE, 5 * GB, set(), ["a", "b"], id="least recently used first"),
        # a is in use: 9 - b (2) = 7 > 5, - c (4) = 3
        pytest.param(THREE, 5 * GB, {"id-a"}, ["b", "c"], id="an image in use is skipped"),
        pytest.param(
            THREE, 1 * GB, {"id-a", "id-b", "id-c"}, [], id="all in use: over budget, none go"
        ),
    ],
)
def test_choose_evictions(
    images: dict[str, ImageInfo], budget: int, in_use: set[str], expected: list[str]
) -> None:
    assert choose_evictions(images, budget, in_use) == expected
