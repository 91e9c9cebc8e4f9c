"""A worker whose module-level init sleeps INIT_SECONDS and builds a "model" in memory, then
answers with who served the job (pid, worker id, GPUs) and the model it holds."""

import os
import time
from typing import Any

from runq import worker

time.sleep(float(os.environ.get("INIT_SECONDS", "1.5")))
MODEL = bytes(range(256)) * 4096  # 1 MiB, made once: a forked worker inherits it
LOADED_BY = os.getpid()


def handler(job: dict[str, Any]) -> dict[str, Any]:
    time.sleep(float(job["input"].get("seconds", 0)))
    return {
        "pid": os.getpid(),
        "loaded_by": LOADED_BY,
        "worker_id": os.environ.get("RUNQ_WORKER_ID"),
        "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "model_bytes": len(MODEL),
    }


worker.start({"handler": handler})
