"""A Ray node as runq sees it: a host for placement (GPU types from its resources, data centre,
CUDA version and volumes from its labels; see runq.fleet.ray for how a node declares them) and
the Ray resources an actor holds there. Pure functions of what `ray.nodes()` reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from runq.core.hosts import Gpu, Host, category_of

GPU_RESOURCE_PREFIX = "gpu:"
ACCELERATOR_PREFIX = "accelerator_type:"
LABEL_DATA_CENTER = "runq.io/data-center"
LABEL_CUDA = "runq.io/cuda-version"
LABEL_VOLUME_PREFIX = "runq.io/volume."
CPU_SLOTS_PER_CORE = 4  # as on one machine: CPU workers are mostly waiting, not computing


@dataclass(frozen=True)
class RayNode:
    """What runq reads from one entry of `ray.nodes()`."""

    node_id: str
    alive: bool
    resources: Mapping[str, float]
    labels: Mapping[str, str] = field(default_factory=dict)


def node_to_host(
    node: RayNode,
    models: tuple[str, ...] = (),
    volume_paths: Mapping[str, str] | None = None,
    images: tuple[str, ...] = (),
) -> Host:
    """A Ray node as a runq host, named by its node id (the placement key).

    >>> node = RayNode("ab12", True, {"CPU": 2, "gpu:L4": 2}, {LABEL_DATA_CENTER: "eu"})
    >>> host = node_to_host(node)
    >>> host.name, host.data_center, host.gpus, host.cpu_slots
    ('ab12', 'eu', (Gpu(type='L4', memory_gb=24, count=2),), 8)
    """
    gpus: list[Gpu] = []
    for key, amount in sorted(node.resources.items()):
        if key.startswith(GPU_RESOURCE_PREFIX) and amount >= 1:
            gpus.append(_gpu(key[len(GPU_RESOURCE_PREFIX) :], int(amount)))
    if not gpus and node.resources.get("GPU", 0) >= 1:
        accelerators = [
            key[len(ACCELERATOR_PREFIX) :]
            for key in node.resources
            if key.startswith(ACCELERATOR_PREFIX)
        ]
        if accelerators:
            gpus.append(_gpu(accelerators[0], int(node.resources["GPU"])))
    paths = volume_paths or {}
    prefix = len(LABEL_VOLUME_PREFIX)
    names = [key[prefix:] for key in node.labels if key.startswith(LABEL_VOLUME_PREFIX)]
    volumes = {name: paths.get(name, f"/mnt/{name}") for name in names}
    return Host(
        name=node.node_id,
        data_center=node.labels.get(LABEL_DATA_CENTER, ""),
        cuda_version=node.labels.get(LABEL_CUDA, ""),
        volumes=volumes,
        models=models,
        images=images,
        gpus=tuple(gpus),
        cpu_slots=int(node.resources.get("CPU", 0)) * CPU_SLOTS_PER_CORE,
    )


def actor_resources(
    node_resources: Mapping[str, float], gpu_type: str, count: int
) -> tuple[dict[str, float], float]:
    """The Ray resources that hold `count` GPUs of `gpu_type` on a node: (custom, num_gpus).

    The node's custom `gpu:<TYPE>` resource when it declares one; else Ray's own GPUs (Ray then
    sets the actor's CUDA_VISIBLE_DEVICES). CPU workers hold nothing: runq counts their slots.

    >>> actor_resources({"gpu:L4": 2}, "L4", 1)
    ({'gpu:L4': 1.0}, 0.0)
    >>> actor_resources({"GPU": 4, "accelerator_type:H100": 1}, "H100", 2)
    ({}, 2.0)
    >>> actor_resources({"CPU": 8}, "cpu", 0)
    ({}, 0.0)
    """
    if count == 0 or gpu_type == "cpu":
        return {}, 0.0
    custom = f"{GPU_RESOURCE_PREFIX}{gpu_type}"
    if custom in node_resources:
        return {custom: float(count)}, 0.0
    return {}, float(count)


def _gpu(gpu_type: str, count: int) -> Gpu:
    """A GPU type as placement knows it: memory from its category in the price table."""
    category = category_of(gpu_type)
    return Gpu(gpu_type, category.memory_gb if category else 0, count)
