"""Request limits: pure checks table-driven, then end to end against a live server."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from runq.api.limits import MAX_INPUT_DEPTH, check_input_depth, nesting_depth
from runq.api.responses import parse_json
from runq.errors import BadRequest
from tests.conftest import Server, wait_until

pytestmark = pytest.mark.timeout(90)


def nested(depth: int) -> Any:
    """`depth` lists inside each other: nested(0) = 1, nested(2) = [[1]]."""
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


DEPTH_CASES = [
    pytest.param(1, 0, id="a scalar is 0 deep"),
    pytest.param([], 1, id="an empty list is 1 deep"),
    pytest.param({"a": 1, "b": "x"}, 1, id="a flat dict is 1 deep"),
    pytest.param({"a": [{"b": 1}]}, 3, id="dict, list, dict is 3 deep"),
    pytest.param([[1], [[2]], 3], 3, id="the deepest branch counts"),
    pytest.param(nested(64), 64, id="64 nested lists are 64 deep"),
    pytest.param(nested(500), 65, id="the walk stops once past the limit (64 + 1)"),
]


@pytest.mark.parametrize(("value", "depth"), DEPTH_CASES)
def test_nesting_depth(value: Any, depth: int) -> None:
    assert nesting_depth(value) == depth


INPUT_CASES = [
    pytest.param({"input": nested(64)}, None, id="input 64 deep passes"),
    pytest.param({"input": nested(65)}, "limit of 64 levels", id="input 65 deep is refused"),
    pytest.param({"input": {"a": nested(64)}}, "limit of 64", id="a dict counts as a level"),
    pytest.param({"input": 1, "s3Config": nested(80)}, None, id="only input is limited"),
]


@pytest.mark.parametrize(("body", "refusal"), INPUT_CASES)
def test_check_input_depth(body: dict[str, Any], refusal: str | None) -> None:
    raw = json.dumps(body).encode()
    if refusal is None:
        check_input_depth(body, raw)
    else:
        with pytest.raises(BadRequest, match=refusal):
            check_input_depth(body, raw)


PARSE_CASES = [
    pytest.param(b"", None, id="an empty body is None"),
    pytest.param(b'{"input": 1}', {"input": 1}, id="JSON is parsed"),
    pytest.param(b"{nope", "malformed JSON", id="malformed JSON is a 400"),
    pytest.param(b"\xff", "malformed JSON", id="bytes that are not UTF-8 are a 400"),
    pytest.param(b"[" * 100_000, "nested too deeply", id="past Python's recursion limit: a 400"),
]


@pytest.mark.parametrize(("raw", "expected"), PARSE_CASES)
def test_parse_json(raw: bytes, expected: Any) -> None:
    if isinstance(expected, str):
        with pytest.raises(BadRequest, match=expected):
            parse_json(raw)
    else:
        assert parse_json(raw) == expected


# --- end to end ------------------------------------------------------------------------------


def job_total(server: Server, endpoint: str) -> int:
    """Every job of the endpoint, read through the admin API (which is never rate limited)."""
    rows = server.get("/admin/endpoints").json()
    jobs = next(row for row in rows if row["name"] == endpoint)["jobs"]
    return int(jobs["completed"] + jobs["failed"] + jobs["inProgress"] + jobs["inQueue"])


def new_key(server: Server, *scopes: str, name: str = "") -> str:
    reply = server.post("/admin/keys", json={"name": name, "scopes": list(scopes)})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["key"])


@pytest.fixture(scope="module")
def server(module_server_factory: Callable[[], Server]) -> Server:
    """One server for the file: each test uses jobs of its own and leaves none queued."""
    s = module_server_factory()
    s.add_endpoint("echo", "native_echo.py")
    s.add_endpoint("capped", "native_sleep.py", extra="[jobs]\nmax_queue = 2\n")
    return s.start()


def test_input_nested_too_deep_is_400_naming_the_limit_and_stores_nothing(
    server: Server,
) -> None:
    before = job_total(server, "echo")
    for depth in (MAX_INPUT_DEPTH + 1, 5_000):  # 5,000: past Python's own parser limit
        body = b'{"input": ' + b"[" * depth + b"]" * depth + b"}"
        for route in ("run", "runsync"):
            reply = server.post(f"/v2/echo/{route}", content=body)
            assert reply.status_code == 400, (depth, route, reply.text)
            assert "64" in reply.json()["error"] or "nested too deeply" in reply.json()["error"]
    assert job_total(server, "echo") == before
    ok = server.post("/v2/echo/runsync", json={"input": nested(MAX_INPUT_DEPTH)})
    assert ok.json()["output"] == {"echo": nested(MAX_INPUT_DEPTH)}


@pytest.mark.parametrize(
    ("path", "size", "says"),
    [
        ("/v2/echo/run", 10 * 1024 * 1024 + 1, "limit is 10485760 bytes"),
        ("/v2/echo/runsync", 20 * 1024 * 1024 + 1, "limit is 20971520 bytes"),
        ("/admin/endpoints", 1024 * 1024 + 1, "limit is 1048576 bytes"),
        ("/admin/keys", 64 * 1024 + 1, "limit is 65536 bytes"),
        ("/v2/echo/job-done-batch/remote-1", 20 * 1024 * 1024 + 1, "limit is 20971520 bytes"),
        ("/v2/echo/job-stream/remote-1/some-job", 1024 * 1024 + 1, "limit is 1048576 bytes"),
    ],
    ids=["run", "runsync", "deploy", "create-key", "result-batch", "stream-chunk"],
)
def test_a_body_over_its_limit_is_413_with_a_message(
    server: Server, path: str, size: int, says: str
) -> None:
    before = job_total(server, "echo")
    body = b'{"input": "' + b"x" * size + b'"}'
    reply = server.post(path, content=body)
    assert reply.status_code == 413
    assert says in reply.json()["error"]

    def chunks() -> Any:  # no Content-Length: the limit holds while the body streams in
        for start in range(0, len(body), 1024 * 1024):
            yield body[start : start + 1024 * 1024]

    streamed = server.post(path, content=chunks())
    assert streamed.status_code == 413
    assert "over the limit" in streamed.json()["error"]
    assert job_total(server, "echo") == before


def test_a_full_queue_answers_429_and_keeps_its_jobs(server: Server) -> None:
    running = server.run("capped", {"input": {"seconds": 60}})
    server.wait_status("capped", running, {"IN_PROGRESS"})
    queued = [server.run("capped", {"input": {"seconds": 0}}) for _ in range(2)]

    for route in ("run", "runsync"):
        reply = server.post(f"/v2/capped/{route}", json={"input": {"seconds": 0}})
        assert reply.status_code == 429, reply.text
        assert "'capped' has 2 jobs queued, its max_queue" in reply.json()["error"]
    assert server.health("capped")["jobs"]["inQueue"] == 2
    assert {server.status("capped", job)["status"] for job in queued} == {"IN_QUEUE"}
    assert server.post("/v2/echo/run", json={"input": 1}).status_code == 200  # others unaffected

    server.post(f"/v2/capped/cancel/{running}")
    wait_until(lambda: server.health("capped")["jobs"]["inQueue"] < 2)
    assert server.post("/v2/capped/run", json={"input": {"seconds": 0}}).status_code == 200


def test_a_key_over_its_rate_gets_429_with_retry_after_and_nothing_changes(
    server_factory: Callable[[], Server],
) -> None:
    server: Server = server_factory()
    # 0.5 a second: a burst of 1, then one more every 2 s (time enough for the checks below
    # on a loaded machine, where 2 a second let a token come back before the /lb call).
    server.settings = {"rate_limit": 0.5}
    server.add_endpoint("echo", "native_echo.py")
    server.start(wait_workers=False)  # /health is a client route: polling it would be limited
    ci = new_key(server, "invoke:echo", name="ci")
    headers = {"Authorization": f"Bearer {ci}"}

    first = server.post("/v2/echo/run", json={"input": 1}, headers=headers)
    assert first.status_code == 200  # the burst: 1
    refused = server.post("/v2/echo/run", json={"input": 3}, headers=headers)
    lb = httpx.get(f"{server.url}/lb/echo/x", headers=headers, timeout=10)

    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "key 'ci' is over its rate limit of 0.5 requests per second" in refused.json()["error"]
    assert lb.status_code == 429 and lb.headers["Retry-After"].isdigit()
    wait_until(lambda: job_total(server, "echo") == 1)
    other = server.post("/v2/echo/run", json={"input": 4})  # the bootstrap key has its own
    assert other.status_code == 200
    wait_until(
        lambda: server.post("/v2/echo/run", json={"input": 5}, headers=headers).status_code == 200,
        timeout=5,
        interval=0.5,
    )
