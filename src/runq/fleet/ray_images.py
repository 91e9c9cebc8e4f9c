"""Image workers on a Ray cluster, the control plane's side: each node's image store (a
`NodeImages` actor per node, runq.fleet.ray_containers), which node holds which image (kept in
the store beside the models, so placement prefers those nodes after a restart too), the
deploy's pin to one image, and the request a worker actor runs its container from."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from runq.core.config import ServerConfig
from runq.core.hosts import Host
from runq.core.image_ref import check_image_ref, held_keys
from runq.core.spec import EndpointSpec
from runq.core.worker import Worker
from runq.fleet.container_host import (
    LABEL_ENDPOINT,
    LABEL_PLANE,
    LABEL_WORKER,
    container_name,
    plane_id,
)
from runq.fleet.containers import ContainerError, contract_env
from runq.fleet.engine import RunRequest
from runq.fleet.images import Acquired
from runq.fleet.ray_containers import START_EVENT_WAIT_S, ContainerRequest
from runq.store.base import JobStore

log = logging.getLogger("runq.fleet")

IMAGE_PREFIX = "image:"  # an image a node holds, in the store's table of hosts' models


def split_index(
    held: Mapping[str, tuple[str, ...]],
) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """The store's hosts' models table as (models, images) by node.

    >>> split_index({"n1": ("hf://m", "image:reg/w:1")})
    ({'n1': {'hf://m'}}, {'n1': {'reg/w:1'}})
    """
    models = {h: {s for s in found if not s.startswith(IMAGE_PREFIX)} for h, found in held.items()}
    images = {
        h: {s[len(IMAGE_PREFIX) :] for s in found if s.startswith(IMAGE_PREFIX)}
        for h, found in held.items()
    }
    return models, images


def node_ref(spec: EndpointSpec, pinned: Acquired | None) -> tuple[str, str]:
    """(reference, pull policy) a node gets the endpoint's image by. Once the deploy is pinned
    to a registry digest, every node pulls that digest: all workers run the same bits even if
    the tag has moved since.

    Example: "reg.example/w:1" pinned to digest sha256:d... gives ("reg.example/w@sha256:d...",
    "missing"); before the pin, ("reg.example/w:1", the endpoint's pull policy).
    """
    ref, policy = spec.worker.image, spec.worker.container.pull
    if pinned is not None and pinned.image.digest and not spec.worker.container.build:
        return f"{check_image_ref(ref).name}@{pinned.image.digest}", "missing"
    return ref, policy


class RayImages:
    """What the control plane knows and does about images on the cluster's nodes."""

    def __init__(self, config: ServerConfig, store: JobStore) -> None:
        self._config = config
        self._store = store
        self.held: dict[str, set[str]] = {}  # node id -> images there (image_ref.held_keys)
        self._nodes: dict[str, Any] = {}  # node id -> its NodeImages actor handle
        self._pins: dict[str, tuple[EndpointSpec, Acquired]] = {}  # endpoint -> deploy's image
        self.actor_class: Any = None  # NodeImages as a Ray actor class (set by connect)

    def on(self, node_id: str) -> tuple[str, ...]:
        return tuple(sorted(self.held.get(node_id, ())))

    async def record(self, node_id: str, keys: Collection[str]) -> None:
        """`node_id` holds an image known by `keys`: placement prefers it for that image."""
        known = self.held.setdefault(node_id, set())
        for key in keys:
            if key not in known:
                known.add(key)
                await self._store.record_host_model(node_id, IMAGE_PREFIX + key)

    def release(self, endpoint: str) -> None:
        self._pins.pop(endpoint, None)

    def _node(self, node_id: str, live: Collection[str]) -> Any:
        """The node's NodeImages actor, created on first use. Creating it reaps what a crashed
        control plane on this data dir left on the node, except the `live` workers'."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        handle = self._nodes.get(node_id)
        if handle is None:
            name = f"runq-images-{plane_id(self._config.data_dir)}-{node_id[:16]}"
            handle = self.actor_class.options(
                name=name,
                get_if_exists=True,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            ).remote(str(self._config.data_dir), self._config.containers, list(live))
            self._nodes[node_id] = handle
        return handle

    async def acquire(self, spec: EndpointSpec, worker: Worker, live: Collection[str]) -> Acquired:
        """The endpoint's image on the worker's node, found, pulled or built there (the
        worker's image_pull phase); the first one pins the deploy.

        Raises:
            ContainerError: the node cannot get it (no engine there, pull or build failed).
        """
        from ray.exceptions import RayError

        section = spec.worker.container
        login = (
            self._config.containers.registries.get(section.registry) if section.registry else None
        )
        if section.registry and login is None:
            raise ContainerError(
                f"[worker.container] registry = {section.registry!r} is not in the server "
                f"config's [containers.registries]"
            )
        node_id = worker.placement.host if worker.placement else ""
        pin = self._pins.get(spec.name)
        pinned = pin[1] if pin is not None and pin[0] is spec else None
        ref, policy = node_ref(spec, pinned)
        keep = [acquired.image.id for _, acquired in self._pins.values()]
        worker.image_pull_started_at = time.time()
        try:
            got: Acquired | None
            got, problem = await self._node(node_id, live).acquire.remote(
                ref,
                policy,
                login,
                spec if section.build else None,
                self._config.containers.image_store_max_bytes,
                keep,
            )
        except RayError:
            self._nodes.pop(node_id, None)  # the node (or its actor) is gone
            raise
        if got is None:
            raise ContainerError(problem)
        worker.image_pulled_at = time.time()
        if not got.pulled:  # the node held it: the image_pull phase is 0
            worker.image_pull_started_at = worker.image_pulled_at
        worker.image_pull_bytes = got.image.size if got.pulled else 0
        worker.image_digest = got.image.digest or got.image.id
        if pinned is None:
            self._pins[spec.name] = (spec, got)
        keys = {*held_keys(got.image.ref, got.image.digest)}
        if not section.build:
            keys.update(held_keys(spec.worker.image, got.image.digest))
        await self.record(node_id, keys)
        return got

    async def start(
        self,
        handle: Any,
        spec: EndpointSpec,
        worker: Worker,
        host: Host | None,
        endpoint_env: Mapping[str, str],
        node_args: tuple[str, Any, Any],
        live: Collection[str],
        stopping: Callable[[], bool],
    ) -> int:
        """Get the image on the worker's node, then start its container through the worker's
        actor (`handle`; `node_args`: its log path, model request and isolation); its pid.
        `live`: the control plane's workers (their containers are not leftovers).

        Raises:
            ContainerError: the node cannot get the image, or the worker was stopped meanwhile.
        """
        got = await self.acquire(spec, worker, live)
        if stopping():
            raise ContainerError("stopped before its container started")
        request, env = self.request(spec, worker, got, host, endpoint_env)
        worker.spawned_at = time.time()
        log_path, model, isolation = node_args
        pid: int = await handle.start_container.remote(request, env, log_path, model, isolation)
        return pid

    def request(
        self,
        spec: EndpointSpec,
        worker: Worker,
        got: Acquired,
        host: Host | None,
        endpoint_env: Mapping[str, str],
    ) -> tuple[ContainerRequest, dict[str, str]]:
        """What the worker's actor runs its container from, and the container's env (the
        node adds its model's path and, on a bridge, its engine's host alias)."""
        section = spec.worker.container
        volume_name = spec.compute.network_volume
        volume = host.volumes.get(volume_name) if host is not None and volume_name else None
        gpus = worker.placement.gpu_indices if worker.placement else ()
        run = RunRequest(
            name=container_name(worker.id),
            image=got.image.id or got.image.ref,  # the exact bits the node just inspected
            env_file=Path(os.devnull),  # the node writes its own
            labels={
                LABEL_WORKER: worker.id,
                LABEL_ENDPOINT: spec.name,
                LABEL_PLANE: plane_id(self._config.data_dir),
            },
            network=self._config.containers.network,
            shm_size=section.shm_size,
            gpus=tuple(str(i) for i in gpus),
            entrypoint=spec.worker.entrypoint,
            command=spec.worker.command,
            extra_args=section.extra_args,
        )
        request = ContainerRequest(
            run,
            self._config.containers,
            str(self._config.data_dir),
            str(self._config.model_cache_dir),
            volume,
        )
        return request, contract_env(self._config, spec, worker, endpoint_env)


async def watch_start(handle: Any, worker: Worker) -> None:
    """The container_start phase ends when its node's engine started the container."""
    with contextlib.suppress(Exception):
        started = await handle.container_started.remote(START_EVENT_WAIT_S)
        if started is not None:
            worker.container_started_at = started
