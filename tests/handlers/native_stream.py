"""Generator handler: yields input["n"] chunks {"i": i}; the final output aggregates them."""

from collections.abc import Iterator
from typing import Any

from runq import worker


def handler(job: dict[str, Any]) -> Iterator[dict[str, int]]:
    for i in range(job["input"]["n"]):
        yield {"i": i}


if __name__ == "__main__":
    worker.start({"handler": handler, "return_aggregate_stream": True})
