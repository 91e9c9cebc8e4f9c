"""Schemathesis against a live `runq serve`: no client or admin operation answers 500.

The schema is the app's own OpenAPI document (the one /openapi.json serves: a test checks that
they agree), loaded at collection time so that each operation is its own test. Two runs:

- `wide`: the document as served. Path parameters are arbitrary strings, so this mostly
  exercises routing, percent-decoding and the 404 paths.
- `deep`: the same document narrowed so that the fuzzer reaches the handlers: `endpoint` is one
  of the deployed endpoints (or one that is not), `job_id` one of the jobs made by the fixture
  (or an unknown one), the `wait` and `ttl` query parameters of RunPod's API are declared,
  webhooks only ever point at a closed loopback port, `POST /admin/endpoints` gets its body
  (inline TOML, never a path to read), and the bearer key is declared as the security scheme.

Checks: `not_a_server_error`, `content_type_conformance`, `response_headers_conformance`,
`response_schema_conformance`, `unsupported_method` (an undeclared method is a 405 with
`Allow`), and on `deep` `ignored_auth` (without the key, or with a wrong one, every operation
answers 401). Left out, and why:

- `status_code_conformance`: the routes declare only 200 and FastAPI's 422, but the API answers
  RunPod's 400/401/404/413 and 422 only for a reused Idempotency-Key (/run and /runsync declare
  that one), so every error would be "undocumented".
- `allow_header_conformance`: where one path has a route per method (GET and POST
  /admin/endpoints, /admin/keys), starlette's 405 names only the first route's method.
- `negative_data_rejection`: the fuzzed schema is narrower than the API on purpose (a `wait`
  of at most 3000 ms keeps waits short), so a `wait` of 5000, which runq takes, would count as
  invalid data accepted. (The policy fields are strict now: `"lowPriority": 0` is a 400.)
- `positive_data_acceptance`: the served `POST /admin/endpoints` declares no body, so its
  empty-body 400 reads as a valid request rejected.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    unsupported_method,
)

from runq.server.app import routed_app
from tests.conftest import Server, free_port

if TYPE_CHECKING:  # the alias exists for type checkers only
    from schemathesis.specs.openapi.schemas import OpenApiCase

pytestmark = pytest.mark.timeout(120)

ENDPOINTS = ("echo", "fail", "not-deployed")
# Placeholders in the schema, swapped for the ids of jobs the fixture makes (the schema is
# built at collection time, before the server exists).
JOBS = ("completed-job", "failed-job", "no-such-job")
CHECKS = [
    not_a_server_error,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    unsupported_method,
]
# Numbers as RunPod documents them, and short strings (at most 999 ms: a wait on a job that is
# not done stays short).
WAIT_PARAM = {
    "name": "wait",
    "in": "query",
    "schema": {"anyOf": [{"type": "integer", "maximum": 3000}, {"type": "string", "maxLength": 3}]},
}
TTL_PARAM = {
    "name": "ttl",
    "in": "query",
    "schema": {"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 3}]},
}
QUERY_PARAMS = {
    "/v2/{endpoint}/run": [TTL_PARAM],
    "/v2/{endpoint}/runsync": [TTL_PARAM, WAIT_PARAM],
    "/v2/{endpoint}/status-sync/{job_id}": [WAIT_PARAM],
    "/v2/{endpoint}/stream/{job_id}": [WAIT_PARAM],
}
# Port 9 (discard) on loopback is closed: a webhook is attempted, and reaches nobody.
SAFE_WEBHOOK = {
    "anyOf": [
        {"type": "null"},
        {"const": "http://127.0.0.1:9/hook"},
        {"type": "string", "pattern": "^[a-z]{0,8}$"},  # not a URL: a 400
    ]
}
DEPLOY_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["path", "toml"],
                "properties": {
                    "path": {"const": "/nonexistent/fuzz/endpoint.toml"},
                    "toml": {"type": "string"},
                },
            }
        }
    },
}


def served_document() -> dict[str, Any]:
    # Building the document reads only the routes, never the plane or the keys.
    app = routed_app()
    with warnings.catch_warnings():
        # GET and POST of one api_route share an operationId (reported; harmless here).
        warnings.filterwarnings("ignore", "Duplicate Operation ID", UserWarning)
        return app.openapi()


def narrowed(document: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(document)
    doc.setdefault("components", {})["securitySchemes"] = {
        "key": {"type": "http", "scheme": "bearer"}
    }
    doc["security"] = [{"key": []}]
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for param in operation.get("parameters", []):
                if param["name"] == "endpoint":
                    param["schema"] = {"enum": list(ENDPOINTS)}
                elif param["name"] == "job_id":
                    param["schema"] = {"enum": list(JOBS)}
            operation.setdefault("parameters", []).extend(QUERY_PARAMS.get(path, []))
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                for field in ("webhook", "webhookV2"):
                    body["schema"]["properties"][field] = SAFE_WEBHOOK
            if (path, method) == ("/admin/endpoints", "post"):
                operation["requestBody"] = DEPLOY_BODY
    return doc


wide = schemathesis.openapi.from_dict(served_document())
deep = schemathesis.openapi.from_dict(narrowed(served_document()))
# Send the fixture's key, not generated ones: `ignored_auth` probes without it and with a bad one.
deep.config.generation.update(with_security_parameters=False)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(root=tmp_path_factory.mktemp("fuzz-api"), port=free_port())
    server.add_endpoint("echo", "native_echo.py")
    server.add_endpoint("fail", "native_fail.py")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def jobs(live: Server) -> dict[str, str]:
    """Placeholder -> the id of a real job in that state."""
    made = {
        "completed-job": live.run("echo", {"input": {"n": 1}}),
        "failed-job": live.run("fail", {"input": {}}),
    }
    live.wait_status("echo", made["completed-job"], {"COMPLETED"})
    live.wait_status("fail", made["failed-job"], {"FAILED"})
    return made


FUZZ = settings(
    deadline=None,
    database=None,  # nothing written into the work tree
    suppress_health_check=list(HealthCheck),
)


@wide.parametrize()
@settings(FUZZ, max_examples=10)
def test_no_operation_answers_500_to_arbitrary_paths(case: OpenApiCase, live: Server) -> None:
    case.call_and_validate(base_url=live.url, headers=live.headers, checks=CHECKS, timeout=15)


@deep.parametrize()
@settings(FUZZ, max_examples=30)
def test_no_operation_answers_500_on_real_endpoints_and_jobs(
    case: OpenApiCase, live: Server, jobs: dict[str, str]
) -> None:
    placeholder = (case.path_parameters or {}).get("job_id")
    if isinstance(placeholder, str) and placeholder in jobs:  # negative cases send other types
        case.path_parameters["job_id"] = jobs[placeholder]
    case.call_and_validate(
        base_url=live.url, headers=live.headers, checks=[*CHECKS, ignored_auth], timeout=15
    )


def without_operation_ids(document: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(document)
    for operations in doc["paths"].values():
        for operation in operations.values():
            operation.pop("operationId", None)
    return doc


def test_the_fuzzed_schema_is_the_served_one(live: Server) -> None:
    # Operation ids aside: a GET+POST api_route gets one id for both methods, picked from a
    # set, so which method's name wins differs between processes (reported).
    served = httpx.get(f"{live.url}/openapi.json", timeout=10).json()
    assert without_operation_ids(served) == without_operation_ids(served_document())


# Found by fuzzing the query parameters with arbitrary strings: `str.isdigit()` is true for
# '²' (and other Unicode digits) but `int('²')` raises, so runq.api.client answered 500. Fixed
# (isdecimal); kept as a regression test.
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v2/echo/run?ttl=%C2%B2"),
        ("POST", "/v2/echo/runsync?wait=%C2%B2"),
        ("GET", "/v2/echo/status-sync/{job}?wait=%C2%B2"),
        ("GET", "/v2/echo/stream/{job}?wait=%C2%B2"),
    ],
    ids=["run-ttl", "runsync-wait", "status-sync-wait", "stream-wait"],
)
def test_a_unicode_digit_in_a_query_parameter_is_not_a_500(
    live: Server, jobs: dict[str, str], method: str, path: str
) -> None:
    url = live.url + path.format(job=jobs["completed-job"])
    response = httpx.request(method, url, headers=live.headers, json={"input": 1}, timeout=15)
    assert response.status_code < 500, response.text


# Found by schemathesis' `unsupported_method` check: RFC 9110 requires `Allow` on a 405, and
# starlette's HTTPException carries it, but runq.server.app._http_error drops `exc.headers`.
def test_a_405_names_the_allowed_methods(live: Server) -> None:
    response = httpx.delete(f"{live.url}/v2/echo/health", headers=live.headers, timeout=10)
    assert response.status_code == 405
    assert response.headers.get("allow") == "GET"


# Found while sending a fuzzed endpoint file through POST /admin/endpoints: with inline TOML,
# the control plane still reads `path` from its own disk to remember the file
# (Endpoints.remember), so a path the server lacks (a deploy from another machine) is a 500
# after the spec was accepted.
def test_deploying_inline_toml_for_a_path_the_server_lacks_is_not_a_500(live: Server) -> None:
    toml = 'name = "fuzz-remote"\n[worker]\ncommand = ["true"]\n'  # no active workers: none start
    body = {"path": "/nonexistent/fuzz-remote/endpoint.toml", "toml": toml}
    response = live.post("/admin/endpoints", json=body)
    assert response.status_code == 200, response.text
