"""An unmodified RunPod worker, for runpod 1.7.x (which keeps the jobs it holds in
`.runpod_jobs.pkl` in its working directory).

input {"crash_once": PATH}: the first job to see PATH missing creates it and dies mid-job;
input {"refresh": true}: asks RunPod to replace the worker after this job (refresh_worker)."""

import os
import time
from typing import Any

import runpod


def handler(job: dict[str, Any]) -> dict[str, Any]:
    inp = job["input"]
    marker = inp.get("crash_once")
    if marker and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(3)  # a crash while holding the job
    time.sleep(inp.get("seconds", 0))
    if inp.get("refresh"):
        return {"refresh_worker": True, "job_results": {"refreshed": True}}
    return {"ok": True, "version": runpod.version.__version__ if hasattr(runpod, "version") else ""}


runpod.serverless.start({"handler": handler})
