"""The parts of worker isolation that need no worker: the environment, the capped log, the
disk guard, the data dir's modes. Table-driven where it fits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runq.api.auth import load_or_create_secret
from runq.core.config import load_config
from runq.errors import SpecError
from runq.fleet.diskguard import RESERVE_NAME, DiskGuard, disk_state
from runq.fleet.worker_env import inherited_env
from runq.fleet.worker_logs import CappedLog
from runq.server.serve import secure_data_dir

pytestmark = pytest.mark.timeout(30)

SERVER_ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "LC_TIME": "en_GB.UTF-8",
    "RUNQ_API_KEY": "admin-key",
    "RUNQ_STORE": "postgresql://runq:pw@db/runq",
    "PGPASSWORD": "pw",
    "DATABASE_URL": "postgresql://x",
    "AWS_SECRET_ACCESS_KEY": "aws",
    "HTTPS_PROXY": "http://proxy:3128",
    "SSL_CERT_FILE": "/etc/ssl/ca.pem",
}


@pytest.mark.parametrize(
    ("passthrough", "expected"),
    [
        pytest.param((), {"PATH", "HOME", "LANG", "LC_TIME"}, id="only the basics by default"),
        pytest.param(
            ("HTTPS_PROXY", "SSL_CERT_FILE"),
            {"PATH", "HOME", "LANG", "LC_TIME", "HTTPS_PROXY", "SSL_CERT_FILE"},
            id="proxy and CA settings when the operator opts in",
        ),
        pytest.param(
            ("AWS_*",),
            {"PATH", "HOME", "LANG", "LC_TIME", "AWS_SECRET_ACCESS_KEY"},
            id="a pattern opts in a family",
        ),
        pytest.param(
            ("*",),
            {
                "PATH",
                "HOME",
                "LANG",
                "LC_TIME",
                "HTTPS_PROXY",
                "SSL_CERT_FILE",
                "AWS_SECRET_ACCESS_KEY",
            },
            id="even everything never passes runq's own secrets",
        ),
    ],
)
def test_inherited_env(passthrough: tuple[str, ...], expected: set[str]) -> None:
    assert set(inherited_env(SERVER_ENV, passthrough)) == expected


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ('worker_env_pass = ["RUNQ_API_KEY"]', "never reaches a worker"),
        ('worker_env_pass = ["PGPASSWORD"]', "never reaches a worker"),
        ('worker_env_pass = "HTTPS_PROXY"', "expected a list"),
        ('log_max = "1KB"', "at least 4 KB"),
        ('log_max = "lots"', "server.log_max"),
        ("log_backups = -1", "server.log_backups"),
        ('min_free_disk = "-5MB"', "server.min_free_disk"),
    ],
)
def test_bad_isolation_settings_name_the_field(tmp_path: Path, line: str, error: str) -> None:
    path = tmp_path / "runq.toml"
    path.write_text(f"[server]\n{line}\n")
    with pytest.raises(SpecError, match=error):
        load_config(path)


def test_isolation_settings(tmp_path: Path) -> None:
    path = tmp_path / "runq.toml"
    path.write_text(
        '[server]\nworker_env_pass = ["HTTPS_PROXY"]\nlog_max = "1MiB"\nlog_backups = 3\n'
        'min_free_disk = "1GB"\n'
    )
    config = load_config(path)
    assert config.worker_env_pass == ("HTTPS_PROXY",)
    assert (config.log_max_bytes, config.log_backups) == (2**20, 3)
    assert config.min_free_bytes == 10**9


def test_a_capped_log_rotates_and_keeps_its_backups(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "w.log"
    log = CappedLog(path, max_bytes=10_000, backups=2)
    for index in range(50):
        log.write(f"{index:04d}".encode() * 250)  # 1,000 bytes a write
    log.close()
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["w.log", "w.log.1", "w.log.2"]
    assert all((path.parent / f).stat().st_size <= 10_000 for f in files)
    assert path.read_bytes().endswith(b"0049" * 250)  # the newest lines are in the live file
    assert (path.stat().st_mode & 0o777) == 0o600


def test_a_chunk_larger_than_the_cap_keeps_its_tail(tmp_path: Path) -> None:
    log = CappedLog(tmp_path / "w.log", max_bytes=4096, backups=0)
    log.write(b"a" * 10_000 + b"END")
    log.close()
    data = (tmp_path / "w.log").read_bytes()
    assert len(data) == 4096 and data.endswith(b"END")


@pytest.mark.parametrize(
    ("full", "free", "expected"),
    [
        pytest.param(False, 100, False, id="plenty of room"),
        pytest.param(False, 63, True, id="below min_free: full"),
        pytest.param(True, 70, True, id="room for min_free but not the reserve: still full"),
        pytest.param(True, 96, False, id="room for both: accepting again"),
    ],
)
def test_disk_state(full: bool, free: int, expected: bool) -> None:
    assert disk_state(full, free, min_free=64, reserve=32) is expected


def test_the_guard_gives_up_its_reserve_when_the_disk_fills(tmp_path: Path) -> None:
    free = {"bytes": 10 * 2**20}
    guard = DiskGuard(tmp_path, min_free=2**20, free=lambda _: free["bytes"])
    assert guard.check() is False
    reserve = tmp_path / RESERVE_NAME
    assert reserve.stat().st_size == 2**19
    free["bytes"] = 1000
    assert guard.check() is True and not reserve.exists()
    assert "full" in guard.message
    free["bytes"] = 2**20 + 2**19  # enough again for min_free and the reserve
    assert guard.check() is False and reserve.exists()


def test_the_data_dir_is_its_owners_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "logs" / "e").mkdir(parents=True, mode=0o755)
    (data / "logs" / "e" / "w.log").write_text("inputs")
    (data / "runq.db").write_text("")
    data.chmod(0o755)
    for path in [data / "logs" / "e" / "w.log", data / "runq.db"]:
        path.chmod(0o644)
    secure_data_dir(data)
    for path in [data, data / "runq.db", data / "logs", data / "logs" / "e" / "w.log"]:
        assert path.stat().st_mode & 0o077 == 0, path


def test_the_key_file_never_holds_a_stale_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNQ_API_KEY", raising=False)
    made = load_or_create_secret(tmp_path, "api_key", "RUNQ_API_KEY")
    assert (tmp_path / "api_key").read_text().strip() == made
    assert ((tmp_path / "api_key").stat().st_mode & 0o777) == 0o600
    monkeypatch.setenv("RUNQ_API_KEY", "from-the-env")
    assert load_or_create_secret(tmp_path, "api_key", "RUNQ_API_KEY") == "from-the-env"
    assert os.listdir(tmp_path) == []  # the stale key is gone; the env's is not written down
