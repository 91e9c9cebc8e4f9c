"""Server configuration (`runq.toml`): read once into a frozen object; unknown keys are errors."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runq.core.containers_config import ContainersConfig, parse_containers
from runq.core.durations import parse_duration
from runq.core.hosts import (
    MIN_CPU_SLOTS,
    Host,
    Prices,
    default_prices,
    parse_hosts,
    parse_prices,
)
from runq.core.sizes import parse_size
from runq.errors import SpecError

DEFAULT_DATA_DIR = "~/.local/share/runq"
DEFAULT_MODEL_CACHE_MAX = 100 * 10**9  # bytes; [server] model_cache_max
DEFAULT_LOG_MAX = 10 * 2**20  # bytes; [server] log_max
DEFAULT_MIN_FREE = 64 * 2**20  # bytes; [server] min_free_disk


def is_secret_name(name: str) -> bool:
    """Names the server's own secrets live in (its API key, store URL and password, webhook
    secret): no configuration passes them on to a worker.

    >>> is_secret_name("RUNQ_API_KEY"), is_secret_name("PGPASSWORD"), is_secret_name("PATH")
    (True, True, False)
    """
    return name.startswith(("RUNQ_", "PG")) or name == "DATABASE_URL"


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = field(default_factory=lambda: Path(DEFAULT_DATA_DIR).expanduser())
    store: str = "sqlite"
    # The URL workers reach the control plane at; "" means base_url. With replicas, a load
    # balancer in front of them: a standby forwards worker calls to the leader.
    worker_url: str = ""
    ray_address: str = ""  # a Ray cluster (`ray start --head` address): workers run there
    # Where a network volume is mounted on the Ray nodes labelled runq.io/volume.NAME (Ray
    # label values cannot hold a path); one not named here is at /mnt/NAME.
    ray_volumes: Mapping[str, str] = field(default_factory=dict)
    # Worker protocol timing. The SDK pings every RUNPOD_PING_INTERVAL (whole seconds).
    ping_interval_s: float = 5.0
    heartbeat_timeout_s: float = 15.0  # three missed pings: the worker is lost
    take_hold_s: float = 30.0  # long-poll hold of job-take and job-stop (SDK gives up at 90 s)
    stop_grace_s: float = 10.0  # after a stop signal, kill a worker that still runs the job
    shutdown_grace_s: float = 30.0  # on SIGTERM, running jobs get this long to finish
    tick_s: float = 0.25  # reaper and supervisor period
    # A new connection, or a request begun on a kept-alive one, must send its whole request
    # head within this; otherwise it is closed (api/header_timeout.py).
    header_timeout_s: float = 20.0
    webhook_attempts: int = 3  # RunPod: the first try and 2 retries
    webhook_backoff_s: float = 10.0  # first retry delay; doubles each retry
    webhook_timeout_s: float = 10.0
    webhook_secret: str = ""  # empty: made once and kept in data_dir
    rate_limit: float = 0.0  # client requests per second per API key (burst as many); 0: off
    model_cache_max_bytes: int = DEFAULT_MODEL_CACHE_MAX  # the host model cache is evicted to this
    # CPU workers a host takes when its [[hosts]] table does not say, and the detected local
    # host's; None: the caller's default (runq.fleet.machine.default_cpu_slots(): 4 per core of
    # this machine, at least 8).
    cpu_slots: int | None = None
    # [[hosts]]; none declared: the caller detects the local machine
    # (runq.fleet.machine.effective_hosts).
    hosts: tuple[Host, ...] = ()
    prices: Prices = field(default_factory=default_prices)  # [prices] over the table's defaults
    # Variables of the server's environment a worker may see beyond the basics (PATH, HOME,
    # LANG...): e.g. HTTPS_PROXY, SSL_CERT_FILE. runq's own (RUNQ_*) and PG* never pass.
    worker_env_pass: tuple[str, ...] = ()
    # Each worker's log is capped: at log_max_bytes it is rotated, log_backups old files kept.
    log_max_bytes: int = DEFAULT_LOG_MAX
    log_backups: int = 2
    # Logs of ended workers are kept this long, and all logs together at most logs_max bytes.
    log_retention_s: float = 7 * 86400.0
    logs_max_bytes: int = 10**9
    # Below this much free space on the data dir's disk, new jobs are refused (507) so that
    # what was accepted can still be recorded, timed out and finished.
    min_free_bytes: int = DEFAULT_MIN_FREE
    containers: ContainersConfig = field(default_factory=ContainersConfig)  # [containers]

    @property
    def base_url(self) -> str:
        """Where workers reach the control plane (a wildcard bind is reached on loopback)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{host}:{self.port}"

    @property
    def worker_base_url(self) -> str:
        return self.worker_url.rstrip("/") or self.base_url

    @property
    def database_path(self) -> Path:
        return self.data_dir / "runq.db"

    @property
    def model_cache_dir(self) -> Path:
        """The host model cache, shared by every worker on this host (HF_HOME points here)."""
        return self.data_dir / "models"


_DURATIONS = {
    "ping_interval": "ping_interval_s",
    "heartbeat_timeout": "heartbeat_timeout_s",
    "take_hold": "take_hold_s",
    "stop_grace": "stop_grace_s",
    "shutdown_grace": "shutdown_grace_s",
    "tick": "tick_s",
    "header_timeout": "header_timeout_s",
    "webhook_backoff": "webhook_backoff_s",
    "webhook_timeout": "webhook_timeout_s",
    "log_retention": "log_retention_s",
}
_PLAIN = {
    "host": str,
    "port": int,
    "store": str,
    "ray_address": str,
    "worker_url": str,
    "webhook_attempts": int,
    "webhook_secret": str,
}
_TOP_LEVEL = {"server", "hosts", "prices", "containers"}


