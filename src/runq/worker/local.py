"""Local test mode: run one job from `--test_input` or ./test_input.json, print the result.

Like runpod's `rp_local`, except that generators are iterated (their chunks become the
output list) and the result is printed as one JSON line on stdout, with logs on stderr,
so `python handler.py --test_input '{...}' | jq` works.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from runq.worker import results
from runq.worker.config import WorkerConfig
from runq.worker.execute import run_call, run_stream
from runq.worker.logs import log
from runq.worker.results import Body, ErrorMeta

TEST_INPUT_FILE = "test_input.json"


def test_input_arg(argv: Sequence[str]) -> str | None:
    """The value of `--test_input X` or `--test_input=X`, if given."""
    for i, arg in enumerate(argv):
        if arg == "--test_input" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--test_input="):
            return arg.split("=", 1)[1]
    return None


def run_local(config: WorkerConfig, test_input: str | None, meta: ErrorMeta) -> int:
    """Runs the one local job; returns the exit code (1 on a handler error or bad input)."""
    log.stream = sys.stderr
    job = _load_job(test_input)
    if job is None:
        return 1
    log.info("Started.", job["id"])
    body = asyncio.run(_run(config, job, meta))
    try:
        line = results.encode(body).decode("utf-8")
    except (TypeError, ValueError) as exc:
        body = results.unencodable_body(exc)
        line = results.encode(body).decode("utf-8")
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    if body.get("error"):
        log.error(f"Job {job['id']} failed.", job["id"])
        return 1
    log.info("Finished.", job["id"])
    return 0


async def _run(config: WorkerConfig, job: dict[str, Any], meta: ErrorMeta) -> Body:
    if not config.kind.streams:
        return await run_call(config.handler, config.kind, job, meta)
    body = await run_stream(
        config.handler, config.kind, job, sink=None, aggregate=True, stopped=lambda: False
    )
    assert body is not None  # only a stop returns None, and nothing stops a local job
    return body


def _load_job(test_input: str | None) -> dict[str, Any] | None:
    if test_input is None:
        if not os.path.exists(TEST_INPUT_FILE):
            log.warn(f"{TEST_INPUT_FILE} not found, exiting.")
            return None
        log.info(f"Using {TEST_INPUT_FILE} as job input.")
        with open(TEST_INPUT_FILE, encoding="utf-8") as file:
            test_input = file.read()
    try:
        job = json.loads(test_input)
    except ValueError as exc:
        log.error(f"Test input is not valid JSON: {exc}")
        return None
    if not isinstance(job, dict) or job.get("input") is None:
        log.error("Job has no input parameter. Unable to run.")
        return None
    job.setdefault("id", "local_test")
    return job
