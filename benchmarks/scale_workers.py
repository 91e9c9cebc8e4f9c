"""Many protocol-exact worker loops in one process, for benchmarks/scale.py.

Reads JSON lines on stdin from `scale_server.py`'s provisioner: `{"start": ID, "token", "take",
"done", "ping", "ping_s"}` starts a worker loop, `{"stop": ID}` ends it; end of input ends all.

Each loop does what the runpod SDK does, over real HTTP (spec 2.4-2.9): `GET {take}&
job_in_progress=0|1` long-polls for a job (204: none yet, poll again), `POST {done}` with
`{"output": <the job's input>}` (an echo handler that takes no time), and every `ping_s`
seconds `GET {ping}&job_id=<held ids>&runpod_version=...`, all with `Authorization: <token>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
from typing import Any

import aiohttp

RUNPOD_VERSION = "1.7.9"
# What goes wrong with one call (the server busy or restarting): the loop tries again.
CALL_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


async def ping_forever(
    session: aiohttp.ClientSession, spec: dict[str, Any], held: set[str]
) -> None:
    auth = {"Authorization": spec["token"]}
    await asyncio.sleep(random.uniform(0, spec["ping_s"]))  # a fleet's pings spread out
    while True:
        url = f"{spec['ping']}&job_id={','.join(sorted(held))}&runpod_version={RUNPOD_VERSION}"
        with contextlib.suppress(*CALL_ERRORS):
            async with session.get(url, headers=auth, timeout=aiohttp.ClientTimeout(30)) as reply:
                await reply.read()
        await asyncio.sleep(spec["ping_s"])


async def work_forever(session: aiohttp.ClientSession, spec: dict[str, Any]) -> None:
    auth = {"Authorization": spec["token"]}
    held: set[str] = set()
    pinger = asyncio.create_task(ping_forever(session, spec, held))
    take_timeout = aiohttp.ClientTimeout(95)
    try:
        while True:
            try:
                url = f"{spec['take']}&job_in_progress={1 if held else 0}"
                async with session.get(url, headers=auth, timeout=take_timeout) as reply:
                    status = reply.status
                    job = await reply.json() if status == 200 else None
            except CALL_ERRORS:
                await asyncio.sleep(0.5)
                continue
            if job is None:
                if status != 204:
                    await asyncio.sleep(0.5)
                continue
            held.add(job["id"])
            with contextlib.suppress(*CALL_ERRORS):
                async with session.post(
                    spec["done"].replace("$ID", job["id"]),
                    json={"output": job.get("input")},
                    headers=auth,
                    timeout=aiohttp.ClientTimeout(30),
                ) as reply:
                    await reply.read()
            held.discard(job["id"])
    finally:
        pinger.cancel()


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks: dict[str, asyncio.Task[None]] = {}
    connector = aiohttp.TCPConnector(limit=0)  # no pool limit: every loop holds its own calls
    async with aiohttp.ClientSession(connector=connector) as session:
        while line := await reader.readline():
            message = json.loads(line)
            if "start" in message:
                tasks[message["start"]] = asyncio.create_task(work_forever(session, message))
            elif (task := tasks.pop(message.get("stop", ""), None)) is not None:
                task.cancel()
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
