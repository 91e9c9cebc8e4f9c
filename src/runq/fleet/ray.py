"""Ray provisioner: worker processes on the nodes of a Ray cluster, one Ray actor each.

Ray places and runs; runq still decides. The scheduler's placement policy picks a host (a Ray
node) and GPUs from the hosts this module discovers from the cluster, and the actor is pinned
to that node (hard node affinity) with the node's GPU resource, so Ray's own scheduler never
second-guesses runq's GPU priority, model locality or data-centre rules.

How a node describes itself (set at `ray start`):
- GPU type: a custom resource `gpu:<TYPE>` with the count (`--resources '{"gpu:L4": 2}'`), or
  Ray's own `GPU` count with its `accelerator_type:<TYPE>` resource (real GPUs, auto-detected).
- Data centre and CUDA version: node labels `runq.io/data-center`, `runq.io/cuda-version`.
- Network volumes: a label `runq.io/volume.<NAME>=true` per volume the node mounts. Ray label
  values cannot hold a path: the mount path is `[server] ray_volumes.<NAME>`, else /mnt/<NAME>.
Node labels are fixed at `ray start`, so which node caches which model is runq's own index,
kept in the store (`record_host_model`): a worker that pulled its model on a node records it,
and placement prefers that node next time, also after a restart or a change of leader.

Each actor (`runq.fleet.ray_actor`) runs the worker command as a child process in its own
process group (so park and revive are SIGSTOP / SIGCONT of the group, as on one machine) that
dies with the actor. An image worker's actor runs the engine's CLI instead and drives its
container by name (`runq.fleet.ray_containers`): frozen through its cgroup, stopped and removed
through the engine. Each node has its own image store (one pull per node and image, its own
index and budget); which node holds which image is recorded in the store beside the models
(`runq.fleet.ray_images`), so placement prefers those nodes. A node
that disappears takes its actors with it: the wait on the actor fails, the worker counts as
exited unexpectedly, and its jobs are requeued like any lost worker's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runq.core.config import ServerConfig
from runq.core.hosts import Host
from runq.core.secret_refs import SecretMissing, resolve
from runq.core.spec import EndpointSpec
from runq.core.worker import Worker
from runq.fleet.containers import ContainerError
from runq.fleet.local import resolve_command
from runq.fleet.provisioner import ExitHandler
from runq.fleet.ray_actor import Isolation, ModelRequest, WorkerActor
from runq.fleet.ray_containers import NodeImages
from runq.fleet.ray_images import RayImages, split_index, watch_start
from runq.fleet.ray_nodes import RayNode, actor_resources, node_to_host
from runq.fleet.registry import WorkerRegistry
from runq.fleet.secrets import SECRETS_FILE, Secrets
from runq.fleet.worker_env import worker_env
from runq.fleet.worker_logs import CappedLog
from runq.models import ModelCache
from runq.store.base import JobStore

log = logging.getLogger("runq.fleet")


_STOP_GRACE_S = 5.0
LOG_SHIP_EVERY_S = 0.5  # a Ray worker's lines reach the control plane this often
_NAMESPACE = "runq"


async def _ship_logs(handle: Any, copy: CappedLog) -> None:
    """Copies what a worker on a Ray node prints into the control plane's log of it."""
    while True:
        await asyncio.sleep(LOG_SHIP_EVERY_S)
        try:
            data = await handle.take_log.remote()
        except Exception:  # the actor is gone; its end is handled by the wait
            return
        if data:
            copy.write(data)


@dataclass
class _Actor:
    spec: EndpointSpec
    worker: Worker
    handle: Any = None  # the Ray actor handle, once created
    pid: int | None = None
    task: asyncio.Task[None] | None = None
    stopping: bool = False
    stop_reason: str = "stopped"
    freezes: int = 0  # an image worker's freeze/thaw orders, numbered: the node keeps the last

    @property
    def image(self) -> bool:
        return bool(self.spec.worker.image)


