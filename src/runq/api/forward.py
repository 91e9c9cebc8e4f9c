"""Worker calls that reach a standby replica go on to the leader, which holds the workers.

Replicas on one PostgreSQL store (runq.store.leader): only the leader runs the fleet, so only
it knows the workers, their tokens and the jobs they hold. Workers may reach the replicas
through one load-balanced URL (`[server] worker_url`); a standby then forwards each worker
call as it came (path, query, body, the worker's token) and answers with the leader's reply.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from runq.api import services
from runq.api.limits import RESULT_LIMIT
from runq.api.responses import error_response, read_body
from runq.fleet.replicas import Replication

_HEADERS = ("authorization", "content-type", "content-encoding", "user-agent")
_SLACK_S = 15.0  # on top of the leader's long-poll hold


async def forward_to_leader(request: Request, replication: Replication | None) -> Response:
    config = services.config(request)
    leader = await replication.leader_url() if replication is not None else None
    if replication is None or leader is None or leader.rstrip("/") == config.base_url:
        return error_response("no replica runs the fleet right now: try again shortly", 503)
    url = leader.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    headers = {k: v for k, v in request.headers.items() if k.lower() in _HEADERS}
    # Bounded as the leader would bound it: a standby never buffers more than a result.
    body = await read_body(request, RESULT_LIMIT, "body")
    client = replication.http_client()
    try:
        upstream = await client.request(
            request.method,
            url,
            content=body,
            headers=headers,
            timeout=config.take_hold_s + _SLACK_S,
        )
    except Exception as exc:  # httpx errors and timeouts: the leader is down or moving
        return error_response(f"the leader replica at {leader} did not answer: {exc}", 503)
    return Response(
        upstream.content,
        upstream.status_code,
        media_type=upstream.headers.get("content-type"),
    )
