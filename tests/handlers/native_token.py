"""Reports its worker id and the token runq gave it, so tests can play that worker."""

import os
from typing import Any

from runq import worker


def handler(job: dict[str, Any]) -> dict[str, str]:
    return {"worker": os.environ["RUNQ_WORKER_ID"], "token": os.environ["RUNPOD_AI_API_KEY"]}


if __name__ == "__main__":
    worker.start({"handler": handler})
