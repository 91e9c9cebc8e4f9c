"""Returns {"value": float(input["value"])}: "nan" and "inf" make outputs JSON cannot carry."""

from typing import Any

from runq import worker


def handler(job: dict[str, Any]) -> dict[str, float]:
    return {"value": float(job["input"]["value"])}


if __name__ == "__main__":
    worker.start({"handler": handler})
