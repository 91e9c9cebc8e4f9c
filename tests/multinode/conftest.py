"""A Ray cluster on this machine: a head and three worker nodes with GPU-type resources.

Nodes describe their GPUs with custom resources (`gpu:L4`), as runq reads them
(runq.fleet.ray); no real GPU is needed. Started once per module: a node takes about a second
to start on an idle machine, the head two or three.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

pytestmark = pytest.mark.multinode


@dataclass
class RayCluster:
    cluster: Any  # ray.cluster_utils.Cluster
    nodes: dict[str, Any]  # our name -> the node handle
    node_ids: dict[str, str]  # our name -> Ray node id

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def name_of(self, node_id: str) -> str:
        return next(name for name, nid in self.node_ids.items() if nid == node_id)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    pytest.importorskip("ray")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    nodes = {
        "l4-a": cluster.add_node(num_cpus=1, resources={"gpu:L4": 1}),
        "l4-b": cluster.add_node(num_cpus=1, resources={"gpu:L4": 1}),
        "a6000": cluster.add_node(num_cpus=1, resources={"gpu:A6000": 1}),
    }
    cluster.wait_for_nodes()
    node_ids = {name: node.node_id for name, node in nodes.items()}
    try:
        yield RayCluster(cluster, nodes, node_ids)
    finally:
        cluster.shutdown()
