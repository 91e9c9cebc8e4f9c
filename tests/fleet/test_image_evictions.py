"""Which images leave a host over its image-store budget: least recently used first, never one
in use. A pure function, one row per case."""

from __future__ import annotations

import pytest

from runq.fleet.images import ImageInfo, choose_evictions

GB = 10**9


def held(*rows: tuple[str, int, float], found: tuple[str, ...] = ()) -> dict[str, ImageInfo]:
    """(name, GB, last used) -> the index; the image id is the name's. runq pulled or built
    each, except those named in `found` (on the host before runq looked)."""
    return {
        name: ImageInfo(name, f"id-{name}", "", size * GB, used, owned=name not in found)
        for name, size, used in rows
    }


THREE = held(("a", 3, 10.0), ("b", 2, 20.0), ("c", 4, 30.0))  # 9 GB
A_FOUND = held(("a", 3, 10.0), ("b", 2, 20.0), ("c", 4, 30.0), found=("a",))


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
        # a is the user's (runq found it): it counts, 9 GB, but stays; - b = 7, - c = 3
        pytest.param(
            A_FOUND, 5 * GB, set(), ["b", "c"], id="an image runq did not pull or build stays"
        ),
        pytest.param(A_FOUND, 1 * GB, {"id-b", "id-c"}, [], id="only the user's left: none go"),
    ],
)
def test_choose_evictions(
    images: dict[str, ImageInfo], budget: int, in_use: set[str], expected: list[str]
) -> None:
    assert choose_evictions(images, budget, in_use) == expected
