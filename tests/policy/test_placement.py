"""runq.policy.placement: which host and GPUs a new worker gets, or none (THROTTLED)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from runq.core.hosts import Gpu, Host
from runq.core.spec import ComputeSection
from runq.policy.placement import HostUsage, Placement, cuda_allows, place


def l4(count: int) -> Gpu:
    return Gpu("L4", 24, count)


def a5000(count: int) -> Gpu:
    return Gpu("A5000", 24, count)


def a6000(count: int) -> Gpu:
    return Gpu("A6000", 48, count)


def host(
    name: str, *gpus: Gpu, used: Sequence[int] = (), cpu_workers: int = 0, **overrides: Any
) -> HostUsage:
    """A host with `gpus`, `used` of them taken and `cpu_workers` running; no CPU slots unless
    `cpu_slots` is given."""
    return HostUsage(Host(name, gpus=gpus, **overrides), frozenset(used), cpu_workers)


def case(
    expected: Placement | None,
    hosts: list[HostUsage],
    *,
    id: str,
    model: str = "",
    image: str = "",
    counts: Mapping[str, int] | None = None,
    spread: bool = False,
    **compute: Any,
) -> Any:
    """One row: the endpoint's [compute] (gpu defaults to ["24GB"]), its model and image, the
    hosts, the answer."""
    section = ComputeSection(**{"gpu": ("24GB",), **compute})
    return pytest.param(section, model, image, hosts, counts, spread, expected, id=id)


def gpu_at(name: str, indices: tuple[int, ...], gpu_type: str, category: str) -> Placement:
    return Placement(name, indices, gpu_type, category)


def cpu_at(name: str) -> Placement:
    return Placement(name, (), "cpu", "cpu")


PRIORITY = [
    case(
        gpu_at("a", (0,), "L4", "24GB"),
        [host("b", a6000(2)), host("a", l4(2))],
        gpu=("24GB", "48GB"),
        id="the first category with room wins over host order",
    ),
    case(
        gpu_at("b", (0,), "A6000", "48GB"),
        [host("a", l4(2), used=[0, 1]), host("b", a6000(2))],
        gpu=("24GB", "48GB"),
        id="a full first category falls back to the next",
    ),
    case(
        None,
        [host("a", l4(2), used=[0, 1]), host("b", a6000(1), used=[0])],
        gpu=("24GB", "48GB"),
        id="every category full is throttled",
    ),
    case(None, [], id="no hosts at all is throttled"),
    case(
        gpu_at("a", (0,), "L4", "24GB"),
        [host("a", l4(1))],
        gpu=("96GB", "24GB"),
        id="a category not in the table is skipped",
    ),
    case(
        gpu_at("a", (0,), "L4", "24GB"),
        [host("a", l4(1))],
        gpu=("24gb",),
        id="a category name in lower case is the table's category",
    ),
]

GPU_TYPES = [
    case(
        gpu_at("b", (0,), "A5000", "24GB"),
        [host("a", l4(2)), host("b", a5000(1))],
        gpu_types=("A5000",),
        id="gpu_types leaves out other types of the category",
    ),
    case(
        gpu_at("b", (0,), "A6000", "48GB"),
        [host("a", l4(2)), host("b", a6000(1))],
        gpu=("24GB", "48GB"),
        gpu_types=("a6000",),
        id="a category with none of gpu_types is passed over, types in any case",
    ),
    case(
        None,
        [host("a", a5000(2))],
        gpu_types=("L4",),
        id="only disabled types free is throttled",
    ),
]

FILTERS = [
    case(
        gpu_at("b", (0,), "L4", "24GB"),
        [host("a", l4(1), data_center="home"), host("b", l4(1), data_center="cloud")],
        data_centers=("cloud",),
        id="a data centre filter skips hosts elsewhere",
    ),
    case(
        None,
        [host("a", l4(1), data_center="home"), host("b", l4(1))],
        data_centers=("cloud",),
        id="no host in the data centres is throttled, undeclared ones included",
    ),
    case(
        gpu_at("b", (0,), "L4", "24GB"),
        [host("a", l4(1), cuda_version="12.2"), host("b", l4(1), cuda_version="12.4.1")],
        cuda_versions=("12.4",),
        id="CUDA 12.4 allows 12.4.1 and not 12.2",
    ),
    case(
        gpu_at("a", (0,), "L4", "24GB"),
        [host("a", l4(1), cuda_version="12.6")],
        cuda_versions=("11.8", "12"),
        id="CUDA 12 allows any 12.x",
    ),
    case(
        None,
        [host("a", l4(1), cuda_version="12.6")],
        cuda_versions=("12.4",),
        id="CUDA versions are an allowed list, not a minimum",
    ),
    case(
        None,
        [host("a", l4(1))],
        cuda_versions=("12.4",),
        id="a host without a CUDA version fails a CUDA filter",
    ),
    case(
        cpu_at("a"),
        [host("a", cpu_slots=1)],
        gpu=("cpu",),
        cuda_versions=("12.4",),
        id="CUDA versions do not apply to cpu workers",
    ),
    case(
        gpu_at("b", (0,), "L4", "24GB"),
        [host("a", l4(1)), host("b", l4(1), volumes={"models": "/mnt/models"})],
        network_volume="models",
        id="a network volume needs a host that mounts it",
    ),
    case(
        None,
        [host("a", l4(1), volumes={"data": "/mnt/data"})],
        network_volume="models",
        id="no host with the volume is throttled",
    ),
    case(
        None,
        [host("a", cpu_slots=4, data_center="home")],
        gpu=("cpu",),
        data_centers=("cloud",),
        id="data centres apply to cpu workers too",
    ),
]

LOCALITY_AND_PACKING = [
    case(
        gpu_at("b", (0,), "L4", "24GB"),
        [host("a", l4(2), used=[0]), host("b", l4(4), models=("hf://m",))],
        model="hf://m",
        id="a host with the model cached wins over packing",
    ),
    case(
        gpu_at("a", (1,), "L4", "24GB"),
        [host("a", l4(2), used=[0]), host("b", l4(4), models=("hf://m",))],
        model="hf://other",
        id="a cache of another model does not count",
    ),
    case(
        gpu_at("b", (3,), "L4", "24GB"),
        [host("a", l4(4)), host("b", l4(4), used=[0, 1, 2])],
        id="packing: the host with fewest free GPUs that fit (1 < 4)",
    ),
    case(
        gpu_at("a", (0,), "L4", "24GB"),
        [host("a", l4(2)), host("b", l4(2))],
        id="equal free GPUs go to the first host",
    ),
    case(
        gpu_at("a", (1, 3), "L4", "24GB"),
        [host("a", l4(4), used=[0, 2])],
        gpus_per_worker=2,
        id="a worker gets the lowest free indices",
    ),
    case(
        gpu_at("a", (1,), "L4", "24GB"),
        [host("a", Gpu("A100", 80, 1), l4(2))],
        id="indices count every GPU of the host in declared order",
    ),
]

MULTI_GPU = [
    # a: 2 - 1 = 1 free < 2; b: 4 free >= 2.
    case(
        gpu_at("b", (0, 1), "L4", "24GB"),
        [host("a", l4(2), used=[1]), host("b", l4(4))],
        gpus_per_worker=2,
        id="two GPUs per worker skip a host with one free",
    ),
    case(
        None,
        [host("a", l4(1), a5000(1)), host("b", l4(1))],
        gpus_per_worker=2,
        id="the GPUs of one worker are one type on one host",
    ),
    case(
        gpu_at("b", (0, 1), "A6000", "48GB"),
        [host("a", l4(4), used=[0, 1, 2]), host("b", a6000(2))],
        gpu=("24GB", "48GB"),
        gpus_per_worker=2,
        id="too few GPUs in the first category falls back",
    ),
]

SPREAD = [
    # Fitting: 24GB (3 workers), 48GB (1): 1 < 3.
    case(
        gpu_at("b", (0,), "A6000", "48GB"),
        [host("a", l4(4)), host("b", a6000(4))],
        gpu=("24GB", "48GB"),
        counts={"24GB": 3, "48GB": 1},
        spread=True,
        id="spread picks the category with fewest of the endpoint's workers",
    ),
    case(
        gpu_at("a", (0,), "L4", "24GB"),
        [host("a", l4(4)), host("b", a6000(4))],
        gpu=("24GB", "48GB"),
        counts={"24GB": 2, "48GB": 2},
        spread=True,
        id="a spread tie goes to the higher priority",
    ),
    case(
        gpu_at("a", (0,), "L4", "24GB"),
        [host("a", l4(4)), host("b", a6000(1), used=[0])],
        gpu=("24GB", "48GB"),
        counts={"24GB": 5},
        spread=True,
        id="spread only weighs categories that fit",
    ),
    case(
        gpu_at("b", (0,), "A6000", "48GB"),
        [host("a", l4(4)), host("b", a6000(4))],
        gpu=("24GB", "48GB"),
        counts={"24GB": 5},
        spread=True,
        id="a category missing from the counts holds none",
    ),
    case(
        gpu_at("a", (0,), "L4", "24GB"),
        [host("a", l4(4)), host("b", a6000(4))],
        gpu=("24GB", "48GB"),
        counts={"24GB": 5},
        id="without spread the counts are ignored",
    ),
    case(
        gpu_at("a", (0,), "L4", "24GB"),
        [host("a", l4(4)), host("b", a6000(4))],
        gpu=("24GB", "48GB"),
        spread=True,
        id="spread without counts keeps the priority",
    ),
]

CPU = [
    case(cpu_at("a"), [host("a", cpu_slots=2, cpu_workers=1)], gpu=("cpu",), id="a pool slot"),
    case(None, [host("a", cpu_slots=2, cpu_workers=2)], gpu=("cpu",), id="a full pool throttles"),
    case(
        cpu_at("b"),
        [host("a", l4(1), cpu_slots=8), host("b", cpu_slots=8)],
        gpu=("cpu",),
        id="cpu workers go to a CPU pool before a GPU host",
    ),
    case(
        cpu_at("a"),
        [host("a", l4(1), cpu_slots=8), host("b", cpu_slots=1, cpu_workers=1)],
        gpu=("cpu",),
        id="a GPU host takes cpu workers when the pools are full",
    ),
    case(
        None,
        [host("a", l4(1))],
        gpu=("cpu",),
        id="a GPU host with no cpu slots takes no cpu workers",
    ),
    # a: 8 - 0 = 8 free, b: 4 - 2 = 2 free: pack onto b.
    case(
        cpu_at("b"),
        [host("a", cpu_slots=8), host("b", cpu_slots=4, cpu_workers=2)],
        gpu=("cpu",),
        id="cpu workers pack onto the pool with fewest free slots",
    ),
    case(
        cpu_at("a"),
        [host("a", cpu_slots=8, models=("hf://m",)), host("b", cpu_slots=4, cpu_workers=2)],
        gpu=("cpu",),
        model="hf://m",
        id="a pool with the model cached wins",
    ),
    case(
        cpu_at("p"),
        [host("a", l4(1), used=[0]), host("p", cpu_slots=2)],
        gpu=("24GB", "cpu"),
        id="cpu as the last priority catches a full GPU fleet",
    ),
    case(
        cpu_at("p"),
        [host("a", l4(4)), host("p", cpu_slots=2)],
        gpu=("24GB", "cpu"),
        counts={"24GB": 4},
        spread=True,
        id="spread can choose cpu",
    ),
]

IMAGE = "reg.example/team/worker@sha256:1111"
TAGGED = "reg.example/team/worker:v2"
IMAGE_LOCALITY = [
    # a: 3 free, b: 1 free. Packing alone picks b; a holds the image.
    case(
        gpu_at("a", (1,), "L4", "24GB"),
        [host("a", l4(4), used=[0], images=(IMAGE,)), host("b", l4(4), used=[0, 1, 2])],
        image=IMAGE,
        id="the docstring's example: a host holding the image wins over packing",
    ),
    case(
        gpu_at("b", (3,), "L4", "24GB"),
        [host("a", l4(4), used=[0], images=(TAGGED,)), host("b", l4(4), used=[0, 1, 2])],
        image=IMAGE,
        id="another image on a host does not count (a tag is not the pinned digest)",
    ),
    case(
        gpu_at("b", (3,), "L4", "24GB"),
        [host("a", l4(4), used=[0], images=(IMAGE,)), host("b", l4(4), used=[0, 1, 2])],
        id="an endpoint with no image (a process worker): packing as before",
    ),
    case(
        gpu_at("b", (0,), "L4", "24GB"),
        [host("a", l4(1), used=[0], images=(IMAGE,)), host("b", l4(1))],
        image=IMAGE,
        id="a host that holds the image but has no free GPU is not chosen",
    ),
    # b has the model and not the image, a the image and not the model; c both.
    case(
        gpu_at("b", (0,), "L4", "24GB"),
        [host("a", l4(1), images=(IMAGE,)), host("b", l4(1), models=("hf://m",))],
        model="hf://m",
        image=IMAGE,
        id="the cached model comes before the held image",
    ),
    case(
        gpu_at("c", (0,), "L4", "24GB"),
        [
            host("a", l4(1), images=(IMAGE,)),
            host("b", l4(1), models=("hf://m",)),
            host("c", l4(4), models=("hf://m",), images=(IMAGE,)),
        ],
        model="hf://m",
        image=IMAGE,
        id="a host with both the model and the image wins even with more free GPUs",
    ),
    case(
        gpu_at("a", (0,), "L4", "24GB"),
        [host("a", l4(1), images=(IMAGE,)), host("b", l4(1))],
        gpu=("48GB", "24GB"),
        image=IMAGE,
        id="priority first: no 48GB host, so the 24GB host holding the image",
    ),
    case(
        gpu_at("x", (0,), "A6000", "48GB"),
        [host("a", l4(1), images=(IMAGE,)), host("x", a6000(1))],
        gpu=("48GB", "24GB"),
        image=IMAGE,
        id="the image never overrides the GPU priority",
    ),
    # p: 4 free, q: 1 free; p holds the image.
    case(
        cpu_at("p"),
        [host("p", cpu_slots=4, images=(IMAGE,)), host("q", cpu_slots=4, cpu_workers=3)],
        gpu=("cpu",),
        image=IMAGE,
        id="cpu workers too go where the image is",
    ),
]

# The docstring's worked example.
EXAMPLE_HOSTS = [
    host("a", l4(4), used=[0, 1, 2]),
    host("b", l4(4), used=[0]),
    host("c", a6000(2), models=("hf://m",)),
]
EXAMPLE = [
    case(
        gpu_at("b", (1, 2), "L4", "24GB"),
        EXAMPLE_HOSTS,
        gpu=("24GB", "48GB"),
        gpus_per_worker=2,
        model="hf://m",
        id="worked example: 24GB first, b has 3 free",
    ),
    case(
        gpu_at("c", (0, 1), "A6000", "48GB"),
        EXAMPLE_HOSTS,
        gpu=("24GB", "48GB"),
        gpus_per_worker=2,
        model="hf://m",
        counts={"24GB": 3},
        spread=True,
        id="worked example with spread: 48GB holds fewer",
    ),
]


@pytest.mark.parametrize(
    ("compute", "model", "image", "hosts", "counts", "spread", "expected"),
    PRIORITY
    + GPU_TYPES
    + FILTERS
    + LOCALITY_AND_PACKING
    + IMAGE_LOCALITY
    + MULTI_GPU
    + SPREAD
    + CPU
    + EXAMPLE,
)
def test_place(
    compute: ComputeSection,
    model: str,
    image: str,
    hosts: list[HostUsage],
    counts: Mapping[str, int] | None,
    spread: bool,
    expected: Placement | None,
) -> None:
    assert place(compute, model, hosts, counts, spread=spread, image=image) == expected


@pytest.mark.parametrize(
    ("entry", "version", "allowed"),
    [
        pytest.param("12.4", "12.4", True, id="the same version"),
        pytest.param("12.4", "12.4.1", True, id="a patch release of it"),
        pytest.param("12.4", "12.6", False, id="a newer minor is not allowed"),
        pytest.param("12.4", "12", False, id="a shorter host version is not enough"),
        pytest.param("12", "12.6", True, id="a major allows its minors"),
        pytest.param("12.1", "12.10", False, id="numbers, not text: 12.1 is not 12.10"),
        pytest.param(" 12.4 ", "12.4", True, id="spaces around are ignored"),
        pytest.param("12.4", "", False, id="an unknown host version"),
        pytest.param("cu124", "cu124", True, id="text that is not a version matches itself"),
        pytest.param("12.x", "12.4", False, id="no wildcards"),
    ],
)
def test_cuda_allows(entry: str, version: str, allowed: bool) -> None:
    assert cuda_allows(entry, version) is allowed
