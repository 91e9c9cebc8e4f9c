"""Raises ValueError(input["message"]): a job error that carries whatever text the input had
(the dashboard must show it escaped)."""

from typing import Any, NoReturn

from runq import worker


def handler(job: dict[str, Any]) -> NoReturn:
    raise ValueError(job["input"]["message"])


if __name__ == "__main__":
    worker.start({"handler": handler})
