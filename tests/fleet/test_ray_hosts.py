"""How runq reads a Ray node as a host, and which Ray resources pin a worker's GPUs (pure)."""

from __future__ import annotations

import pytest

from runq.core.hosts import Gpu
from runq.fleet.ray_nodes import RayNode, actor_resources, node_to_host


@pytest.mark.parametrize(
    ("resources", "labels", "gpus", "data_center", "cpu_slots"),
    [
        # Custom GPU-type resources, as a node started with --resources '{"gpu:L4": 2}'.
        ({"CPU": 2, "gpu:L4": 2}, {}, (Gpu("L4", 24, 2),), "", 8),
        # Two types on one node, in name order.
        ({"CPU": 1, "gpu:L4": 1, "gpu:A100": 1}, {}, (Gpu("A100", 80, 1), Gpu("L4", 24, 1)), "", 4),
        # Ray's own GPUs with the detected accelerator type.
        ({"CPU": 4, "GPU": 1, "accelerator_type:H100": 1}, {}, (Gpu("H100", 80, 1),), "", 16),
        # A CPU-only node (the head), with a data centre label.
        ({"CPU": 1}, {"runq.io/data-center": "eu-1"}, (), "eu-1", 4),
        # Less than a whole GPU of a type is not a GPU runq can place on.
        ({"CPU": 1, "gpu:L4": 0.5}, {}, (), "", 4),
    ],
)
def test_a_node_becomes_a_host(
    resources: dict[str, float],
    labels: dict[str, str],
    gpus: tuple[Gpu, ...],
    data_center: str,
    cpu_slots: int,
) -> None:
    host = node_to_host(RayNode("n1", True, resources, labels))
    assert (host.name, host.gpus, host.data_center, host.cpu_slots) == (
        "n1",
        gpus,
        data_center,
        cpu_slots,
    )


def test_volumes_come_from_labels_and_their_paths_from_the_config() -> None:
    labels = {"runq.io/volume.models": "true", "runq.io/volume.data": "true"}
    host = node_to_host(RayNode("n1", True, {"CPU": 1}, labels), volume_paths={"models": "/vol/m"})
    assert dict(host.volumes) == {"models": "/vol/m", "data": "/mnt/data"}


def test_models_pulled_on_a_node_are_on_its_host() -> None:
    host = node_to_host(RayNode("n1", True, {"CPU": 1}), models=("hf://org/m",))
    assert host.models == ("hf://org/m",)


@pytest.mark.parametrize(
    ("node", "gpu_type", "count", "expected"),
    [
        ({"gpu:L4": 2}, "L4", 1, ({"gpu:L4": 1.0}, 0.0)),  # the node's custom resource
        ({"gpu:A100": 2}, "A100", 2, ({"gpu:A100": 2.0}, 0.0)),
        ({"GPU": 4, "accelerator_type:H100": 1}, "H100", 2, ({}, 2.0)),  # Ray's own GPUs
        ({"CPU": 8}, "cpu", 0, ({}, 0.0)),  # CPU workers hold nothing
    ],
)
def test_a_worker_holds_its_gpus_as_ray_resources(
    node: dict[str, float], gpu_type: str, count: int, expected: tuple[dict[str, float], float]
) -> None:
    assert actor_resources(node, gpu_type, count) == expected
