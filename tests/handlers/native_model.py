"""Returns what it read at model_path(), loaded once at start (eager init)."""

from typing import Any

from runq import worker

model = worker.Lazy(lambda: worker.model_path().read_text())


def handler(job: dict[str, Any]) -> dict[str, str]:
    return {"model": model.get(), "path": str(worker.model_path())}


if __name__ == "__main__":
    model.get()
    worker.start({"handler": handler})
