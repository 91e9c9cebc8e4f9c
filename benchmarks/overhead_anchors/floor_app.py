"""The floor: a bare FastAPI ``POST /runsync`` that calls a no-op handler in-process.

Same uvicorn settings as ``runq serve``. Run by ``benchmarks/overhead.py``::

    python benchmarks/overhead_anchors/floor_app.py --port 8124
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

import uvicorn
from fastapi import FastAPI, Request

app = FastAPI()


def handler(job: dict[str, Any]) -> Any:
    """The same no-op as tests/handlers/native_noop.py."""
    return None


@app.post("/runsync")
async def runsync(request: Request) -> dict[str, Any]:
    body = await request.json()
    job = {"id": uuid.uuid4().hex, "input": body.get("input")}
    output = handler(job)
    return {"id": job["id"], "status": "COMPLETED", "output": output}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
