"""API keys end to end: scopes, revocation, what is stored and what is logged."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, wait_until

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def server(module_server_factory: Callable[[], Server]) -> Iterator[Server]:
    """One server for the file (each test makes keys of its own; the last reads the logs)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RUNQ_LOG_LEVEL", "debug")  # the most the server ever logs, restarts too
        s = module_server_factory()
        s.add_endpoint("echo", "native_echo.py")
        s.add_endpoint("other", "native_echo.py")
        s.add_endpoint("token", "native_token.py")
        yield s.start()


def create(server: Server, *scopes: str, name: str = "") -> dict[str, Any]:
    reply = server.post("/admin/keys", json={"name": name, "scopes": list(scopes)})
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def call(server: Server, method: str, path: str, key: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, server.url + path, headers=auth(key), timeout=30, **kwargs)


def jobs(server: Server) -> dict[str, Any]:
    return {row["name"]: row["jobs"] for row in server.get("/admin/endpoints").json()}


def test_an_invoke_key_runs_its_endpoint_only(server: Server) -> None:
    ci = create(server, "invoke:echo", name="ci")["key"]

    done = call(server, "POST", "/v2/echo/runsync", ci, json={"input": "hi"}).json()
    assert done["output"] == {"echo": "hi"}
    for route in ("status/" + done["id"], "health"):
        assert call(server, "GET", f"/v2/echo/{route}", ci).status_code == 200
    assert call(server, "POST", "/v2/echo/purge-queue", ci).status_code == 200

    before = jobs(server)
    refusals = [
        call(server, "POST", "/v2/other/run", ci, json={"input": 1}),
        call(server, "POST", "/v2/other/purge-queue", ci),
        call(server, "GET", f"/v2/other/status/{done['id']}", ci),
        call(server, "GET", "/lb/other/x", ci),
    ]
    for reply in refusals:
        assert reply.status_code == 403, reply.text
        assert reply.json()["error"] == "key 'ci' may not invoke endpoint 'other'"
    admin = [
        call(server, "GET", "/admin/endpoints", ci),
        call(server, "GET", "/admin/keys", ci),
        call(server, "POST", "/admin/keys", ci, json={"scopes": ["admin"]}),
        call(server, "POST", f"/admin/jobs/{done['id']}/cancel", ci),
        call(server, "GET", "/v2/echo/job-take/remote-1", ci),  # worker routes: admin only
    ]
    for reply in admin:
        assert reply.status_code == 403, reply.text
        assert "key 'ci' is not an admin key: it may only invoke 'echo'" in reply.json()["error"]
    assert jobs(server) == before
    assert [key["name"] for key in server.get("/admin/keys").json()] == ["ci"]


def test_an_admin_key_does_everything_and_a_revoked_key_gets_401(server: Server) -> None:
    ops = create(server, "admin", name="ops")
    assert call(server, "GET", "/admin/endpoints", ops["key"]).status_code == 200
    assert call(server, "POST", "/v2/other/run", ops["key"], json={"input": 1}).status_code == 200

    revoked = httpx.delete(f"{server.url}/admin/keys/{ops['id']}", headers=server.headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None

    before = jobs(server)
    for method, path in [("POST", "/v2/echo/run"), ("GET", "/admin/keys"), ("GET", "/lb/echo/x")]:
        reply = call(server, method, path, ops["key"], json={"input": 1})
        assert reply.status_code == 401, reply.text
        assert reply.json()["error"] == "API key 'ops' was revoked"
    assert jobs(server) == before
    again = httpx.delete(f"{server.url}/admin/keys/{ops['id']}", headers=server.headers)
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    unknown = httpx.delete(f"{server.url}/admin/keys/no-such-key", headers=server.headers)
    assert unknown.status_code == 404


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"scopes": []}, "at least one"),
        ({"scopes": ["root"]}, "'root' is not a scope"),
        ({"scopes": ["invoke:Bad Name"]}, "is not a scope"),
        ({"scopes": "admin"}, "expected a list"),
        ({"name": "x" * 65, "scopes": ["admin"]}, "field 'name'"),
        ([], "expected {"),
    ],
    ids=["no-scope", "unknown-scope", "bad-endpoint-name", "not-a-list", "long-name", "not-object"],
)
def test_a_bad_key_request_is_400_and_creates_nothing(server: Server, body: Any, says: str) -> None:
    before = server.get("/admin/keys").json()
    reply = server.post("/admin/keys", json=body)
    assert reply.status_code == 400
    assert says in reply.json()["error"]
    assert server.get("/admin/keys").json() == before


