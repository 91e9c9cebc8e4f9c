"""Where a new worker runs: GPU category priority, filters, model and image locality, packing,
spread."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from runq.core.hosts import CPU, GpuCategory, Host, category_named
from runq.core.spec import ComputeSection

_VERSION = re.compile(r"[0-9]+(\.[0-9]+)*")


@dataclass(frozen=True)
class HostUsage:
    """A host and what is taken on it now."""

    host: Host
    # Indices into the host's flattened GPU list (Host.devices: host.gpus expanded by count).
    used_gpus: frozenset[int] = frozenset()
    cpu_workers: int = 0


@dataclass(frozen=True)
class Placement:
    host: str
    gpu_indices: tuple[int, ...]  # () for CPU workers; the worker gets CUDA_VISIBLE_DEVICES
    gpu_type: str  # "cpu" for CPU workers
    category: str  # category name, e.g. "24GB" or "cpu"


def place(
    compute: ComputeSection,
    model_source: str,
    hosts: Sequence[HostUsage],
    endpoint_workers_by_category: Mapping[str, int] | None = None,
    spread: bool = False,
    image: str = "",
) -> Placement | None:
    """Choose a host and GPUs for one new worker of an endpoint, or None (the worker is THROTTLED).

    Categories are tried in the endpoint's priority order (`compute.gpu`); the first one with
    room wins. With `spread` the winner is instead the category, among those with room, that
    holds the fewest of this endpoint's workers (`endpoint_workers_by_category`), ties going to
    the higher priority: an endpoint with many workers then survives the loss of one GPU type.

    A host qualifies when it passes every filter the endpoint sets:
      - `data_centers`: the host's data centre is one of them;
      - `cuda_versions`: an allowed list, as on RunPod, not a minimum. An entry allows the host
        versions it is a prefix of, compared number by number: "12.4" allows "12.4" and
        "12.4.1" but not "12.6"; "12" allows any 12.x. GPU workers only;
      - `network_volume`: the host mounts a volume of that name.
    A GPU worker needs `gpus_per_worker` free GPUs of one type (in `gpu_types`, when that is not
    empty) on one host; a "cpu" worker needs a host with `cpu_workers < cpu_slots`.

    Among the hosts with room in a category, the choice is, in order:
      1. a host that has `model_source` cached (no download, a short cold start);
      2. a host that holds the container `image` of an image worker (no pull: a pull is seconds
         to minutes of unpacking). After the model: weights are usually the larger download,
         and runq advises keeping them out of images;
      3. for "cpu", a CPU pool before a GPU host (leave GPU hosts' cores to their GPU workers);
      4. packing: the fewest free GPUs of the type (free CPU slots for "cpu") that still fit.
         Best fit keeps whole hosts free for multi-GPU workers and lets idle machines stay idle;
      5. the order of `hosts`, then of the types in the category table.
    The worker gets the lowest free indices of the type on that host.

    Worked example: gpu = ["24GB", "48GB"], gpus_per_worker = 2, model "hf://m".
    Host a: 4 x L4, 3 used (1 free); host b: 4 x L4, 1 used (3 free); host c: 2 x A6000 free,
    "hf://m" cached. 24GB: a has 1 < 2 free, b has 3 >= 2, so b gets a worker on its first two
    free L4s -> Placement("b", (1, 2), "L4", "24GB"); c's cache does not matter, 24GB comes
    first. With spread and 3 workers in 24GB, 0 in 48GB: 48GB fits with fewer (0 < 3) ->
    Placement("c", (0, 1), "A6000", "48GB").

    Image locality: gpu = ["24GB"], one GPU per worker, image "reg/w@sha256:1". Host a: 4 x L4,
    1 used, holds the image ("reg/w@sha256:1" in a.images); host b: 4 x L4, 3 used. Packing
    alone would pick b (1 free < 3 free); the image wins: Placement("a", (1,), "L4", "24GB").
    """
    fits: list[Placement] = []
    seen: set[str] = set()
    for name in compute.gpu:
        category = category_named(name)
        if category is None or category.name in seen:
            continue
        seen.add(category.name)
        found = _place_in(category, compute, model_source, image, hosts)
        if found is None:
            continue
        if not spread:
            return found
        fits.append(found)
    if not fits:
        return None
    counts = endpoint_workers_by_category or {}
    # min keeps the first of equals: ties go to the higher priority.
    return min(fits, key=lambda placement: counts.get(placement.category, 0))


def _place_in(
    category: GpuCategory,
    compute: ComputeSection,
    model_source: str,
    image: str,
    hosts: Sequence[HostUsage],
) -> Placement | None:
    is_cpu = category.name == CPU
    allowed = {t.casefold() for t in compute.gpu_types}
    best: tuple[tuple[bool, bool, bool, int, int, int], Placement] | None = None
    for order, usage in enumerate(hosts):
        host = usage.host
        if not _qualifies(host, compute, check_cuda=not is_cpu):
            continue
        not_cached = not (model_source and model_source in host.models)
        not_held = not (image and image in host.images)
        if is_cpu:
            free_slots = host.cpu_slots - usage.cpu_workers
            if free_slots < 1:
                continue
            key = (not_cached, not_held, not host.is_cpu_pool, free_slots, order, 0)
            candidate = Placement(host.name, (), CPU, CPU)
            if best is None or key < best[0]:
                best = (key, candidate)
            continue
        for rank, gpu_type in enumerate(category.types):
            if allowed and gpu_type.casefold() not in allowed:
                continue
            free = _free_gpus(usage, gpu_type)
            if len(free) < compute.gpus_per_worker:
                continue
            key = (not_cached, not_held, False, len(free), order, rank)
            candidate = Placement(
                host.name, free[: compute.gpus_per_worker], gpu_type, category.name
            )
            if best is None or key < best[0]:
                best = (key, candidate)
    return None if best is None else best[1]


def _free_gpus(usage: HostUsage, gpu_type: str) -> tuple[int, ...]:
    """Indices of the host's GPUs of `gpu_type` not in use, lowest first."""
    return tuple(
        index
        for index, device in enumerate(usage.host.devices)
        if index not in usage.used_gpus and device.casefold() == gpu_type.casefold()
    )


def _qualifies(host: Host, compute: ComputeSection, check_cuda: bool) -> bool:
    if compute.data_centers and host.data_center not in compute.data_centers:
        return False
    if compute.network_volume and compute.network_volume not in host.volumes:
        return False
    return not (check_cuda and compute.cuda_versions) or any(
        cuda_allows(entry, host.cuda_version) for entry in compute.cuda_versions
    )


def cuda_allows(entry: str, host_version: str) -> bool:
    """Whether an endpoint's `cuda_versions` entry allows a host's CUDA version.

    The entry must be a prefix of the host's version, number by number; text that is not a
    dotted version only matches itself.

    >>> cuda_allows("12.4", "12.4"), cuda_allows("12.4", "12.4.1"), cuda_allows("12.4", "12.6")
    (True, True, False)
    >>> cuda_allows("12", "12.6"), cuda_allows("12.1", "12.10")
    (True, False)
    """
    wanted, have = _version(entry), _version(host_version)
    if wanted is None or have is None:
        return entry.strip() == host_version.strip() != ""
    return have[: len(wanted)] == wanted


def _version(text: str) -> tuple[int, ...] | None:
    if not _VERSION.fullmatch(text.strip()):
        return None
    return tuple(int(part) for part in text.strip().split("."))
