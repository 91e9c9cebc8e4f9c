"""A worker is contained: a built environment, a folder of its own, its whole process tree
ended at its stop, a capped log. Real `runq serve`, real worker processes."""

from __future__ import annotations

import concurrent.futures
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HANDLERS, Server, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "aws-secret-value",
    "PGPASSWORD": "pg-password-value",
    "RUNQ_WEBHOOK_SECRET": "webhook-secret-value",
}


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(): v.decode() for k, v in pairs}


def _worker_pids(server: Server, endpoint: str) -> list[int]:
    return [w["pid"] for w in server.workers(endpoint) if w["pid"]]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_worker_sees_none_of_the_servers_secrets(
    server_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    server: Server = server_factory()
    server.config_extra = 'worker_env_pass = ["HTTPS_PROXY"]\n'
    server.add_endpoint("env", "native_env.py", extra='[worker.env]\nMY_SETTING = "on"\n')
    server.start()
    (pid,) = _worker_pids(server, "env")
    environ = _environ(pid)
    leaked = {k for k, v in environ.items() if v in (server.key, *SECRETS.values())}
    assert not leaked, f"the worker sees the server's secrets in {sorted(leaked)}"
    assert "RUNQ_API_KEY" not in environ
    assert environ["HTTPS_PROXY"] == "http://proxy.invalid:3128"  # opted into
    assert environ["MY_SETTING"] == "on"  # the endpoint's env
    assert environ["PATH"] == os.environ["PATH"]  # the basics
    assert environ["RUNPOD_WEBHOOK_GET_JOB"].startswith(server.url)  # the worker contract
    assert environ["RUNPOD_AI_API_KEY"] != server.key  # its own token, not the admin key


def test_each_worker_writes_into_a_folder_of_its_own(server_factory: Any) -> None:
    server: Server = server_factory()
    folder = server.root / "app"
    folder.mkdir()
    (folder / "native_files.py").write_text((HANDLERS / "native_files.py").read_text())
    (folder / ".runpod_jobs.pkl").write_bytes(b"a dead worker's jobs")
    server.add_endpoint_text(
        "files",
        f'name = "files"\n[worker]\ndir = "{folder}"\ncommand = ["{{python}}", "native_files.py"]\n'
        "[scaling]\nactive_workers = 2\nmax_workers = 2\n",
    )
    server.start()
    server.wait_workers("files", 2)

    def run(body: dict[str, Any]) -> dict[str, Any]:
        job = server.run("files", {"input": body})
        return server.wait_status("files", job, {"COMPLETED"})["output"]  # type: ignore[no-any-return]

    # Until both workers have written a mark of their own.
    marks: dict[str, str] = {}
    for index in range(40):
        out = run({"write": f"mark-{index}"})
        marks.setdefault(out["worker"], f"mark-{index}")
        if len(marks) == 2:
            break
    assert len(marks) == 2, "the jobs never reached the second worker"
    seen: dict[str, dict[str, Any]] = {}
    while len(seen) < 2:
        out = run({})
        seen[out["worker"]] = out
    for worker, out in seen.items():
        other = next(mark for w, mark in marks.items() if w != worker)
        assert marks[worker] in out["files"], "a worker does not see what it wrote"
        assert other not in out["files"], "a worker sees another worker's files"
        assert other not in out["tmp_files"]
        assert out["handler_here"], "the endpoint's files are not in the worker's folder"
        assert ".runpod_jobs.pkl" not in out["files"], "runpod's job state file is shared"
    assert not any((folder / mark).exists() for mark in marks.values()), "written to the folder"
    # Gone when the worker is: its scratch folder is removed at its end.
    scratch = server.data_dir / "workers"
    assert {p.name for p in scratch.iterdir()} == set(seen)
    server.stop()
    assert not any(scratch.iterdir())


def test_stop_ends_children_that_left_the_process_group(server_factory: Any) -> None:
    server: Server = server_factory()
    server.add_endpoint("daemon", "native_daemon.py")
    server.start()
    job = server.run("daemon", {"input": {}})
    daemon = server.wait_status("daemon", job, {"COMPLETED"})["output"]["daemon"]
    assert _alive(daemon)
    assert os.getpgid(daemon) != os.getpgid(_worker_pids(server, "daemon")[0])  # it escaped
    server.stop()
    wait_until(lambda: not _alive(daemon), timeout=10)


def test_a_killed_worker_takes_its_daemons_with_it(server_factory: Any) -> None:
    server: Server = server_factory()
    server.add_endpoint("daemon", "native_daemon.py")
    server.start()
    job = server.run("daemon", {"input": {}})
    daemon = server.wait_status("daemon", job, {"COMPLETED"})["output"]["daemon"]
    (worker,) = _worker_pids(server, "daemon")
    os.kill(worker, signal.SIGKILL)  # a crash: runq ends the rest of the worker
    wait_until(lambda: not _alive(daemon), timeout=10)


def test_a_log_flood_is_capped(server_factory: Any) -> None:
    server: Server = server_factory()
    server.config_extra = 'log_max = "1MiB"\nlog_backups = 1\n'
    server.add_endpoint("flood", "native_print.py")
    server.start()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        jobs = list(pool.map(lambda _: server.run("flood", {"input": {"mb": 3}}), range(4)))
    for job in jobs:
        server.wait_status("flood", job, {"COMPLETED"}, timeout=60)
    logs = list((server.data_dir / "logs" / "flood").iterdir())
    total = sum(p.stat().st_size for p in logs)
    assert total <= 2 * 2**20 + 64 * 1024, f"12 MB printed, {total} bytes on disk: {logs}"
    assert {p.name.split(".log")[1] for p in logs} <= {"", ".1"}
    for path in [server.data_dir, *(server.data_dir / "logs").rglob("*")]:
        mode = path.stat().st_mode & 0o777
        assert mode & 0o077 == 0, f"{path} is readable by others ({oct(mode)})"
