"""Returns None at once: {"output": null}. For measuring the worker's own overhead."""

from typing import Any

from runq import worker


def handler(job: dict[str, Any]) -> None:
    return None


if __name__ == "__main__":
    worker.start({"handler": handler})
