"""`runq cache pull|ls|rm` as a user runs them: real subprocesses on a data dir."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from runq.models import ModelCache
from tests.models.fileserver import FileServer
from tests.test_cli import runq

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def files() -> Iterator[FileServer]:
    with FileServer({"/w.bin": b"w" * 2048}).running() as running:
        yield running


def test_pull_ls_rm_on_a_data_dir(tmp_path: Path, files: FileServer) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    url = f"{files.url}/w.bin"

    pulled = runq("cache", "pull", url, *data)
    assert pulled.returncode == 0, pulled.stderr
    path = Path(pulled.stdout.strip())  # the path alone on stdout, for scripts
    assert path.read_bytes() == b"w" * 2048
    assert path.is_relative_to(tmp_path / "data" / "models")

    listed = runq("cache", "ls", "--json", *data)
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert (row["source"], row["size"], row["kind"]) == (url, 2048, "http")
    table = runq("cache", "ls", *data, env={"COLUMNS": "250"})
    assert url in table.stdout and "1 model(s), 2.0 KB of 100.0 GB" in table.stdout

    assert runq("cache", "rm", url, *data).returncode == 0
    again = runq("cache", "rm", url, *data)
    assert again.returncode == 1 and "not in the cache" in again.stderr
    assert ModelCache(tmp_path / "data" / "models", 10**9).ls() == []


def test_pull_of_a_bad_source_or_digest_exits_1_with_the_reason(
    tmp_path: Path, files: FileServer
) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    bad = runq("cache", "pull", "s3://bucket/w.bin", *data)
    assert bad.returncode == 1 and "unknown scheme 's3'" in bad.stderr

    wrong = runq("cache", "pull", f"{files.url}/w.bin", "--sha256", "0" * 64, *data)
    message = " ".join(wrong.stderr.split())
    assert wrong.returncode == 1 and "sha256 mismatch: expected " + "0" * 64 in message


def test_a_bad_cache_size_in_the_config_exits_2_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "runq.toml"
    config.write_text('[server]\nmodel_cache_max = "lots"\n')
    result = runq("cache", "ls", "--config", str(config), "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "server.model_cache_max" in result.stderr and "'lots'" in result.stderr