def load_config(
    path: Path | None,
    overrides: dict[str, Any] | None = None,
    *,
    default_cpu_slots: int = MIN_CPU_SLOTS,
) -> ServerConfig:
    """Read `path` (or nothing) and apply `overrides` (CLI flags), in that order.

    `default_cpu_slots` is what a declared host takes when neither it nor `[server] cpu_slots`
    says; the server passes `runq.fleet.machine.default_cpu_slots()` (core never looks at the
    machine).
    """
    config = ServerConfig()
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SpecError(f"{path}: no such config file") from None
        except ValueError as exc:  # TOMLDecodeError, or an int past Python's 4300-digit limit
            raise SpecError(f"{path}: not valid TOML: {exc}") from None
        except RecursionError:  # tomllib recurses once per nested array or inline table
            raise SpecError(f"{path}: not valid TOML: arrays or tables nested too deeply") from None
        unknown = sorted(set(data) - _TOP_LEVEL)
        if unknown:
            raise SpecError(f"{path}: unknown table or key '{unknown[0]}'")
        server = data.get("server", {})
        if not isinstance(server, dict):
            raise SpecError(f"{path}: 'server' must be a table ([server]), got {server!r}")
        config = _apply(config, server, str(path))
        slots = default_cpu_slots if config.cpu_slots is None else config.cpu_slots
        config = replace(
            config,
            hosts=parse_hosts(data.get("hosts", []), str(path), slots),
            prices=parse_prices(data.get("prices", {}), str(path)),
            containers=parse_containers(data.get("containers", {}), str(path)),
        )
    if overrides:
        config = _apply(config, {k: v for k, v in overrides.items() if v is not None}, "flags")
    return config


def _apply(config: ServerConfig, table: dict[str, Any], where: str) -> ServerConfig:
    changes: dict[str, Any] = {}
    for key, value in table.items():
        if key in _DURATIONS:
            try:
                changes[_DURATIONS[key]] = parse_duration(value)
            except ValueError as exc:
                raise SpecError(f"{where}: field 'server.{key}': {exc}") from None
            if key == "header_timeout" and not 0 < changes["header_timeout_s"] <= 3600:
                raise SpecError(f"{where}: field 'server.header_timeout': must be in (0s, 1h]")
        elif key == "rate_limit":
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or value < 0:
                raise SpecError(
                    f"{where}: field 'server.rate_limit': expected a number of requests per "
                    f"second per key, at least 0 (0: off), got {value!r}"
                )
            changes["rate_limit"] = float(value)
        elif key == "cpu_slots":
            if type(value) is not int or value < 0:
                raise SpecError(
                    f"{where}: field 'server.cpu_slots': expected a whole number of CPU worker "
                    f"slots per host, at least 0, got {value!r}"
                )
            changes["cpu_slots"] = value
        elif key == "model_cache_max":
            try:
                changes["model_cache_max_bytes"] = parse_size(value)
            except ValueError as exc:
                raise SpecError(f"{where}: field 'server.model_cache_max': {exc}") from None
        elif key in ("log_max", "min_free_disk", "logs_max"):
            target = {
                "log_max": "log_max_bytes",
                "min_free_disk": "min_free_bytes",
                "logs_max": "logs_max_bytes",
            }[key]
            try:
                changes[target] = parse_size(value)
            except ValueError as exc:
                raise SpecError(f"{where}: field 'server.{key}': {exc}") from None
            if key == "log_max" and changes[target] < 4096:
                raise SpecError(f"{where}: field 'server.log_max': at least 4 KB, got {value!r}")
        elif key == "log_backups":
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
                raise SpecError(
                    f"{where}: field 'server.log_backups': expected a whole number of old log "
                    f"files to keep, 0 to 100, got {value!r}"
                )
            changes["log_backups"] = value
        elif key == "worker_env_pass":
            names = value if isinstance(value, list) else None
            if names is None or not all(isinstance(n, str) and n for n in names):
                raise SpecError(
                    f"{where}: field 'server.worker_env_pass': expected a list of variable "
                    f'names, e.g. ["HTTPS_PROXY", "SSL_CERT_FILE"], got {value!r}'
                )
            secret = [n for n in names if is_secret_name(n)]
            if secret:
                raise SpecError(
                    f"{where}: field 'server.worker_env_pass': '{secret[0]}' is one of the "
                    "server's own variables (RUNQ_*, PG*, DATABASE_URL) and never reaches a "
                    "worker; set it in the endpoint's env if a worker needs it"
                )
            changes["worker_env_pass"] = tuple(names)
        elif key == "ray_volumes":
            paths = value if isinstance(value, dict) else None
            if paths is None or not all(
                isinstance(v, str) and v.startswith("/") for v in paths.values()
            ):
                raise SpecError(
                    f"{where}: field 'server.ray_volumes': expected a table of volume name to "
                    f'absolute mount path, e.g. {{ models = "/mnt/models" }}, got {value!r}'
                )
            changes["ray_volumes"] = dict(paths)
        elif key == "data_dir":
            changes["data_dir"] = Path(os.path.expanduser(str(value))).resolve()
        elif key in _PLAIN:
            if not isinstance(value, _PLAIN[key]) or isinstance(value, bool):
                raise SpecError(
                    f"{where}: field 'server.{key}': expected {_PLAIN[key].__name__}, got {value!r}"
                )
            changes[key] = value
        else:
            raise SpecError(f"{where}: field 'server.{key}': unknown key")
    return replace(config, **changes)
