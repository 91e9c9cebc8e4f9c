"""Bad input at the HTTP edge: a 400 that names the field, never a 5xx, and every answer RFC
8259 JSON. In process (the real app, store and control plane; no worker process)."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runq.api.json_values import find_unsendable, may_be_unsendable, sendable
from runq.api.query import parse_count
from runq.api.responses import json_response, parse_json
from runq.errors import BadRequest
from tests.api.inprocess import in_process_client

pytestmark = pytest.mark.timeout(60)

HUGE = "9" * 5000


def strict_json(raw: bytes) -> Any:
    """Parse as RFC 8259 does: NaN and the infinities are not JSON."""

    def refuse(token: str) -> Any:
        raise ValueError(f"{token} is not JSON")

    return json.loads(raw, parse_constant=refuse)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_client(tmp_path) as client:
        yield client


def deep_toml(depth: int) -> str:
    return 'name = "deep"\n[worker]\ncommand = ["true"]\nx = ' + "[" * depth + "]" * depth


# Each found by abuse (issue 15) answering 500, and the connection then dropped.
ANSWERED_500 = [
    pytest.param(
        "POST", "/v2/echo/run", b'{"input": {"text": "\\ud800"}}', "field 'input.text'",
        id="a lone surrogate in the input",
    ),
    pytest.param(
        "POST", "/v2/echo/run", b'{"input": ' + b"1" * 4301 + b"}", "more than 4300 digits",
        id="an integer of 4301 digits",
    ),
    pytest.param(
        "POST", f"/v2/echo/run?ttl={HUGE}", b'{"input": 1}', "query 'ttl'",
        id="a ttl of 5000 digits",
    ),
    pytest.param(
        "POST", f"/v2/echo/runsync?wait={HUGE}", b'{"input": 1}', "query 'wait'",
        id="a runsync wait of 5000 digits",
    ),
    pytest.param(
        "GET", f"/v2/echo/status-sync/no-such-job?wait={HUGE}", None, "query 'wait'",
        id="a status-sync wait of 5000 digits",
    ),
    pytest.param(
        "GET", f"/admin/endpoints/echo/jobs?limit={HUGE}", None, "query 'limit'",
        id="a jobs limit of 5000 digits",
    ),
    pytest.param(
        "POST", f"/v2/echo/job-done/remote-1/some-job?take={HUGE}", b"{}", "query 'take'",
        id="a job-done take of 5000 digits",
    ),
    pytest.param(
        "GET", f"/v2/echo/job-take-batch/remote-1?batch_size={HUGE}", None, "query 'batch_size'",
        id="a batch_size of 5000 digits",
    ),
    pytest.param(
        "POST",
        "/admin/endpoints",
        json.dumps({"path": "/nonexistent/deep/endpoint.toml", "toml": deep_toml(5000)}).encode(),
        "nested too deeply",
        id="a deploy TOML nested 5000 deep",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body", "names"), ANSWERED_500)
async def test_abusive_input_is_a_400_that_says_why(
    client: httpx.AsyncClient, method: str, path: str, body: bytes | None, names: str
) -> None:
    response = await client.request(method, path, content=body)

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    assert names in strict_json(response.content)["error"]


# Once silently replaced by a default or coerced (issue 15).
MISTYPED = [
    pytest.param("/v2/echo/run?ttl=-1", {"input": 1}, "query 'ttl'", id="a negative ttl"),
    pytest.param("/v2/echo/run?ttl=5000", {"input": 1}, "query 'ttl'", id="a ttl under 10 s"),
    pytest.param("/v2/echo/runsync?wait=-1", {"input": 1}, "query 'wait'", id="a negative wait"),
    pytest.param("/v2/echo/runsync?wait=soon", {"input": 1}, "query 'wait'", id="a word wait"),
    pytest.param("/v2/echo/runsync?wait=1.5", {"input": 1}, "query 'wait'", id="a fraction"),
    pytest.param(
        "/v2/echo/run", {"input": 1, "policy": {"lowPriority": "yes"}}, "policy.lowPriority",
        id="lowPriority as a string",
    ),
    pytest.param(
        "/v2/echo/run", {"input": 1, "policy": {"lowPriority": 1}}, "policy.lowPriority",
        id="lowPriority as a number",
    ),
    pytest.param(
        "/v2/echo/run", {"input": 1, "policy": {"ttl": "60000"}}, "policy.ttl",
        id="a policy ttl as a string",
    ),
    pytest.param(
        "/v2/echo/run", {"input": 1, "policy": {"executionTimeout": 6000.5}},
        "policy.executionTimeout", id="a fractional executionTimeout",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "names"), MISTYPED)
async def test_a_mistyped_or_out_of_range_value_is_a_400_naming_it(
    client: httpx.AsyncClient, path: str, body: Any, names: str
) -> None:
    response = await client.post(path, json=body)

    assert response.status_code == 400, response.text
    assert names in response.json()["error"]


@pytest.mark.parametrize(
    ("path", "names"),
    [
        ("/v2/echo/stream/no-such-job?wait=-5", "query 'wait'"),
        ("/v2/echo/status-sync/no-such-job?wait=x", "query 'wait'"),
    ],
    ids=["stream", "status-sync"],
)
async def test_a_bad_wait_is_refused_before_the_job_is_looked_up(
    client: httpx.AsyncClient, path: str, names: str
) -> None:
    response = await client.get(path)

    assert response.status_code == 400, response.text
    assert names in response.json()["error"]


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        (b'{"input": {"x": NaN}}', "field 'input.x': NaN"),
        (b'{"input": [1, Infinity]}', "field 'input[1]': Infinity"),
        (b'{"input": -Infinity}', "field 'input': -Infinity"),
        (b'{"input": {"\\udfff": 1}}', "field 'input': a key holds a lone UTF-16 surrogate"),
        (b'{"input": {"x": 1e400}}', "field 'input.x': Infinity (or a number past"),
        (b'{"input": [-2.5E+0309]}', "field 'input[0]': -Infinity (or a number past"),
    ],
    ids=[
        "NaN",
        "Infinity",
        "-Infinity",
        "a lone surrogate in a key",
        "1e400",
        "-2.5E+0309",
    ],
)
async def test_input_that_is_not_rfc_8259_json_is_a_400_naming_the_field(
    client: httpx.AsyncClient, raw: bytes, names: str
) -> None:
    response = await client.post("/v2/echo/run", content=raw)

    assert response.status_code == 400, response.text
    assert names in strict_json(response.content)["error"]


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"active_workers": 1, "max_workers": 10**30}, "scaling.max_workers"),
        ({"active_workers": 1, "max_workers": 1001}, "scaling.max_workers"),
        ({"active_workers": 1001, "max_workers": 1001}, "scaling.active_workers"),
        ({"active_workers": -1, "max_workers": 1}, "active workers must be 0 or more"),
    ],
    ids=[
        "max_workers of 10^30",
        "max_workers over 1000",
        "active_workers over 1000",
        "negative active_workers",
    ],
)
async def test_setting_workers_past_their_bounds_is_a_400_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, int], names: str
) -> None:
    response = await client.post("/admin/endpoints/echo/workers", json=body)

    assert response.status_code == 400, response.text
    assert names in response.json()["error"]
    scaling = (await client.get("/admin/endpoints/echo/jobs")).json()["scaling"]
    assert scaling["max_workers"] == 1  # unchanged


# --- the pure parts ---------------------------------------------------------------------------

PARSE_COUNT = [
    pytest.param("0", 0, None, 0, id="zero"),
    pytest.param("0042", 0, None, 42, id="leading zeros"),
    pytest.param("10000", 10_000, 20_000, 10_000, id="the lower bound itself"),
    pytest.param("0" * 40 + "7", 0, None, 7, id="many leading zeros are not digits that count"),
]


@pytest.mark.parametrize(("raw", "minimum", "maximum", "value"), PARSE_COUNT)
def test_parse_count_reads(raw: str, minimum: int, maximum: int | None, value: int) -> None:
    assert parse_count(raw, "n", minimum, maximum) == value


PARSE_COUNT_REFUSED = [
    pytest.param("-1", 0, None, "expected a whole number at least 0, got '-1'", id="negative"),
    pytest.param("", 0, None, "expected a whole number", id="empty"),
    pytest.param("²", 0, None, "expected a whole number", id="a unicode digit"),
    pytest.param("9" * 19, 0, None, "a number of 19 digits", id="19 digits"),
    pytest.param("9" * 5000, 0, None, "a number of 5000 digits", id="5000 digits"),
    pytest.param("9", 10, 20, "must be in 10..20, got 9", id="under the minimum"),
    pytest.param("21", 10, 20, "must be in 10..20, got 21", id="over the maximum"),
]


@pytest.mark.parametrize(("raw", "minimum", "maximum", "says"), PARSE_COUNT_REFUSED)
def test_parse_count_refuses_naming_the_parameter(
    raw: str, minimum: int, maximum: int | None, says: str
) -> None:
    with pytest.raises(BadRequest) as raised:
        parse_count(raw, "n", minimum, maximum)

    assert str(raised.value).startswith("query 'n': ")
    assert says in str(raised.value)


UNSENDABLE = [
    pytest.param({"a": [1.5, "x", None]}, None, id="plain JSON values"),
    pytest.param(float("nan"), "field '(the whole value)': NaN", id="a bare NaN"),
    pytest.param({"a": {"b": [0, math.inf]}}, "field 'a.b[1]': Infinity", id="a path"),
    pytest.param(["\ud83d\ude00"], "a lone UTF-16", id="a surrogate pair as two escapes"),
    pytest.param(["😀"], None, id="an emoji"),
]


@pytest.mark.parametrize(("value", "says"), UNSENDABLE)
def test_find_unsendable_names_the_first_field_json_cannot_carry(
    value: Any, says: str | None
) -> None:
    found = find_unsendable(value)

    assert found is None if says is None else says in (found or "")


MAY_BE_UNSENDABLE = [
    pytest.param(b'{"input": {"text": "hi", "n": 1.5e-05}}', False, id="plain JSON"),
    pytest.param(b'{"input": "\\ud83d\\ude00"}', True, id="a surrogate escape: walk to see"),
    pytest.param(b'{"input": "NaN is a word"}', True, id="NaN in a string: walk to see"),
    pytest.param(b'{"input": 1e300}', True, id="a 3-digit exponent: walk to see"),
    pytest.param(b'{"input": 1e-300}', False, id="a negative exponent cannot overflow"),
]


@pytest.mark.parametrize(("raw", "maybe"), MAY_BE_UNSENDABLE)
def test_only_a_body_that_may_hold_such_a_value_is_walked(raw: bytes, maybe: bool) -> None:
    assert may_be_unsendable(raw) is maybe


def test_a_surrogate_pair_in_the_json_text_is_one_character_and_accepted() -> None:
    assert parse_json(b'{"e": "\\ud83d\\ude00"}') == {"e": "😀"}


def test_json_response_sends_a_stored_nan_as_null_and_a_lone_surrogate_as_fffd() -> None:
    # Values stored before runq refused them: the answer must still be JSON.
    response = json_response({"output": [math.nan, -math.inf, 1.0], "text": "a\ud800"})

    assert strict_json(bytes(response.body)) == {"output": [None, None, 1.0], "text": "a\ufffd"}


def test_sendable_leaves_json_values_alone() -> None:
    value = {"a": [1, 2.5, "x", None, True, {"b": []}]}

    assert sendable(value) == value
