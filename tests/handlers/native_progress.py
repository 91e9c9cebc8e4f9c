"""Reports progress {"step": 1} through progress_update, then returns {"done": True}."""

from typing import Any

from runq import worker


def handler(job: dict[str, Any]) -> dict[str, bool]:
    worker.progress_update(job, {"step": 1})
    return {"done": True}


if __name__ == "__main__":
    worker.start({"handler": handler})
