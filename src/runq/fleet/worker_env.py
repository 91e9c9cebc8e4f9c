"""The environment a worker process gets, built, never inherited: the basics below, the
variables the operator opts into, the endpoint's `env`, and the worker contract (RunPod's
variables, spec 2.1, 2.2, 6, plus runq's).

A worker never sees the server's own environment: RUNQ_API_KEY, a store URL with its password,
the webhook secret, cloud credentials. The same function builds the environment on a Ray node,
from that node's variables.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping

from runq.core.config import ServerConfig, is_secret_name
from runq.core.spec import EndpointSpec
from runq.core.worker import Worker

# Marks every process runq starts, so that leftovers of a crashed control plane can be found.
CONTROL_PLANE_MARKER = "RUNQ_CONTROL_PLANE"
# Marks every process of one worker (its children inherit it): how a stop finds them all.
WORKER_MARKER = "RUNQ_WORKER_ID"

# What every program expects and no secret lives in: where programs are, whose home, the
# language and time zone, the terminal, and where a GPU host keeps its libraries.
BASIC_ENV: tuple[str, ...] = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "TERM",
    "LD_LIBRARY_PATH",
)


def inherited_env(source: Mapping[str, str], passthrough: Iterable[str] = ()) -> dict[str, str]:
    """The variables of `source` (the server's or a Ray node's environment) a worker may see:
    `BASIC_ENV` and the names the operator opts into (`[server] worker_env_pass`, e.g.
    HTTPS_PROXY or SSL_CERT_FILE); a pattern ends in `*`.

    >>> inherited_env({"PATH": "/bin", "RUNQ_API_KEY": "k", "HTTPS_PROXY": "p"}, ["HTTPS_PROXY"])
    {'PATH': '/bin', 'HTTPS_PROXY': 'p'}
    """
    patterns = (*BASIC_ENV, *passthrough)
    return {
        name: value
        for name, value in source.items()
        if not is_secret_name(name) and any(fnmatch.fnmatchcase(name, p) for p in patterns)
    }


def worker_env(
    config: ServerConfig, spec: EndpointSpec, worker: Worker, gpu: str = "cpu"
) -> dict[str, str]:
    """Variables for one worker. Every URL template already holds a `?` and the literal worker
    id; only `$ID` (the job id) remains in the output and stream templates (spec 2.2)."""
    base = f"{config.worker_base_url}/v2/{spec.name}"
    query = f"?gpu={gpu}"
    # The SDK pings every int(ms) // 1000 seconds: whole thousands, at least 1000 (spec 6.9).
    ping_ms = max(1000, math.floor(config.ping_interval_s) * 1000)
    env = {
        "RUNPOD_WEBHOOK_GET_JOB": f"{base}/job-take/{worker.id}{query}",
        "RUNPOD_WEBHOOK_POST_OUTPUT": f"{base}/job-done/{worker.id}/$ID{query}",
        "RUNPOD_WEBHOOK_POST_STREAM": f"{base}/job-stream/{worker.id}/$ID{query}",
        "RUNPOD_WEBHOOK_PING": f"{base}/ping/{worker.id}{query}",
        "RUNPOD_POD_ID": worker.id,
        "RUNPOD_POD_HOSTNAME": worker.id,
        "RUNPOD_AI_API_KEY": worker.token,
        "RUNPOD_ENDPOINT_ID": spec.name,
        "RUNPOD_PING_INTERVAL": str(ping_ms),
        "RUNPOD_LOG_LEVEL": "INFO",
        # Self-hosted machines fail RunPod's fitness checks (egress to 8.8.8.8, 4 GB free).
        "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",
        "RUNPOD_SKIP_GPU_CHECK": "true",
        "RUNPOD_INIT_TIMEOUT": str(round(spec.scaling.init_timeout_s)),
        "RUNQ_URL": config.worker_base_url,
        "RUNQ_ENDPOINT": spec.name,
        WORKER_MARKER: worker.id,
        "PYTHONUNBUFFERED": "1",
        CONTROL_PLANE_MARKER: str(config.data_dir),
    }
    if gpu == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def full_worker_env(
    source: Mapping[str, str],
    config: ServerConfig,
    spec: EndpointSpec,
    worker: Worker,
    gpu: str = "cpu",
    endpoint_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Everything a worker process starts with, in order of precedence (last wins): what it may
    inherit from `source`, the endpoint's `env` (`endpoint_env`: with its secrets put in), the
    worker contract."""
    return {
        **inherited_env(source, config.worker_env_pass),
        **(spec.worker.env if endpoint_env is None else endpoint_env),
        **worker_env(config, spec, worker, gpu),
    }
