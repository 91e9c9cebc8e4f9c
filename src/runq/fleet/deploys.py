"""Deploys, redeploys, scaling changes and undeploys of endpoints.

A deploy stores the endpoint file and serves it. A redeploy that changes what the workers run
rolls them (runq.fleet.reshape); one that changes only scaling or job settings applies at once.
The same rules apply to a change another replica saved in the shared store (`reload`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from runq.core.config import ServerConfig
from runq.core.spec import EndpointSpec
from runq.fleet.containers import require_engine
from runq.fleet.endpoints import Endpoints
from runq.fleet.fleet import Fleet
from runq.fleet.undeploy import Undeployer

log = logging.getLogger("runq")


def runs_differently(old: EndpointSpec, new: EndpointSpec) -> bool:
    """Would the endpoint's workers run differently (so they must be replaced)? Scaling and
    job settings apply to running workers as they are."""
    return (old.type, old.worker, old.compute, old.model) != (
        new.type,
        new.worker,
        new.compute,
        new.model,
    )


class Deployments:
    def __init__(
        self,
        config: ServerConfig,
        endpoints: Endpoints,
        fleet: Fleet,
        undeployer: Undeployer,
        begin_roll: Callable[[str], None],
        poke: Callable[[], None],
        leading: Callable[[], bool],
    ) -> None:
        self._config = config
        self._endpoints = endpoints
        self._fleet = fleet
        self._undeployer = undeployer
        self._begin_roll = begin_roll
        self._poke = poke
        self._leading = leading

    async def deploy(self, spec: EndpointSpec, text: str | None = None) -> None:
        """Serve `spec`, replacing an endpoint of that name: workers that would run differently
        are replaced by a rolling redeploy; scaling changes apply at once."""
        require_engine(spec, self._config)  # an image endpoint needs a container engine here
        old = await self._endpoints.remember(spec, text)
        if self._leading():  # its image, got before its workers start (runq.fleet.images)
            self._fleet.prepull(spec)
        if old is not None and runs_differently(old, spec):
            await self._replace_workers(old, spec)
        self._poke()

    async def _replace_workers(self, old: EndpointSpec, new: EndpointSpec) -> None:
        """The endpoint's workers run `old`: roll them to `new`. A preloaded model's workers are
        forked from a template of the old code, so they all restart at once instead."""
        preload = any(s.model is not None and s.model.preload for s in (old, new))
        if preload:
            await self._fleet.restart_endpoint(new.name, "endpoint redeployed")
        else:
            self._begin_roll(new.name)

    async def set_workers(self, endpoint: str, active: int, maximum: int) -> EndpointSpec:
        """Change an endpoint's active and max workers without restarting its workers: the
        stored file is edited (a restart serves the new values) and the scheduler scales to
        them on its next tick. Raises NotFound, SpecError (runq.fleet.endpoints)."""
        spec = await self._endpoints.set_workers(endpoint, active, maximum)
        self._poke()
        return spec

    async def undeploy(self, endpoint: str, drain: bool = False) -> dict[str, Any]:
        """Stop serving an endpoint (runq.fleet.undeploy); kept across restarts."""
        return await self._undeployer.undeploy(endpoint, drain)

    async def reload(self, name: str) -> None:
        """Serve `name` as the shared store now has it (saved by another replica). A change of
        what the workers run replaces them, as a deploy does; a scaling change does not."""
        endpoints = self._endpoints
        old = endpoints.get(name)
        spec = await endpoints.load_stored_one(name)
        if spec is None and old is not None and not await endpoints.is_stored(name):
            if not endpoints.draining(name):  # a drain here stops them when it ends
                await self._undeployer.stop_workers(name)  # undeployed through another replica
            return
        if spec is None or old == spec:
            return  # gone, unreadable, our own save, or no change
        endpoints.serve(spec)
        if old is not None and self._leading() and runs_differently(old, spec):
            await self._replace_workers(old, spec)
        log.info("endpoint %s updated from the store (saved by another replica)", name)
        self._poke()
