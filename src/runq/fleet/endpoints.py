"""The endpoints this control plane serves: their specs, as deployed and as the store keeps them.

One catalogue that the job and fleet services read (`spec`, `get`, `all`) and that deploys,
undeploys and replicas change. It also knows which endpoints were undeployed (their requests
get 410) and which drain before their undeploy (no new jobs, 410).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from runq.core.spec import EndpointSpec, loads_spec
from runq.core.spec_edit import set_workers
from runq.errors import Gone, NotFound, SpecError

log = logging.getLogger("runq")


class EndpointFiles(Protocol):
    """The part of the store that keeps endpoint files (runq.store.base.JobStore)."""

    async def save_endpoint(self, name: str, path: str, toml: str) -> None: ...

    async def endpoints(self) -> list[tuple[str, str, str]]: ...

    async def delete_endpoint(self, name: str) -> bool: ...


class Endpoints:
    def __init__(self, files: EndpointFiles) -> None:
        self._files = files
        self._specs: dict[str, EndpointSpec] = {}
        self._draining: set[str] = set()
        self._gone: set[str] = set()  # undeployed since this control plane started

    # --- reading ------------------------------------------------------------------------
    def spec(self, endpoint: str) -> EndpointSpec:
        """The endpoint's spec. Raises NotFound (Gone once it was undeployed)."""
        spec = self._specs.get(endpoint)
        if spec is None:
            raise self.not_served(endpoint)
        return spec

    def get(self, endpoint: str) -> EndpointSpec | None:
        return self._specs.get(endpoint)

    def all(self) -> list[EndpointSpec]:
        return list(self._specs.values())

    def names(self) -> list[str]:
        return sorted(self._specs)

    def __contains__(self, endpoint: object) -> bool:
        return endpoint in self._specs

    def balanced(self) -> set[str]:
        """The load-balancing endpoints (their workers get health checks)."""
        return {name for name, spec in self._specs.items() if spec.type == "load_balancer"}

    def not_served(self, endpoint: str) -> NotFound:
        """The error for a request to an endpoint that is not deployed (now)."""
        if endpoint in self._gone:
            return Gone(f"endpoint '{endpoint}' was undeployed: it takes no new jobs")
        return NotFound(f"endpoint '{endpoint}' is not deployed")

    def check_open(self, endpoint: str) -> None:
        """Raises Gone while the endpoint drains before it is undeployed."""
        if endpoint in self._draining:
            raise Gone(
                f"endpoint '{endpoint}' is being undeployed (draining): it takes no new jobs"
            )

    def draining(self, endpoint: str) -> bool:
        return endpoint in self._draining

    def max_queue(self, endpoint: str) -> int:
        spec = self._specs.get(endpoint)
        return spec.jobs.max_queue if spec is not None else 0

    def max_retries(self, endpoint: str) -> int:
        spec = self._specs.get(endpoint)
        return spec.jobs.max_retries if spec is not None else 0

    async def stored_text(self, name: str) -> str | None:
        for stored, _, toml in await self._files.endpoints():
            if stored == name:
                return toml
        return None

    # --- changing -----------------------------------------------------------------------
    async def remember(self, spec: EndpointSpec, text: str | None = None) -> EndpointSpec | None:
        """Store the endpoint file (its text as given, else as on this machine's disk) so a
        restart serves it again, and serve it. Returns the spec it replaces. An inline deploy
        may name a path this machine lacks."""
        path = spec.source_path
        if text is None:
            text = path.read_text(encoding="utf-8") if path is not None else ""
        await self._files.save_endpoint(spec.name, str(path or ""), text)
        old = self._specs.get(spec.name)
        self.serve(spec)
        return old

    def serve(self, spec: EndpointSpec) -> None:
        """Serve `spec` (already stored), also when it was undeployed or draining before."""
        self._specs[spec.name] = spec
        self._gone.discard(spec.name)
        self._draining.discard(spec.name)

    async def load_stored(self) -> None:
        """Serve every endpoint the store holds (deployed before a restart, or elsewhere)."""
        for name, path, toml in await self._files.endpoints():
            spec = _parse_stored(name, path, toml)
            if spec is not None:
                self._specs[name] = spec

    async def load_stored_one(self, name: str) -> EndpointSpec | None:
        """One endpoint as the store holds it; None when gone or unreadable (logged)."""
        for stored, path, toml in await self._files.endpoints():
            if stored == name:
                return _parse_stored(name, path, toml)
        return None

    async def is_stored(self, name: str) -> bool:
        return any(stored == name for stored, _, _ in await self._files.endpoints())

    async def set_workers(self, endpoint: str, active: int, maximum: int) -> EndpointSpec:
        """Edit the stored endpoint file's active and max workers (so a restart serves the new
        values) and serve the result.

        Raises:
            NotFound: the endpoint is not deployed.
            SpecError: 0 <= active <= max and max >= 1 do not hold, or the file's [scaling]
                cannot be edited in place.
        """
        old = self.spec(endpoint)
        stored = {name: (path, toml) for name, path, toml in await self._files.endpoints()}
        path, text = stored.get(endpoint, (str(old.source_path or ""), ""))
        edited = set_workers(text, active, maximum)
        spec = loads_spec(edited, Path(path))
        await self._files.save_endpoint(endpoint, path, edited)
        self._specs[endpoint] = spec
        return spec

    async def delete_stored(self, endpoint: str) -> None:
        """Durably forget the endpoint's file: a restart does not serve it again."""
        await self._files.delete_endpoint(endpoint)

    def start_draining(self, endpoint: str) -> None:
        self._draining.add(endpoint)

    def forget(self, endpoint: str) -> None:
        """Stop serving `endpoint`: from here its requests get 410."""
        self._specs.pop(endpoint, None)
        self._draining.discard(endpoint)
        self._gone.add(endpoint)


def _parse_stored(name: str, path: str, toml: str) -> EndpointSpec | None:
    try:
        return loads_spec(toml, Path(path))
    except SpecError as exc:
        log.error("not serving stored endpoint %s: %s", name, exc)
        return None
