"""The `runq` command line: real subprocesses, clear messages, documented exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Server

pytestmark = pytest.mark.timeout(90)


def runq(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runq.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('name = "Bad Name"\n[worker]\ncommand = ["x"]\n', "field 'name'"),
        (
            'name = "ok"\n[worker]\ncommand = ["x"]\n[scaling]\nmax_wrokers = 2\n',
            "scaling.max_wrokers",
        ),
        ('name = "ok"\n[worker]\ncommand = ["x"]\n[jobs]\nttl = "5s"\n', "jobs.ttl"),
        ("name = ", "not valid TOML"),
    ],
    ids=["bad-name", "misspelt-key", "ttl-too-short", "not-toml"],
)
def test_serve_rejects_a_bad_endpoint_file_naming_file_and_field(
    tmp_path: Path, toml: str, needle: str
) -> None:
    path = tmp_path / "endpoint.toml"
    path.write_text(toml)
    result = runq("serve", str(tmp_path), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert str(path) in message.replace(" ", "") or "endpoint.toml" in message
    assert needle in message


def test_run_with_invalid_json_exits_2_with_a_message() -> None:
    result = runq("run", "echo", "{nope", env={"RUNQ_API_KEY": "k"})
    assert result.returncode == 2
    assert "not valid JSON" in result.stderr


@pytest.fixture(scope="module")
def live(module_server_factory: Callable[[], Server]) -> Server:
    """One server for the file's commands (the first test finds its worker fresh)."""
    server = module_server_factory()
    server.add_endpoint("echo", "native_echo.py")
    return server.start()


def test_run_sync_and_status_against_a_live_server(live: Server) -> None:
    server = live
    env = {"RUNQ_URL": server.url, "RUNQ_API_KEY": server.key}
    result = runq("run", "echo", '{"text": "hi"}', "--sync", env=env)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["output"] == {"echo": {"text": "hi"}}
    status = runq("status", body["id"], env=env)
    assert json.loads(status.stdout)["status"] == "COMPLETED"
    missing = runq("status", "no-such-job", env=env)
    assert missing.returncode == 1
    assert "not found" in missing.stderr
    workers = runq("workers", "echo", env={**env, "COLUMNS": "250"})
    assert workers.returncode == 0, workers.stderr
    worker_id = server.workers("echo")[0]["id"]
    assert f"{worker_id} (active)" in workers.stdout  # the always-on worker, marked as such
    assert "idle" in workers.stdout and "1 done" in workers.stdout
    endpoints = runq("endpoints", env={**env, "COLUMNS": "250"})
    assert endpoints.returncode == 0, endpoints.stderr
    assert "echo" in endpoints.stdout and "0/0/0/0" not in endpoints.stdout


def test_keys_create_ls_revoke_against_a_live_server(live: Server) -> None:
    server = live
    env = {"RUNQ_URL": server.url, "RUNQ_API_KEY": server.key, "COLUMNS": "250"}

    made = runq("keys", "create", "--name", "ci", "--scope", "invoke:echo", env=env)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()  # the key alone on stdout, for scripts
    assert key.startswith("rq_") and "shown this once" in made.stderr
    ran = runq("run", "echo", '{"n": 1}', "--sync", env={**env, "RUNQ_API_KEY": key})
    assert json.loads(ran.stdout)["output"] == {"echo": {"n": 1}}
    refused = runq("endpoints", env={**env, "RUNQ_API_KEY": key})
    assert refused.returncode == 1
    assert "403" in refused.stderr and "not an admin key" in refused.stderr

    listed = runq("keys", "ls", env=env)
    assert listed.returncode == 0, listed.stderr
    key_id = next(k["id"] for k in server.get("/admin/keys").json() if k["name"] == "ci")
    assert key_id in listed.stdout and "ci" in listed.stdout and "invoke:echo" in listed.stdout
    assert key not in listed.stdout and key[:12] not in listed.stdout

    revoked = runq("keys", "revoke", key_id, env=env)
    assert revoked.returncode == 0, revoked.stderr
    after = runq("run", "echo", "1", env={**env, "RUNQ_API_KEY": key})
    assert after.returncode == 1 and "401" in after.stderr and "revoked" in after.stderr
    assert "RUNQ_API_KEY" in after.stderr  # the 401 names where the stale key came from
    flag = runq("run", "echo", "1", "--api-key", "stale", env={**env, "RUNQ_API_KEY": ""})
    assert flag.returncode == 1 and "401" in flag.stderr and "--api-key" in flag.stderr
    assert runq("keys", "revoke", "no-such-key", env=env).returncode == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["keys", "create", "--name", "ci"], "at least one --scope"),
        (["keys", "create", "--scope", "root"], "'root' is not a scope"),
    ],
    ids=["no-scope", "bad-scope"],
)
def test_keys_create_refuses_a_key_without_a_valid_scope(
    live: Server, args: list[str], says: str
) -> None:
    before = live.get("/admin/keys").json()
    result = runq(*args, env={"RUNQ_URL": live.url, "RUNQ_API_KEY": live.key})
    assert result.returncode in (1, 2)
    assert says in " ".join(result.stderr.split())
    assert live.get("/admin/keys").json() == before