def test_the_database_holds_the_hash_and_the_listing_no_secret(server: Server) -> None:
    made = create(server, "invoke:echo", "invoke:other", name="ci")
    key = made["key"]
    assert set(made) == {"id", "name", "scopes", "created_at", "revoked_at", "key"}

    listed = server.get("/admin/keys").json()
    assert {k: v for k, v in made.items() if k != "key"} in listed
    assert all("key" not in row for row in listed)
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert key not in str(listed) and digest not in str(listed)

    database = server.data_dir / "runq.db"
    conn = sqlite3.connect(database)
    try:
        rows = conn.execute("SELECT id, name, hash, scopes FROM api_keys").fetchall()
    finally:
        conn.close()
    assert (made["id"], "ci", digest, '["invoke:echo","invoke:other"]') in rows
    assert all(len(row[2]) == 64 for row in rows)  # every stored key is a SHA-256 hash
    for path in server.data_dir.glob("runq.db*"):  # the database, its WAL and shared memory
        assert key.encode() not in path.read_bytes(), path


def test_keys_survive_a_restart(server: Server) -> None:
    ci = create(server, "invoke:echo", name="ci")
    gone = create(server, "invoke:echo", name="gone")
    httpx.delete(f"{server.url}/admin/keys/{gone['id']}", headers=server.headers)

    server.stop()
    server.start()

    assert call(server, "GET", "/v2/echo/health", ci["key"]).status_code == 200
    assert call(server, "GET", "/v2/echo/health", gone["key"]).status_code == 401


def worker_token(server: Server) -> tuple[str, str]:
    output = server.post("/v2/token/runsync", json={"input": {}}).json()["output"]
    return output["worker"], output["token"]


def test_a_worker_token_is_refused_on_client_and_admin_routes(server: Server) -> None:
    worker_id, token = worker_token(server)
    assert call(server, "GET", f"/v2/token/ping/{worker_id}", token).status_code == 200

    before = jobs(server)
    for method, path in [
        ("POST", "/v2/token/run"),
        ("GET", "/v2/token/health"),
        ("GET", "/admin/endpoints"),
        ("POST", "/admin/keys"),
        ("GET", "/lb/token/x"),
    ]:
        reply = call(server, method, path, token, json={"input": 1, "scopes": ["admin"]})
        assert reply.status_code == 401, (path, reply.text)
    assert jobs(server) == before
    # Nor is it any other worker's token.
    assert call(server, "GET", "/v2/token/ping/someone-else", token).status_code == 401


def test_the_token_of_a_terminated_worker_is_refused(server: Server) -> None:
    worker_id, token = worker_token(server)
    pid = next(w["pid"] for w in server.workers("token") if w["id"] == worker_id)

    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: all(w["id"] != worker_id for w in server.workers("token")))

    for path in (f"/v2/token/ping/{worker_id}", f"/v2/token/job-take/{worker_id}"):
        reply = call(server, "GET", path, token)
        assert reply.status_code == 401, reply.text
        assert "did not present its token" in reply.json()["error"]


def secrets_in(path: Path, secrets: list[str]) -> list[str]:
    text = path.read_text(errors="replace")
    return [secret[:6] + "..." for secret in secrets if secret in text]


def test_no_key_or_token_reaches_a_log(server: Server) -> None:
    created = create(server, "invoke:echo", name="ci")
    _, token = worker_token(server)
    call(server, "POST", "/v2/echo/runsync", created["key"], json={"input": 1})
    call(server, "POST", "/v2/other/run", created["key"], json={"input": 1})  # 403
    call(server, "GET", "/admin/endpoints", token)  # 401
    httpx.delete(f"{server.url}/admin/keys/{created['id']}", headers=server.headers)
    call(server, "POST", "/v2/echo/run", created["key"], json={"input": 1})  # 401: revoked
    server.stop()  # the shutdown logs too

    secrets = [server.key, created["key"], token]
    logs = [server.root / "serve.log", *sorted((server.data_dir / "logs").rglob("*.log"))]
    assert (server.root / "serve.log").read_text().strip()  # there is a log to read
    assert {str(path): secrets_in(path, secrets) for path in logs} == {
        str(path): [] for path in logs
    }
