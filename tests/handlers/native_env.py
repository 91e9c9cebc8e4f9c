"""Sleeps input["seconds"] (default 0), then reports where it ran: worker id and its GPUs."""

import os
import time
from typing import Any

from runq import worker


def handler(job: dict[str, Any]) -> dict[str, str]:
    time.sleep(job["input"].get("seconds", 0))
    return {"worker": os.environ["RUNQ_WORKER_ID"], "gpus": os.environ["CUDA_VISIBLE_DEVICES"]}


if __name__ == "__main__":
    worker.start({"handler": handler})
