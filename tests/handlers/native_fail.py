"""Raises ValueError("boom"): the job fails with runpod's JSON error report."""

from typing import Any, NoReturn

from runq import worker


def handler(job: dict[str, Any]) -> NoReturn:
    raise ValueError("boom")


if __name__ == "__main__":
    worker.start({"handler": handler})
