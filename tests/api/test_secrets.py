"""Secrets through the real CLI against a live `runq serve`: set from stdin, referenced in an
endpoint's env, resolved into the worker's environment only, and shown by no API answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runq.core.secret_refs import SecretMissing, references, resolve
from tests.conftest import Server, wait_until

pytestmark = pytest.mark.timeout(120)

VALUE = "hf_s3cr3t-value-4242"


def runq(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runq.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", **env},
    )


@pytest.mark.parametrize(
    ("env", "secrets", "expected"),
    [
        pytest.param({"A": "plain"}, {}, {"A": "plain"}, id="no reference: unchanged"),
        pytest.param(
            {"T": "{{ RUNPOD_SECRET_tok }}"}, {"tok": "v"}, {"T": "v"}, id="a whole value"
        ),
        pytest.param(
            {"U": "https://me:{{RUNPOD_SECRET_pw}}@db/{{ RUNPOD_SECRET_db }}"},
            {"pw": "p", "db": "d"},
            {"U": "https://me:p@db/d"},
            id="inside a value, with or without spaces",
        ),
    ],
)
def test_resolve(env: dict[str, str], secrets: dict[str, str], expected: dict[str, str]) -> None:
    assert resolve(env, secrets.get) == expected


def test_a_missing_secret_is_named() -> None:
    assert references({"T": "{{ RUNPOD_SECRET_gone }}"}) == {"gone"}
    with pytest.raises(SecretMissing, match="secret 'gone' is not set"):
        resolve({"T": "{{ RUNPOD_SECRET_gone }}"}, lambda _name: None)


@pytest.mark.slow
def test_a_secret_reaches_the_worker_and_no_api_answer(server_factory: Any) -> None:
    server: Server = server_factory()
    server.add_endpoint(
        "env",
        "native_env.py",
        workers=0,
        extra='[worker.env]\nHF_TOKEN = "{{ RUNPOD_SECRET_hf_token }}"\n',
    )
    server.start(wait_workers=False)
    env = {"RUNQ_URL": server.url, "RUNQ_API_KEY": server.key}

    set_ = runq("secrets", "set", "hf_token", env=env, stdin=VALUE + "\n")
    assert set_.returncode == 0, set_.stderr
    assert VALUE not in set_.stdout + set_.stderr
    listed = runq("secrets", "ls", "--json", env=env)
    assert [row["name"] for row in json.loads(listed.stdout)] == ["hf_token"]
    assert VALUE not in listed.stdout
    assert runq("secrets", "set", "bad name", env=env, stdin="x").returncode == 1
    stored = server.data_dir / "secrets.json"
    assert (stored.stat().st_mode & 0o777) == 0o600

    # A worker started now has the value in its environment.
    server.post("/admin/endpoints/env/workers", json={"active_workers": 1, "max_workers": 1})
    wait_until(lambda: [w for w in server.workers("env") if w["pid"]], timeout=30)
    (pid,) = [w["pid"] for w in server.workers("env") if w["pid"]]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"HF_TOKEN={VALUE}".encode() in environ

    # Nowhere else: the admin API, the endpoint listing, the dashboard, the stored file.
    for path in ("/admin/endpoints", "/admin/endpoints/env", "/admin/workers?endpoint=env"):
        response = server.get(path)
        assert VALUE not in response.text, path
    page = server.get("/endpoints/env", params={"token": server.key}, follow_redirects=True)
    assert VALUE not in page.text
    assert VALUE not in runq("endpoints", env=env).stdout
    for toml in server.root.glob("*.toml"):
        assert VALUE not in toml.read_text()

    deleted = runq("secrets", "rm", "hf_token", env=env)
    assert deleted.returncode == 0 and runq("secrets", "rm", "hf_token", env=env).returncode == 1
