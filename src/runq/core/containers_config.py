"""`[containers]` of the server config: which engine runs image workers, and registry logins."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runq.core.sizes import parse_size
from runq.errors import SpecError

ENGINES = ("auto", "podman", "docker")
NETWORKS = ("host", "bridge")
_KEYS = {"engine", "network", "registries", "image_store_max"}
_REGISTRY_KEYS = {"server", "username", "password_env", "password_file"}


@dataclass(frozen=True)
class RegistryLogin:
    """Credentials for one registry. The secret is read when a pull needs it, from an
    environment variable or a file, so the config file never holds it."""

    server: str
    username: str
    password_env: str = ""
    password_file: str = ""


@dataclass(frozen=True)
class ContainersConfig:
    engine: str = "auto"  # auto: podman, else docker
    network: str = "host"  # host reaches a control plane bound to 127.0.0.1
    registries: Mapping[str, RegistryLogin] = field(default_factory=dict)
    image_store_max_bytes: int = 0  # runq's images beyond this are evicted, LRU; 0: never


def parse_containers(table: object, where: str) -> ContainersConfig:
    """Raises SpecError naming the field of `[containers]` that is wrong."""

    def fail(key: str, message: str) -> SpecError:
        return SpecError(f"{where}: field 'containers.{key}': {message}")

    if not isinstance(table, dict):
        raise SpecError(f"{where}: 'containers' must be a table ([containers]), got {table!r}")
    for key in sorted(set(table) - _KEYS):
        raise fail(key, "unknown key (known: engine, network, registries, image_store_max)")
    engine = table.get("engine", "auto")
    if engine not in ENGINES:
        raise fail("engine", f"must be one of {', '.join(ENGINES)}, got {engine!r}")
    network = table.get("network", "host")
    if network not in NETWORKS:
        raise fail("network", f"must be one of {', '.join(NETWORKS)}, got {network!r}")
    try:
        budget = parse_size(table.get("image_store_max", 0))
    except ValueError as exc:
        raise fail("image_store_max", str(exc)) from None
    registries = table.get("registries", {})
    if not isinstance(registries, dict):
        raise fail(
            "registries", f"expected tables [containers.registries.NAME], got {registries!r}"
        )
    logins = {name: _login(name, value, fail) for name, value in registries.items()}
    return ContainersConfig(engine, network, logins, budget)


def _login(name: str, value: Any, fail: Any) -> RegistryLogin:
    key = f"registries.{name}"
    if not isinstance(value, dict):
        raise fail(key, f"expected a table, got {value!r}")
    unknown = sorted(set(value) - _REGISTRY_KEYS)
    if unknown:
        raise fail(f"{key}.{unknown[0]}", "unknown key")
    if not all(isinstance(v, str) for v in value.values()):
        raise fail(key, "every value must be a string")
    if not value.get("server") or not value.get("username"):
        raise fail(key, "needs server and username")
    if bool(value.get("password_env")) == bool(value.get("password_file")):
        raise fail(key, "needs one of password_env (a variable's name) or password_file")
    return RegistryLogin(
        value["server"],
        value["username"],
        value.get("password_env", ""),
        value.get("password_file", ""),
    )