class RayProvisioner:
    """Workers as Ray actors on the cluster at `address` (a `ray start --head` address)."""

    def __init__(
        self,
        config: ServerConfig,
        registry: WorkerRegistry,
        on_exit: ExitHandler,
        address: str,
        store: JobStore,
    ) -> None:
        self._config = config
        self._registry = registry
        self._on_exit = on_exit
        self.address = address
        self._store = store
        self._actors: dict[str, _Actor] = {}
        self._cached: dict[str, set[str]] = {}  # node id -> model sources pulled there
        self.images = RayImages(config, store)  # which node holds which image; pulls there
        self._nodes: dict[str, Mapping[str, float]] = {}  # node id -> resources, as last read
        self._hosts: tuple[Host, ...] = ()
        # The control plane's own machine's cache (`runq cache`, /admin/cache). Each node's
        # models are in `hosts()` instead.
        self.models = ModelCache(config.model_cache_dir, config.model_cache_max_bytes)
        self._actor_class: Any = None
        self.secrets = Secrets(config.data_dir / SECRETS_FILE)

    # --- cluster ------------------------------------------------------------------------
    def connect(self) -> None:
        """Joins the cluster (blocking, seconds): call from a thread."""
        import ray

        if not ray.is_initialized():
            ray.init(
                address=self.address,
                namespace=_NAMESPACE,
                log_to_driver=False,
                configure_logging=False,
            )
        remote: Any = ray.remote  # its typed overloads do not cover actor options
        self._actor_class = remote(max_concurrency=8, num_cpus=0, max_restarts=0)(WorkerActor)
        self.images.actor_class = remote(num_cpus=0, max_restarts=0)(NodeImages)

    def nodes(self) -> list[RayNode]:
        import ray

        return [
            RayNode(
                node_id=str(n["NodeID"]),
                alive=bool(n["Alive"]),
                resources=dict(n.get("Resources") or {}),
                labels={str(k): str(v) for k, v in (n.get("Labels") or {}).items()},
            )
            for n in ray.nodes()  # type: ignore[no-untyped-call]
        ]

    def hosts(self) -> tuple[Host, ...]:
        """The cluster's live nodes, each with the models runq pulled there."""
        nodes = [node for node in self.nodes() if node.alive]
        self._nodes = {node.node_id: node.resources for node in nodes}
        self._hosts = tuple(
            node_to_host(
                node,
                tuple(sorted(self._cached.get(node.node_id, ()))),
                self._config.ray_volumes,
                self.images.on(node.node_id),
            )
            for node in nodes
        )
        return self._hosts

    async def load_index(self) -> None:
        """Which node caches which model and holds which image, as recorded in the store."""
        self._cached, self.images.held = split_index(await self._store.host_models())

    async def record_cached(self, node_id: str, source: str) -> None:
        if source not in self._cached.get(node_id, set()):
            self._cached.setdefault(node_id, set()).add(source)
            await self._store.record_host_model(node_id, source)

    # --- workers ------------------------------------------------------------------------
    def start(self, spec: EndpointSpec, worker: Worker) -> None:
        actor = _Actor(spec, worker)
        self._actors[worker.id] = actor
        actor.task = asyncio.create_task(self._run(actor), name=f"ray-worker-{worker.id}")

    async def _run(self, actor: _Actor) -> None:
        from ray.exceptions import RayError
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        spec, worker = actor.spec, actor.worker
        placement = worker.placement
        gpu_type = placement.gpu_type if placement else "cpu"
        count = len(placement.gpu_indices) if placement else 0
        node = self._nodes.get(placement.host, {}) if placement else {}
        host = next((h for h in self._hosts if placement and h.name == placement.host), None)
        resources, num_gpus = actor_resources(node, gpu_type, count)
        # The node adds its own basics (PATH, HOME...): never this process's environment.
        try:
            endpoint_env = resolve(spec.worker.env, self.secrets.get)
        except SecretMissing as exc:
            log.error("worker %s of %s: %s", worker.id, spec.name, exc)
            self._actors.pop(worker.id, None)
            await self._on_exit(worker, -1, False, str(exc))
            return
        env = {**endpoint_env, **worker_env(self._config, spec, worker, gpu_type)}
        if gpu_type != "cpu" and placement is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in placement.gpu_indices)
        # The node keeps its own copy (under node-logs/, also when the node is this machine);
        # the control plane's, in logs/ like a local worker's, is filled from it as it grows.
        log_path = str(self._config.data_dir / "node-logs" / spec.name / f"{worker.id}.log")
        copy = CappedLog(
            self._config.data_dir / "logs" / spec.name / f"{worker.id}.log",
            self._config.log_max_bytes,
            self._config.log_backups,
        )
        shipping: asyncio.Task[None] | None = None
        watching: asyncio.Task[None] | None = None
        code = -1
        failure = ""
        isolation = Isolation(
            data_dir=str(self._config.data_dir),
            env_pass=self._config.worker_env_pass,
            log_max_bytes=self._config.log_max_bytes,
            log_backups=self._config.log_backups,
        )
        try:
            options: dict[str, Any] = {"resources": resources, "num_gpus": num_gpus}
            if placement is not None:
                options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
                    placement.host, soft=False
                )
            actor.handle = self._actor_class.options(**options).remote()
            if actor.image:  # its image on its node, then its container (fleet/ray_images.py)
                model = self._model_request(spec, host)
                actor.pid = await self.images.start(
                    actor.handle,
                    spec,
                    worker,
                    host,
                    endpoint_env,
                    (log_path, model, isolation),
                    list(self._actors),
                    lambda: actor.stopping,
                )
                watching = asyncio.create_task(watch_start(actor.handle, worker))
            else:
                actor.pid = await actor.handle.start.remote(
                    list(resolve_command(spec.worker.command)),
                    str(spec.worker.dir),
                    env,
                    log_path,
                    self._model_request(spec, host),
                    isolation,
                )
            shipping = asyncio.create_task(_ship_logs(actor.handle, copy))
            if spec.model is not None and spec.model.source and placement is not None:
                await self.record_cached(placement.host, spec.model.source)
            code = await actor.handle.wait.remote()
        except RayError as exc:
            log.warning("worker %s of %s lost with its Ray actor: %s", worker.id, spec.name, exc)
        except ContainerError as exc:
            failure = f"container failed: {exc}"
            log.error("worker %s of %s: %s", worker.id, spec.name, failure)
        finally:
            if watching is not None:
                watching.cancel()
            if shipping is not None:
                shipping.cancel()
                with contextlib.suppress(Exception):
                    copy.write(await actor.handle.take_log.remote())  # the last lines
            copy.close()
            self._actors.pop(worker.id, None)
            reason = actor.stop_reason if actor.stopping else failure or f"exited with code {code}"
            if actor.handle is not None:
                import ray

                with contextlib.suppress(Exception):
                    ray.kill(actor.handle)
        await self._on_exit(worker, code, actor.stopping, reason)

    def _model_request(self, spec: EndpointSpec, host: Host | None) -> ModelRequest | None:
        model = spec.model
        if model is None or not model.source:
            return None
        return ModelRequest(
            cache_dir=str(self._config.model_cache_dir),
            cache_max_bytes=self._config.model_cache_max_bytes,
            source=model.source,
            revision=model.revision,
            sha256=model.sha256,
            volumes=dict(host.volumes) if host else {},
        )

    async def stop(self, worker_id: str, reason: str = "stopped") -> None:
        actor = self._actors.get(worker_id)
        if actor is None:
            return
        actor.stopping = True
        actor.stop_reason = reason
        if actor.handle is not None and actor.image:
            # By name, through the engine (thawed first): the CLI's signals do not reach it.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    actor.handle.stop_container.remote(_STOP_GRACE_S), _STOP_GRACE_S + 30
                )
        elif actor.handle is not None:
            with contextlib.suppress(Exception):
                await actor.handle.signal.remote(int(signal.SIGCONT))
                await actor.handle.signal.remote(int(signal.SIGTERM))
        if actor.task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(actor.task), _STOP_GRACE_S)
            except TimeoutError:
                if actor.image and actor.handle is not None:  # killing the actor leaves it
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(actor.handle.remove_container.remote(), 30)
                self._kill_actor(actor)
                with contextlib.suppress(asyncio.CancelledError):
                    await actor.task

    async def stop_endpoint(self, name: str, reason: str = "endpoint stopped") -> None:
        ids = [wid for wid, actor in self._actors.items() if actor.spec.name == name]
        await asyncio.gather(*(self.stop(wid, reason) for wid in ids))

    async def shutdown(self) -> None:
        await asyncio.gather(*(self.stop(wid, "runq stopped") for wid in list(self._actors)))

    def release_image(self, endpoint: str) -> None:
        """The endpoint is undeployed: its image is no longer pinned (runq.fleet.images)."""
        self.images.release(endpoint)

    def prepull(self, spec: EndpointSpec) -> None:
        """Nothing ahead of time: which node a worker lands on is decided when it starts, and
        that node pulls then (once per image; runq.fleet.ray_images)."""

    def prepulling(self, endpoint: str) -> bool:
        return False

    def images_held(self) -> tuple[str, ...]:
        """Per node, in the hosts this provisioner lists: none for the cluster as a whole."""
        return ()

    def park(self, worker_id: str) -> bool:
        return self._freeze(worker_id, True) or self._signal(worker_id, signal.SIGSTOP)

    def revive(self, worker_id: str) -> bool:
        return self._freeze(worker_id, False) or self._signal(worker_id, signal.SIGCONT)

    def _freeze(self, worker_id: str, frozen: bool) -> bool:
        """An image worker's container is frozen through its cgroup on its node (fire and
        forget; orders are numbered so that a late one cannot undo a newer one)."""
        actor = self._actors.get(worker_id)
        if actor is None or actor.handle is None or not actor.image:
            return False
        actor.freezes += 1
        actor.handle.freeze.remote(frozen, actor.freezes)
        return True

    def kill(self, worker_id: str, reason: str | None = None) -> bool:
        actor = self._actors.get(worker_id)
        if actor is None:
            return False
        if reason is not None:
            actor.stopping = True
            actor.stop_reason = reason
        if actor.image and actor.handle is not None:
            actor.handle.remove_container.remote()  # by name: killing the CLI leaves it running
            return True
        return self._signal(worker_id, signal.SIGKILL)

    def pid(self, worker_id: str) -> int | None:
        """The worker's pid on its node (not this machine's, unless the node is this one)."""
        actor = self._actors.get(worker_id)
        return actor.pid if actor is not None else None

    def _signal(self, worker_id: str, sig: signal.Signals) -> bool:
        actor = self._actors.get(worker_id)
        if actor is None or actor.handle is None:
            return False
        actor.handle.signal.remote(int(sig))  # fire and forget: the loop must not block
        return True

    def _kill_actor(self, actor: _Actor) -> None:
        import ray

        if actor.handle is not None:
            with contextlib.suppress(Exception):
                ray.kill(actor.handle)
