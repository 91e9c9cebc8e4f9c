"""The variables that tell a worker where its model is."""

from __future__ import annotations

from collections.abc import Mapping

from runq.core.spec import EndpointSpec
from runq.models.cache import ModelCache, Pinned

MODEL_PATH_VAR = "RUNQ_MODEL_PATH"


def model_env(held: Pinned) -> dict[str, str]:
    """RUNQ_MODEL_PATH (what `runq.worker.model_path()` reads); for hf:// sources also the HF
    variables, so that transformers or diffusers in the worker load from the host cache with
    no network call: the snapshot is already there, and a worker must not fetch behind the
    cache's back (it would download outside its size limit)."""
    env = {MODEL_PATH_VAR: str(held.path)}
    if held.hub_dir is not None:
        env["HF_HOME"] = str(held.hub_dir.parent)  # HF_HOME/hub is the hub cache
        env["HF_HUB_CACHE"] = str(held.hub_dir)
        env["HF_HUB_OFFLINE"] = "1"
    return env


def acquire_for(cache: ModelCache, spec: EndpointSpec, volumes: Mapping[str, str]) -> Pinned | None:
    """The endpoint's model on this host, pinned for a worker; None when it declares none.
    Blocking (it may download): the provisioner runs it in a thread."""
    model = spec.model
    if model is None or not model.source:
        return None
    return cache.acquire(
        model.source, model.revision, model.sha256, volumes=volumes, base_dir=spec.worker.dir
    )
