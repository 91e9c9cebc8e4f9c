"""The environment a worker process gets: RunPod's variables (spec 2.1, 2.2, 6) plus runq's."""

from __future__ import annotations

import math

from runq.core.config import ServerConfig
from runq.core.spec import EndpointSpec
from runq.core.worker import Worker

# Marks every process runq starts, so that leftovers of a crashed control plane can be found.
CONTROL_PLANE_MARKER = "RUNQ_CONTROL_PLANE"


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
        "RUNQ_WORKER_ID": worker.id,
        "PYTHONUNBUFFERED": "1",
        CONTROL_PLANE_MARKER: str(config.data_dir),
    }
    if gpu == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env
